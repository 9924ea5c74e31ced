"""The shipped deploy/nats configuration, started for real on loopback with test passwords."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats

from devtools.natsserver import free_port, nats_server_binary, wait_for_port

ROOT = Path(__file__).parents[2]
NATS_DIR = ROOT / "deploy" / "nats"
CHANNELS = ("phone", "sms", "email", "web", "wechat", "app", "walkin")
ADAPTERS = tuple(f"adapter-{c}" for c in CHANNELS)
USERS = ("admin", "intake", "routing", "feedback", "metrics", "console", "gateway", *ADAPTERS, "sys", "route")
PASSWORDS = {f"KEFU_NATS_{u.upper().replace('-', '_')}_PASSWORD": f"pw-{u}" for u in USERS}


def password(user: str) -> str:
    return PASSWORDS[f"KEFU_NATS_{user.upper().replace('-', '_')}_PASSWORD"]


def copy_configs(target: Path, *, drop: str | None = None) -> Path:
    """deploy/nats copied to `target`; `drop`: a line of accounts.conf to remove (must exist)."""
    shutil.copytree(NATS_DIR, target)
    if drop is not None:
        accounts = target / "accounts.conf"
        text = accounts.read_text()
        assert text.count(drop) == 1, f"{drop!r} is not in accounts.conf exactly once"
        accounts.write_text(text.replace(drop, ""))
    return target


@contextmanager
def standalone(tmp: Path, conf_dir: Path = NATS_DIR) -> Iterator[str]:
    """standalone.conf as shipped (client address, port and store dir set from the command line)."""
    port = free_port()
    log = open(tmp / "nats.log", "w")
    proc = subprocess.Popen([nats_server_binary(), "-c", str(conf_dir / "standalone.conf"), "-a", "127.0.0.1",
                             "-p", str(port), "-m", str(free_port())],
                            env=PASSWORDS | {"KEFU_NATS_STORE_DIR": str(tmp / "js")},
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for_port(port)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


async def connect(url: str, user: str, errors: list[str] | None = None, inbox: str | None = None,
                  **extra: object) -> nats.NATS:
    async def on_error(exc: Exception) -> None:
        if errors is not None:
            errors.append(str(exc))

    options: dict[str, object] = {"allow_reconnect": False} | extra
    return await nats.connect(url, user=user, password=password(user), error_cb=on_error,
                              inbox_prefix=(inbox or f"_INBOX_{user}").encode(), **options)
