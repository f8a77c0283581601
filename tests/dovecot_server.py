"""A real Dovecot for the IMAP tests: Debian's `dovecot-imapd` (installed when missing, as root with
apt-get), started from a configuration of its own in a temporary folder on a free port of 127.0.0.1,
with one passwd-file user. Mail processes run as `nobody`; nothing of the system's Dovecot is used.

Mail is stored as Maildir with the `:UTF-8` layout (folder names on disk in UTF-8, so labels with emoji
open); Trash and Junk carry their special-use flags (RFC 6154) as providers' do.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.debian import apt_install

USER, PASSWORD = "alice", "not-a-secret"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = labelrouter-test-{port}
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/home/%u
}}
mail_location = maildir:~/Maildir:UTF-8
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@dataclass
class Dovecot:
    binary: str
    root: Path
    port: int
    user: str = USER
    password: str = PASSWORD
    host: str = "127.0.0.1"

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    def stop(self) -> None:
        subprocess.run([self.binary, "-c", str(self.config), "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=30)


def _binary() -> tuple[str | None, str]:
    def found() -> str | None:  # Debian installs it in /usr/sbin, which a user's PATH may lack
        return shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)

    if found():
        return found(), ""
    problem = apt_install("dovecot-imapd")
    return (found(), "") if found() else (None, f"no dovecot: {problem}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(64).startswith(b"* OK")
    except OSError:
        return False


def start_dovecot(root: Path) -> tuple[Dovecot | None, str]:
    """(a running server, '') or (None, why not)."""
    binary, why = _binary()
    if binary is None:
        return None, why
    user, group = ("nobody", "nogroup") if os.geteuid() == 0 else (os.environ.get("USER") or "nobody", "")
    if not group:
        import grp

        group = grp.getgrgid(os.getgid()).gr_name
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("run", "state", "home"):
        (root / sub).mkdir(exist_ok=True)
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root / "home", user, group)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    port = _free_port()
    server = Dovecot(binary, root, port)
    server.config.write_text(CONFIG.format(root=root, port=port, user=user, group=group))
    # The daemon keeps the descriptors it was given: a pipe would never close, so its output goes to a file.
    with open(root / "start.log", "w") as out:
        done = subprocess.run([binary, "-c", str(server.config)], stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=30)
    if done.returncode != 0:
        return None, f"dovecot did not start: {(root / 'start.log').read_text(errors='replace').strip()[-300:]}"
    for _ in range(50):
        if _answers(port):
            return server, ""
        time.sleep(0.1)
    server.stop()
    log = (root / "dovecot.log").read_text(errors="replace")[-300:] if (root / "dovecot.log").exists() else ""
    return None, f"dovecot started but did not answer on port {port}: {log}"
