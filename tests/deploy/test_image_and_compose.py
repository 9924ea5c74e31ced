"""The image's contents and deploy/compose, checked without a Docker engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from shared.bus import MIN_SERVER

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
SERVICES = ("intake", "routing", "feedback", "metrics")


def test_the_installed_package_starts_every_service_outside_the_source_tree(tmp_path: Path) -> None:
    """What the Dockerfile installs (`pip install .`) holds every module the services need."""
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
                    str(wheel_dir), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheels = list(wheel_dir.glob("kefu-*.whl"))
    assert len(wheels) == 1
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheels[0])], check=True, capture_output=True, timeout=300)
    code = "; ".join(f"import services.{name}.app as m{i}; m{i}.create_app()" for i, name in enumerate(SERVICES))
    code += "; import devtools.provision; print('ok')"
    env = {**os.environ, "PYTHONPATH": str(site), "KEFU_CONFIG_DIR": str(ROOT / "config")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    assert not (site / "tests").exists()  # tests are not shipped


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) == 2 and all("slim" in f for f in froms)
    final = text[text.rindex("\nFROM "):]
    assert "COPY --from=build /opt/kefu /opt/kefu" in final and "pip install" not in final
    assert "USER 10001" in final and 'ENTRYPOINT ["python", "-m"]' in final
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", "tests"} <= set(ignored)


def test_compose_validates_against_the_compose_spec() -> None:
    out = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
                          "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_wiring() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    for node in ("nats-1", "nats-2", "nats-3"):
        tag = services[node]["image"].split(":")[1]
        assert tuple(map(int, tag.split("-")[0].split(".")[:2])) >= MIN_SERVER  # message schedules
        assert "ports" not in services[node]  # client and monitoring ports stay on the private network
        for volume in services[node]["volumes"]:
            source = volume.split(":")[0]
            assert source in compose["volumes"] or (COMPOSE.parent / source).exists(), source
    for name in SERVICES:
        svc = services[name]
        env = svc["environment"]
        assert svc["command"] == [f"services.{name}"] and svc["restart"] == "unless-stopped"
        assert env["KEFU_PROVISION"] == "false" and env["KEFU_NATS_USER"] == name
        assert int(svc["stop_grace_period"].rstrip("s")) > 30  # longer than KEFU_ACK_WAIT_SECONDS
        assert "readyz" in " ".join(svc["healthcheck"]["test"])
        assert all(p.startswith("127.0.0.1:") for p in svc["ports"])
    assert services["provision"]["command"] == ["devtools.provision"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            assert source in compose["volumes"] or (COMPOSE.parent / source).exists(), source
    example = (COMPOSE.parent / "env.example").read_text()
    required = {part.split(":?")[0].removeprefix("${") for part in COMPOSE.read_text().split("$") if ":?" in part}
    assert all(var.strip("{") in example for var in required), required
