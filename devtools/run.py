"""`make run`: the bundled NATS (unless KEFU_NATS_URL is set), the four services and the console, in the foreground.

Local development only: binds to 127.0.0.1, NATS without credentials, HTTP credentials generated
into var/dev-credentials.json. A service that dies is restarted with backoff; Ctrl-C (or SIGTERM)
stops the services gracefully, then NATS.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devtools.natsserver import nats_server_binary, wait_for_port
from shared.config import EX_CONFIG

SERVICES = {"intake": 8081, "routing": 8082, "feedback": 8083, "metrics": 8084, "console": 8085}
STOP_GRACE = 30.0
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0
PR_SET_PDEATHSIG = 1  # prctl(2)


def say(text: str) -> None:
    print(f"[kefu] {text}", flush=True)


def credentials(var: Path) -> dict[str, str]:
    path = var / "dev-credentials.json"
    if path.exists():
        return json.loads(path.read_text())
    creds = {"admin_token": secrets.token_urlsafe(32), "adapter_key": secrets.token_urlsafe(32)}
    path.write_text(json.dumps(creds, indent=2) + "\n")
    path.chmod(0o600)
    return creds


def secret(path: Path) -> str:
    """A local secret kept across runs (signs survey links, so links sent earlier stay valid)."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def die_with_parent(parent: int) -> Callable[[], None]:
    """Run in each child before it starts: the kernel sends it SIGTERM when the supervisor dies,
    even by SIGKILL (the children have sessions of their own, so nothing else would reach them)."""
    def set_parent_death_signal() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before the line above
            os._exit(1)
    return set_parent_death_signal


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None

    def start(self) -> None:
        # own session: Ctrl-C reaches only the supervisor, which stops services before NATS
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True,
                                     preexec_fn=die_with_parent(os.getpid()))
        self.started = time.monotonic()
        self.restart_at = None
        say(f"{self.name} started (pid {self.proc.pid})")

    def check(self, now: float) -> None:
        """Restart a dead child with exponential backoff; a run of HEALTHY_AFTER resets it."""
        if self.proc is None:
            return
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start()
            return
        code = self.proc.poll()
        if code is None:
            if self.failures and now - self.started > HEALTHY_AFTER:
                self.failures = 0
            return
        if code == EX_CONFIG:
            raise ConfigFailed(f"{self.name} refused its configuration (above); fix it and start again")
        self.failures += 1
        delay = min(MAX_BACKOFF, 2 ** (self.failures - 1))
        say(f"{self.name} exited with {code}; restarting in {delay:.0f}s (failure {self.failures})")
        self.restart_at = now + delay


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    nats: subprocess.Popen[bytes] | None = None
    stopping: bool = False

    def stop(self, *_: object) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)
        for child in self.children:
            child.start()
        failed = False
        while not self.stopping:
            now = time.monotonic()
            try:
                for child in self.children:
                    child.check(now)
            except ConfigFailed as exc:
                say(str(exc))
                failed = True
                break
            if self.nats is not None and self.nats.poll() is not None:
                say("nats-server exited; stopping")
                failed = True
                break
            time.sleep(0.2)
        return self.shutdown() or int(failed)

    def shutdown(self) -> int:
        say("stopping services")
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.nats is not None and self.nats.poll() is None:
            say("stopping nats-server")
            self.nats.send_signal(signal.SIGTERM)
            try:
                self.nats.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.nats.kill()
        say("stopped")
        return 0


class ConfigFailed(Exception):
    """A service exited on a configuration error: restarting cannot help."""


def ports_in_use(ports: dict[str, int]) -> list[str]:
    """Which of the ports something already listens on (127.0.0.1)."""
    taken = []
    for what, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                taken.append(f"{what} port {port}")
    return taken


