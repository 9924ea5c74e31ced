"""`make run`'s process tree for real: bundled NATS, five service processes, supervision, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devtools.natsserver import free_port
from devtools.payloads import CONTENT_TYPES, payload
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.logscan import log_dir
from tests.support.services import tap, wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]
SERVICES = ("intake", "routing", "feedback", "metrics", "console")


async def test_make_run_serves_the_request_path_restarts_a_killed_service_and_stops_cleanly(tmp_path) -> None:
    ports = {name: free_port() for name in SERVICES}
    nats_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env |= {"KEFU_VAR_DIR": str(tmp_path / "var"), "KEFU_DEV_NATS_PORT": str(nats_port)}
    env |= {f"KEFU_{name.upper()}_HTTP_PORT": str(port) for name, port in ports.items()}
    proc = subprocess.Popen([sys.executable, "-m", "devtools.run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            async def all_ready() -> bool:
                try:
                    codes = [(await http.get(f"http://127.0.0.1:{p}/readyz")).status_code for p in ports.values()]
                except httpx.TransportError:
                    return False
                return codes == [200] * len(ports)

            await wait_until(all_ready, timeout=60, what="the services and the console ready")
            # a second `make run` on the same var/ is refused before it opens anything: the probe
            # saw one open the live JetStream store ("could not locate msg block"), then exit 0
            store = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "var" / "jetstream").rglob("*"))
            second = subprocess.run([sys.executable, "-m", "devtools.run"], cwd=ROOT, env=env, capture_output=True,
                                    text=True, timeout=60)
            elsewhere = subprocess.run([sys.executable, "-m", "devtools.run"], cwd=ROOT, capture_output=True,
                                       text=True, timeout=60, env=env | {"KEFU_VAR_DIR": str(tmp_path / "var2")})
            assert second.returncode == 1 and "another `make run` (pid" in second.stdout, second.stdout
            assert "nats-server" not in second.stdout and "started" not in second.stdout
            assert elsewhere.returncode == 1 and f"nats port {nats_port}" in elsewhere.stdout, elsewhere.stdout
            assert not (tmp_path / "var2" / "jetstream").exists()
            assert store == sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "var" / "jetstream").rglob("*"))
            creds = json.loads((tmp_path / "var" / "dev-credentials.json").read_text())
            assert set(creds) == {"admin_token", "adapter_key"}
            intake = f"http://127.0.0.1:{ports['intake']}"
            auth = {"Authorization": f"Bearer {creds['adapter_key']}"}
            # the console serves its page and reaches routing behind it (the ports make run chose)
            console = f"http://127.0.0.1:{ports['console']}"
            admin = {"Authorization": f"Bearer {creds['admin_token']}"}
            page = await http.get(f"{console}/")
            assert page.status_code == 200 and "/assets/console.js" in page.text
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert (await http.get(f"{console}/v1/me", headers=admin)).json()["role"] == "admin"
            assert (await http.get(f"{console}/v1/floor", headers=admin)).status_code == 200

            async with tap(f"nats://127.0.0.1:{nats_port}", s.STREAM_EVENTS, s.EVENTS_ALL) as events:
                resp = await http.post(f"{intake}/v1/intake/sms", content=payload(Channel.sms, "SM-e2e-1"),
                                       headers={**auth, "Content-Type": CONTENT_TYPES[Channel.sms]})
                assert resp.status_code == 202
                await events.wait_for(s.REQUEST_ASSIGNED, request_id=resp.json()["request_id"], timeout=30)

                old_pid = (await http.get(f"{intake}/healthz")).json()["pid"]
                os.kill(old_pid, signal.SIGKILL)

                async def restarted() -> bool:
                    try:
                        health = (await http.get(f"{intake}/healthz")).json()
                        return health["pid"] != old_pid and (await http.get(f"{intake}/readyz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_until(restarted, timeout=60, what="intake restarted by the supervisor")
                resp = await http.post(f"{intake}/v1/intake/app", content=payload(Channel.app, "e2e-2"),
                                       headers={**auth, "Content-Type": CONTENT_TYPES[Channel.app]})
                await events.wait_for(s.REQUEST_ASSIGNED, request_id=resp.json()["request_id"], timeout=30)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output = proc.communicate(timeout=60)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0].decode(errors="replace")
    (log_dir() / f"make-run-{proc.pid}.log").write_text(output, encoding="utf-8")
    assert proc.returncode == 0, output[-3000:]
    assert "intake exited with -9; restarting" in output
    assert output.rstrip().endswith("[kefu] stopped")
    at = output.find("Traceback")
    assert at < 0, output[max(0, at - 500): at + 2500].replace("\\n", "\n")


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


async def test_a_killed_supervisor_takes_nats_and_the_services_with_it(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env |= {"KEFU_VAR_DIR": str(tmp_path / "var"), "KEFU_DEV_NATS_PORT": str(free_port())}
    env |= {f"KEFU_{name.upper()}_HTTP_PORT": str(free_port()) for name in SERVICES}
    proc = subprocess.Popen([sys.executable, "-m", "devtools.run"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        children = await wait_until(lambda: len(children_of(proc.pid)) == 1 + len(SERVICES) and children_of(proc.pid),
                                    timeout=30, what="nats-server and the services started")
        proc.kill()  # SIGKILL: the supervisor cannot stop anyone itself
        proc.wait()
        await wait_until(lambda: not alive(children), timeout=60, what="every child gone with the supervisor")
    finally:
        for pid in alive(children_of(proc.pid)):
            os.kill(pid, signal.SIGKILL)
    assert not alive(children)


def test_make_run_refuses_a_configuration_mistake_before_starting_anything(tmp_path) -> None:
    """The probe: a typo made one service restart for ever with a traceback each time while the
    others ran (intake accepted requests nothing routed)."""
    config = tmp_path / "config"
    config.mkdir()
    for source in (ROOT / "config").glob("*.yaml"):
        (config / source.name).write_text(source.read_text())
    departments = config / "departments.yaml"
    departments.write_text(departments.read_text().replace("{lead: quality,", "{lead: qualty,", 1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env |= {"KEFU_VAR_DIR": str(tmp_path / "var"), "KEFU_CONFIG_DIR": str(config),
            "KEFU_DEV_NATS_PORT": str(free_port())}
    env |= {f"KEFU_{name.upper()}_HTTP_PORT": str(free_port()) for name in SERVICES}
    done = subprocess.run([sys.executable, "-m", "devtools.run"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    typo_line = next(i for i, line in enumerate(departments.read_text().splitlines(), 1) if "qualty" in line)
    assert done.returncode == 1
    assert f"{departments}:{typo_line}: responsibility.product_quality.lead: unknown department 'qualty'" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr and "(pid" not in done.stdout  # no process was started
    assert not (tmp_path / "var" / "jetstream").exists()


@pytest.mark.parametrize("service", ["routing", "feedback"])
def test_a_service_refuses_a_bad_configuration_once_with_its_place_and_exit_78(tmp_path, service: str) -> None:
    """Outside `make run` (compose, Kubernetes): one clear line, no traceback, EX_CONFIG; a
    supervisor that restarts it gets the same line again, not 30 lines of traceback."""
    config = tmp_path / "config"
    config.mkdir()
    for source in (ROOT / "config").glob("*.yaml"):
        (config / source.name).write_text(source.read_text())
    broken = config / "routing.yaml" if service == "routing" else config / "feedback.yaml"
    broken.write_text(broken.read_text() + "\nno_such_setting: 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")} | {
        "KEFU_CONFIG_DIR": str(config), "KEFU_ADMIN_TOKEN": "x" * 32, "KEFU_FEEDBACK_SURVEY_SECRET": "y" * 32}
    done = subprocess.run([sys.executable, "-m", f"services.{service}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    lines = [line for line in done.stderr.splitlines() if "configuration error" in line]
    assert done.returncode == 78, done.stderr[-2000:]
    assert lines == [f"kefu {service}: configuration error: {broken}:{len(broken.read_text().splitlines())}: "
                     "no_such_setting: Extra inputs are not permitted"]
    assert "Traceback" not in done.stderr


README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_walkthrough_runs_as_written_from_request_to_answered_survey(tmp_path) -> None:
    """README's "Your first request, end to end", in bash as a newcomer would paste it into a second
    terminal beside `make run`: only the ports differ (free ones, so tests can run side by side)."""
    import re

    walkthrough = next(b for b in re.findall(r"```sh\n(.*?)```", README, flags=re.S) if "kefu survey link" in b)
    ports = {name: free_port() for name in SERVICES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env |= {"KEFU_VAR_DIR": str(tmp_path / "var"), "KEFU_DEV_NATS_PORT": str(free_port())}
    env |= {f"KEFU_{name.upper()}_HTTP_PORT": str(port) for name, port in ports.items()}
    for name, default in zip(SERVICES, range(8081, 8086), strict=True):
        walkthrough = walkthrough.replace(f"127.0.0.1:{default}", f"127.0.0.1:{ports[name]}")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")  # the terminal is at the repository's root
    proc = subprocess.Popen([sys.executable, "-m", "devtools.run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for port in ports.values():
            wait_until_ready(port)
        user = {k: v for k, v in env.items() if not k.startswith("KEFU_")} | {
            f"KEFU_{name.upper()}_HTTP_PORT": str(port) for name, port in ports.items()}
        done = subprocess.run(["bash", "-e", "-c", walkthrough], cwd=tmp_path, env=user, capture_output=True,
                              text=True, timeout=120)
        # then the operator's commands of docs/operations.md on a payload intake refused
        ops = subprocess.run(["bash", "-e", "-c", OPERATOR], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                             env=user | {"KEFU_NATS_URL": f"nats://127.0.0.1:{env['KEFU_DEV_NATS_PORT']}"})
        # and docs/security.md's example as it is written
        security = next(b for b in re.findall(r"```sh\n(.*?)```", (ROOT / "docs" / "security.md").read_text(),
                                              flags=re.S) if "curl" in b).replace("127.0.0.1:8082",
                                                                                   f"127.0.0.1:{ports['routing']}")
        example = subprocess.run(["bash", "-e", "-c", security], cwd=tmp_path, env=user, capture_output=True,
                                 text=True, timeout=60)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    out = done.stdout
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert '"error"' not in out, out
    assert re.search(r"request req_[a-z2-7]{26}", out) and re.search(r"survey http://127\.0\.0\.1:\d+/v1/surveys/srv_", out)
    assert '"state":"accepted"' in out and '"state":"resolved"' in out and '"reopened":false' in out
    assert "(answered," in out and out.rstrip().endswith("resolved")
    assert ops.returncode == 0, ops.stdout[-2000:] + ops.stderr[-2000:]
    assert "Kefu-Reason: missing_content" in ops.stdout and '{"event_id": "ops-1"}' in ops.stdout
    assert "replayed into kefu.intake.app" in ops.stdout and "no dead letters" in ops.stdout
    assert example.returncode == 0 and '"queue":"business.normal"' in example.stdout, example.stdout + example.stderr


# docs/operations.md's commands, on a payload intake refuses (an app event without text)
OPERATOR = """
source .venv/bin/activate
KEY=$(python3 -c 'import json; print(json.load(open("var/dev-credentials.json"))["adapter_key"])')
REJ=$(curl -sS -X POST http://127.0.0.1:$KEFU_INTAKE_HTTP_PORT/v1/intake/app -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' -d '{"event_id": "ops-1"}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["rejection_id"])')
kefu rejected show $REJ 2>&1
echo
kefu rejected replay $REJ
kefu dlq list -n 5
"""


def wait_until_ready(port: int) -> None:
    import time

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"service on {port} not ready in 90 s")
