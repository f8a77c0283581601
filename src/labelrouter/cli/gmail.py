"""`labelrouter gmail auth`: authorise labelrouter on a Gmail account (OAuth installed-app flow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labelrouter.cli.common import friendly_errors, out, settings_for

gmail_app = typer.Typer(help="Gmail: authorise an account (then set LABELROUTER_MAILBOX=gmail).", no_args_is_help=True)


@gmail_app.command("auth")
@friendly_errors
def gmail_auth(
    client_secrets: Annotated[Path, typer.Option("--client-secrets", help="The OAuth client JSON of a Google Cloud desktop app.")],
) -> None:
    """Open the browser consent for the gmail.modify scope and save the token (owner-only) in <home>."""
    from labelrouter.errors import ConfigError
    from labelrouter.mail.gmail import authorise

    if not client_secrets.is_file():
        raise ConfigError(f"no OAuth client file at {client_secrets}")
    settings = settings_for()
    authorise(client_secrets, settings.resolved_gmail_token_path)
    out.print(f"saved the Gmail token to {settings.resolved_gmail_token_path}; set LABELROUTER_MAILBOX=gmail to use it")
