"""The image's contents and deploy/compose, checked without a Docker engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from shared.nats.topology import MIN_SERVER

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
SERVICES = ("intake", "routing", "feedback", "metrics", "console", "gateway")


def test_the_installed_package_starts_every_service_outside_the_source_tree(tmp_path: Path) -> None:
    """What the Dockerfile installs (`pip install .`): every module the services need, the default
    configuration as package data (no KEFU_CONFIG_DIR, no config/ beside it), and the `kefu` command."""
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheel_dir), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    assert "deprecat" not in (build.stdout + build.stderr).lower()  # e.g. the project.license table
    wheels = list(wheel_dir.glob("kefu-*.whl"))
    assert len(wheels) == 1
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheels[0])], check=True, capture_output=True, timeout=300)
    assert sorted(p.name for p in (site / "shared" / "defaults").glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "config").glob("*.yaml"))
    static = ROOT / "services" / "console" / "static"  # the console's page, served as the files are
    assert sorted(p.name for p in (site / "services" / "console" / "static").iterdir()) == sorted(
        p.name for p in static.iterdir())
    code = "; ".join(f"import services.{name}.app as m{i}; m{i}.create_app()" for i, name in enumerate(SERVICES))
    code += "; import devtools.provision; print('ok')"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")} | {"PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    assert not (site / "tests").exists()  # tests are not shipped
    cli = subprocess.run([str(site / "bin" / "kefu"), "--help"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert all(command in cli.stdout for command in ("run", "provision", *SERVICES))
    refused = subprocess.run([str(site / "bin" / "kefu"), "routing"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=60)  # the entry point runs the service, which wants credentials
    assert refused.returncode != 0 and "KEFU_ADMIN_TOKEN is not set" in refused.stderr, refused.stderr[-2000:]


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


def test_the_image_installs_a_lock_that_satisfies_pyproject() -> None:
    """requirements.lock (make lock) pins, with hashes, a version of every dependency that
    pyproject.toml's specifiers accept: a dependency changed without `make lock` fails here."""
    import tomllib

    from packaging.requirements import Requirement

    pinned: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split(" ")[0].split("==")
            pinned[name.lower().replace("_", "-")] = version
    assert (ROOT / "requirements.lock").read_text().count("--hash=sha256:") >= len(pinned)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in pinned, f"{name} is not in requirements.lock: run make lock"
        assert req.specifier.contains(pinned[name], prereleases=True), (name, pinned[name], str(req.specifier))
    text = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in text and "--no-deps ." in text
