"""RFC 822 / .eml / mbox → `EmailMessage`: multipart MIME, any charset, HTML-only bodies, size caps."""

from __future__ import annotations

import codecs
import email
import email.utils
import hashlib
import mailbox
import re
import tempfile
from collections.abc import Iterator
from email import policy
from email.message import Message
from pathlib import Path

from charset_normalizer import from_bytes

from labelrouter.errors import MessageParseError
from labelrouter.mail.clean import clean_body
from labelrouter.state.message import EmailMessage

_KNOWN_HEADERS = {"from", "to", "subject", "date", "message-id", "content-type", "mime-version", "received", "cc"}


def decode_bytes(payload: bytes, charset: str | None) -> tuple[str, str | None]:
    """Decode with the declared charset when it exists; otherwise detect. Returns (text, warning)."""
    if charset:
        try:
            codecs.lookup(charset)
        except LookupError:
            warning = f"unknown charset {charset!r}, detected instead"
        else:
            return payload.decode(charset, errors="replace"), None
    else:
        warning = None
    try:
        return payload.decode("utf-8"), warning
    except UnicodeDecodeError:
        best = from_bytes(payload).best()
        if best is not None:
            return str(best), warning or f"undeclared charset, detected {best.encoding}"
        return payload.decode("latin-1"), warning or "undeclared charset, read as latin-1"


def _header(msg: Message, name: str, warnings: list[str]) -> str:
    try:
        value = msg.get(name)
        text = " ".join(str(value).split()) if value is not None else ""
    except Exception as exc:  # malformed encoded words raise deep inside the email package
        warnings.append(f"unreadable {name} header: {type(exc).__name__}")
        text = "\ufffd"
    if "\ufffd" in text:
        # Raw 8-bit bytes in a header (no RFC 2047 encoding): decode them like the body's charset.
        raw = next((v for k, v in msg.raw_items() if k.lower() == name), None)
        try:
            raw_bytes = raw.encode("ascii", "surrogateescape") if isinstance(raw, str) else None
        except UnicodeEncodeError:  # already-decoded text: nothing better to recover
            raw_bytes = None
        if raw_bytes is not None:
            decoded, _ = decode_bytes(raw_bytes, msg.get_content_charset())
            text = " ".join(decoded.split())
            warnings.append(f"8-bit {name} header")
    return text


def _text_parts(msg: Message, warnings: list[str]) -> tuple[str, str]:
    """The first text/plain and first text/html bodies that are not attachments."""
    plain = html = ""
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        if part.get_content_disposition() == "attachment":
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception as exc:
            warnings.append(f"undecodable {ctype} part: {type(exc).__name__}")
            continue
        if not isinstance(payload, bytes):
            continue
        text, warning = decode_bytes(payload, part.get_content_charset())
        if warning:
            warnings.append(warning)
        if ctype == "text/plain" and not plain:
            plain = text
        elif ctype == "text/html" and not html:
            html = text
    return plain, html


def parse_message(
    raw: bytes,
    *,
    message_id: str | None = None,
    label_ids: list[str] | None = None,
    max_bytes: int = 30_000_000,
    max_body_chars: int = 20_000,
    snippet_chars: int = 1_500,
) -> EmailMessage:
    """Parse one raw message. Raises MessageParseError when there is nothing that is an email."""
    if not raw or not raw.strip():
        raise MessageParseError("empty message: no headers and no body")
    if len(raw) > max_bytes:
        raise MessageParseError(f"message is {len(raw):,} bytes, over the {max_bytes:,}-byte cap")
    msg = email.message_from_bytes(raw, policy=policy.default)
    if not {key.lower() for key in msg} & _KNOWN_HEADERS:
        raise MessageParseError("not an RFC 822 message: no From/To/Subject/Date/Content-Type header found")

    warnings = [type(defect).__name__ for part in msg.walk() for defect in part.defects]
    plain, html = _text_parts(msg, warnings)
    if plain.strip():
        body = clean_body(plain)
    elif html.strip():
        body = clean_body(html, is_html=True)
    else:
        body = ""
        if msg.is_multipart() or msg.get_content_maintype() == "text":
            warnings.append("no readable text part")

    truncated = len(body) > max_body_chars
    if truncated:
        body = body[:max_body_chars]

    date = None
    date_header = _header(msg, "date", warnings)
    if date_header:
        try:
            date = email.utils.parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError):
            warnings.append(f"unparseable Date header {date_header[:40]!r}")

    rfc822_id = _header(msg, "message-id", warnings) or None
    stable_id = message_id or rfc822_id or "sha256:" + hashlib.sha256(raw).hexdigest()[:24]
    recipients = [addr for _, addr in email.utils.getaddresses([_header(msg, "to", warnings), _header(msg, "cc", warnings)]) if addr]
    return EmailMessage(
        id=stable_id,
        thread_id=_header(msg, "thread-index", warnings) or None,
        rfc822_id=rfc822_id,
        subject=_header(msg, "subject", warnings),
        sender=_header(msg, "from", warnings),
        recipients=recipients,
        date=date,
        body=body,
        snippet=body[:snippet_chars],
        label_ids=list(label_ids or []),
        truncated=truncated,
        parse_warnings=list(dict.fromkeys(warnings)),
    )


def is_mbox(raw: bytes) -> bool:
    return raw.startswith(b"From ") and b"\n" in raw


def iter_mbox(path: Path) -> Iterator[bytes]:
    box = mailbox.mbox(str(path), create=False)
    try:
        for key in box.iterkeys():
            # mboxrd quoting: a body line ">From " (or ">>From ") was escaped on write; undo one level.
            yield re.sub(rb"(?m)^>(>*From )", rb"\1", box.get_bytes(key))
    finally:
        box.close()


def split_messages(raw: bytes) -> list[bytes]:
    """One .eml → [raw]; an mbox (a file or stdin) → each message's raw bytes."""
    if not is_mbox(raw):
        return [raw]
    with tempfile.TemporaryDirectory() as tmp:  # the stdlib mbox reader wants a path
        path = Path(tmp) / "in.mbox"
        path.write_bytes(raw)
        return list(iter_mbox(path))
