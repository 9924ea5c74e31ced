"""deploy/k8s: each overlay builds with kustomize and validates strictly against Kubernetes 1.33."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from shared.bus import MIN_SERVER

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
VERSION = "1.33.0"
SERVICES = ("intake", "routing", "feedback", "metrics")


def build(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (its built-in kustomize) is needed; .ci/run installs it"
    out = subprocess.run([kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone",
                          str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_builds_and_every_object_validates_strictly(overlay: str) -> None:
    objects = build(overlay)
    for obj in objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked below
        kubernetes_validate.validate(obj, VERSION, strict=True)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds.count("Deployment") == 4 and kinds.count("PodDisruptionBudget") == 4
    assert all(o["metadata"].get("namespace") == "kefu" for o in objects if o["kind"] != "Namespace")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_deployments_are_hardened_probed_and_drain_gracefully(overlay: str) -> None:
    objects = build(overlay)
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("kefu-config"))
    assert {"rules.yaml", "departments.yaml", "sla.yaml", "routing.yaml", "messages.yaml", "feedback.yaml"} <= set(config["data"])
    for obj in (o for o in objects if o["kind"] == "Deployment"):
        pod = obj["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] and pod["terminationGracePeriodSeconds"] >= 45
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                 "capabilities": {"drop": ["ALL"]}}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"  # the worker's own loop, not NATS
        assert container["readinessProbe"]["httpGet"]["path"] == container["startupProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        env = {e["name"]: e for e in container["env"]}
        assert env["KEFU_PROVISION"]["value"] == "false" and "secretKeyRef" in env["KEFU_NATS_PASSWORD"]["valueFrom"]
        assert obj["spec"]["replicas"] == (2 if overlay == "prod" else 1)


def test_prod_scales_intake_and_routing_on_consumer_lag() -> None:
    scaled = {o["metadata"]["name"]: o for o in build("prod") if o["kind"] == "ScaledObject"}
    assert set(scaled) == {"intake", "routing"}
    for name, obj in scaled.items():
        trigger = obj["spec"]["triggers"][0]
        assert obj["spec"]["scaleTargetRef"]["name"] == name and trigger["type"] == "nats-jetstream"
        assert trigger["metadata"]["consumer"] == name and trigger["metadata"]["account"] == "KEFU"
        assert obj["spec"]["minReplicaCount"] >= 2


def test_nats_helm_values_ask_for_a_durable_three_node_cluster() -> None:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    assert values["config"]["cluster"] == {"enabled": True, "replicas": 3}
    assert values["config"]["jetstream"]["fileStore"]["pvc"]["enabled"] is True
    assert values["config"]["jetstream"]["merge"]["sync_interval"] == "always"
    assert values["podDisruptionBudget"]["enabled"] is True
    major, minor = map(int, values["container"]["image"]["tag"].split("-")[0].split(".")[:2])
    assert (major, minor) >= MIN_SERVER  # message schedules
