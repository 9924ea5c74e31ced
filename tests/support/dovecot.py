"""Debian's dovecot, started by the test in a temporary directory on a free port: a real IMAP
server (IDLE, MOVE, UIDPLUS) with one mailbox. `.ci/run` installs dovecot-imapd."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.natsserver import free_port, wait_for_port

USER, PASSWORD = "support", "imap-secret"


@dataclass(frozen=True)
class Imap:
    host: str
    port: int
    user: str
    password: str


@contextmanager
def dovecot(*, idle: bool = True) -> Iterator[Imap]:
    """`idle=False`: a server that does not offer IDLE (clients must poll)."""
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    assert Path(binary).exists(), "Debian's dovecot-imapd is needed (.ci/run installs it)"
    port = free_port()
    # its own directory, readable by dovecot's unprivileged processes (pytest's tmp_path is 0700)
    home = Path(tempfile.mkdtemp(prefix="kefu-dovecot-"))
    home.chmod(0o755)
    for d in ("run", "state", "mail"):
        (home / d).mkdir(parents=True, exist_ok=True)
    (home / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    # dovecot never serves mail as root: as root (CI), the mail belongs to its own `dovecot` user
    owner = pwd.getpwnam("dovecot") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
    shutil.chown(home / "mail", owner.pw_uid, owner.pw_gid)
    (home / "dovecot.conf").write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {home}/run
state_dir = {home}/state
log_path = {home}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {home}/users
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={home}/mail/%u
}}
mail_location = maildir:~/Maildir
{"" if idle else "imap_capability = IMAP4rev1 LITERAL+ SASL-IR UIDPLUS MOVE"}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""")
    proc = subprocess.Popen([binary, "-F", "-c", str(home / "dovecot.conf")], stdout=subprocess.DEVNULL,
                            stderr=open(home / "stderr.log", "w"))
    try:
        wait_for_port(port, timeout=20)
        yield Imap("127.0.0.1", port, USER, PASSWORD)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(home, ignore_errors=True)