def lock(var: Path) -> int | None:
    """Hold var/run.lock for this process's life (the kernel lets go when it dies, however it
    dies). None when another `make run` holds it."""
    fd = os.open(var / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def services_of(env: dict[str, str]) -> dict[str, int]:
    """The processes to run and their default ports: the gateway too when a platform is configured."""
    return SERVICES | ({"gateway": 8086} if env.get("KEFU_GATEWAY_PLATFORMS") else {})


def preflight(var: Path, env: dict[str, str]) -> str | None:
    """Everything that must hold before anything starts, or what does not: one `make run` per
    var/ (never two NATS servers on one store), free ports, a valid configuration."""
    if lock(var) is None:
        holder = (var / "run.lock").read_text().strip() or "?"
        return (f"another `make run` (pid {holder}) is using {var}: stop it first, or give this one its own "
                "KEFU_VAR_DIR and ports")
    ports = {name: int(env.get(f"KEFU_{name.upper()}_HTTP_PORT", port)) for name, port in services_of(env).items()}
    if not env.get("KEFU_NATS_URL"):
        ports = {"nats": int(env.get("KEFU_DEV_NATS_PORT", "4222"))} | ports
    taken = ports_in_use(ports)
    if taken:
        return f"in use by another program: {', '.join(taken)}; stop it, or set KEFU_DEV_NATS_PORT / KEFU_<SERVICE>_HTTP_PORT"
    from shared.cli import config_problems
    from shared.settings import KefuSettings

    config_dir = Path(env["KEFU_CONFIG_DIR"]) if env.get("KEFU_CONFIG_DIR") else KefuSettings().config_dir
    problems = config_problems(config_dir)
    if problems:
        return "the configuration has mistakes; nothing was started:\n  " + "\n  ".join(problems)
    return None


def main() -> int:
    var = Path(os.environ.get("KEFU_VAR_DIR", "var")).resolve()
    var.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    refused = preflight(var, env)
    if refused:
        say(refused)
        return 1
    creds = credentials(var)
    env.setdefault("KEFU_ADMIN_TOKEN", creds["admin_token"])
    env.setdefault("KEFU_ADAPTER_KEYS", f"dev:{creds['adapter_key']}")
    env.setdefault("KEFU_FEEDBACK_SURVEY_SECRET", secret(var / "survey-secret"))
    # the lookup index (metrics) beside the data: a restart skips the events it has
    env.setdefault("KEFU_METRICS_INDEX_PATH", str(var / "lookup-index.sqlite"))
    sup = Supervisor()
    if not env.get("KEFU_NATS_URL"):
        port = int(env.get("KEFU_DEV_NATS_PORT", "4222"))
        sup.nats = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(var / "jetstream")],
            start_new_session=True, preexec_fn=die_with_parent(os.getpid()),
        )
        try:
            wait_for_port(port, timeout=15)
        except TimeoutError:
            sup.nats.kill()
            say(f"nats-server did not start on port {port} (is another one running?)")
            return 1
        env["KEFU_NATS_URL"] = f"nats://127.0.0.1:{port}"
        say(f"nats-server with JetStream on {env['KEFU_NATS_URL']}, data in {var / 'jetstream'}")
    else:
        say(f"using NATS at {env['KEFU_NATS_URL']}")
    ports = {name: int(env.get(f"KEFU_{name.upper()}_HTTP_PORT", port)) for name, port in services_of(env).items()}
    for behind in ("routing", "metrics", "feedback"):  # the console forwards the page's calls to them
        env.setdefault(f"KEFU_CONSOLE_{behind.upper()}_URL", f"http://127.0.0.1:{ports[behind]}")
    for name, port in ports.items():
        say(f"{name}: http://127.0.0.1:{port}  (/healthz /readyz /metrics /docs)")
        sup.children.append(Child(name, [sys.executable, "-m", f"services.{name}"], env))
    say(f"HTTP credentials: {var / 'dev-credentials.json'}")
    say(f"console: http://127.0.0.1:{ports['console']}/  (sign in with a token from POST /v1/tokens, or the admin token)")
    return sup.run()


if __name__ == "__main__":
    sys.exit(main())
