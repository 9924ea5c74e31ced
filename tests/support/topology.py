"""deploy/compose's topology run as processes on loopback: the shipped NATS node configs and
accounts, the provisioning job, the four services and the console with their own users and environment, read
from compose.yaml. Only hostnames, ports and store paths are rewritten (and stream sizes, which
JetStream reserves on disk)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devtools.natsserver import free_port, nats_server_binary, wait_for_port
from tests.support.secured import PASSWORDS

ROOT = Path(__file__).parents[2]
COMPOSE_FILE = ROOT / "deploy" / "compose" / "compose.yaml"
SERVICES = ("intake", "routing", "feedback", "metrics", "console", "gateway")
NODES = ("nats-1", "nats-2", "nats-3")
SECRETS = PASSWORDS | {
    "KEFU_ADMIN_TOKEN": "cluster-admin-token", "KEFU_TOKEN_SECRET": "cluster-token-secret-of-32-bytes-or-more",
    "KEFU_ADAPTER_KEYS": "sms:cluster-adapter-key", "KEFU_FEEDBACK_SURVEY_SECRET": "cluster-survey-secret",
    "KEFU_FEEDBACK_PUBLIC_URL": "http://127.0.0.1", "GRAFANA_ADMIN_PASSWORD": "x",
}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolate(value: str) -> str:
    """Compose's `${VAR}` / `${VAR:?message}`, from the test's secrets."""
    return re.sub(r"\$\{(\w+)(?::\?[^}]*|:-([^}]*))?\}", lambda m: SECRETS.get(m.group(1), m.group(2) or ""), value)


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} once in the shipped config"
    return text.replace(old, new)


@dataclass
class Node:
    name: str
    home: Path
    client: int = field(default_factory=free_port)
    monitor: int = field(default_factory=free_port)
    route: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client}"

    @property
    def log(self) -> Path:
        return self.home / "nats.log"

    def write_config(self, service: dict[str, Any], hosts: dict[str, str]) -> None:
        """The node's shipped config file and accounts.conf, as compose mounts them."""
        self.home.mkdir(parents=True, exist_ok=True)
        mounts = dict(v.split(":")[:2] for v in service["volumes"] if v.startswith("../"))
        conf = (COMPOSE_FILE.parent / next(src for src, dst in mounts.items() if dst == "/etc/nats/node.conf"))
        accounts = COMPOSE_FILE.parent / next(src for src, dst in mounts.items() if dst == "/etc/nats/accounts.conf")
        text = conf.read_text()
        text = replace_once(text, "listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{self.client}")
        text = replace_once(text, "http: 0.0.0.0:8222", f"http: 127.0.0.1:{self.monitor}")
        text = replace_once(text, "listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{self.route}")
        text = replace_once(text, "store_dir: /data/jetstream", f"store_dir: {self.home / 'jetstream'}")
        (self.home / "node.conf").write_text(text)
        shutil.copy(accounts, self.home / "accounts.conf")
        env = {k: interpolate(str(v)) for k, v in service["environment"].items()}
        self.env = {k: rewrite_hosts(v, hosts) for k, v in env.items()}

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([nats_server_binary(), "-c", str(self.home / "node.conf")],
                                         env={"PATH": os.environ.get("PATH", "")} | self.env,
                                         stdout=subprocess.DEVNULL, stderr=log)
        wait_for_port(self.client, timeout=30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        terminate(self.proc, grace=15)

    def monitoring(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}{path}", timeout=5) as response:
            return json.loads(response.read())

    def healthy(self) -> bool:
        """nats-server's own health check: JetStream enabled and every stream and consumer current."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/healthz", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False


def terminate(proc: subprocess.Popen[bytes] | None, *, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()


def rewrite_hosts(value: str, hosts: dict[str, str]) -> str:
    for host, address in hosts.items():
        value = value.replace(host, address)
    return value


@dataclass
class Service:
    name: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")} | self.env
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", self.command], cwd=ROOT, env=env,
                                         stdout=subprocess.DEVNULL, stderr=log)

    @property
    def command(self) -> str:
        return self.env["_COMMAND"]

    def stop(self) -> None:
        terminate(self.proc, grace=60)


class Topology:
    """Every NATS node and kefu service of compose.yaml, as processes."""

    def __init__(self, home: Path) -> None:
        self.spec = compose()
        self.home = home
        self.nodes = {name: Node(name, home / name) for name in NODES}
        self.hosts = {f"{name}:4222": f"127.0.0.1:{n.client}" for name, n in self.nodes.items()}
        self.hosts |= {f"{name}:6222": f"127.0.0.1:{n.route}" for name, n in self.nodes.items()}
        for name, node in self.nodes.items():
            node.write_config(self.spec["services"][name], self.hosts)
        ports = {name: free_port() for name in SERVICES}  # and the console's upstreams (http://routing:8082 ...)
        self.hosts |= {f"{name}:{8081 + i}": f"127.0.0.1:{ports[name]}" for i, name in enumerate(SERVICES)}
        self.services = {name: Service(name, self.service_env(name), home / f"{name}.log", ports[name])
                         for name in SERVICES}

    def service_env(self, name: str) -> dict[str, str]:
        spec = self.spec["services"][name]
        env = {k: rewrite_hosts(interpolate(str(v)), self.hosts) for k, v in spec["environment"].items()}
        for key in [k for k in env if k.endswith("_HTTP_HOST")]:
            env[key] = "127.0.0.1"
        # JetStream reserves max_bytes per stream and replica on disk: 10 GiB x 8 streams x 3 does
        # not fit a test machine; the size is sizing, not topology
        env["KEFU_STREAM_MAX_BYTES"] = str(256 * 1024 * 1024)
        env["KEFU_ATTACHMENTS_MAX_BYTES"] = str(256 * 1024 * 1024)
        env["_COMMAND"] = spec["command"][0]
        return env

    def start_nodes(self) -> None:
        for node in self.nodes.values():
            node.start()

    def provision(self) -> subprocess.CompletedProcess[str]:
        env = self.service_env("provision")
        return subprocess.run([sys.executable, "-m", env.pop("_COMMAND")], cwd=ROOT, capture_output=True, text=True,
                              env={"PATH": os.environ.get("PATH", "")} | env, timeout=120)

    def start_services(self) -> None:
        for service in self.services.values():
            service.env[f"KEFU_{service.name.upper()}_HTTP_PORT"] = str(service.port)
            service.start()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        for node in self.nodes.values():
            node.stop()
