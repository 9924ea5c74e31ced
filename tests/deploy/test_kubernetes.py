"""deploy/k8s: each overlay builds with kustomize and validates strictly against Kubernetes 1.33."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from shared.nats.topology import MIN_SERVER

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
VERSION = "1.33.0"
SERVICES = ("intake", "routing", "feedback", "metrics", "console", "gateway")


def build(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (its built-in kustomize) is needed; .ci/run installs it"
    # plain `kubectl kustomize`, default load restrictor: what Argo CD and Flux do
    out = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_builds_and_every_object_validates_strictly(overlay: str) -> None:
    objects = build(overlay)
    for obj in objects:
        if obj["apiVersion"].startswith(("keda.sh/", "monitoring.coreos.com/")):
            continue  # CRDs: checked below
        kubernetes_validate.validate(obj, VERSION, strict=True)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds.count("Deployment") == len(SERVICES) and kinds.count("PodDisruptionBudget") == len(SERVICES)
    assert all(o["metadata"].get("namespace") == "kefu" for o in objects if o["kind"] != "Namespace")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_deployments_are_hardened_probed_and_drain_gracefully(overlay: str) -> None:
    objects = build(overlay)
    for obj in (o for o in objects if o["kind"] == "Deployment"):
        pod = obj["spec"]["template"]["spec"]
        container = pod["containers"][0]
        # past the ack wait (30 s), so in-flight messages are finished; the console consumes none, and
        # ends its live streams 3 s into a stop (ConsoleSettings.graceful_shutdown_seconds)
        grace = 15 if obj["metadata"]["name"] == "console" else 45
        assert pod["securityContext"]["runAsNonRoot"] and pod["terminationGracePeriodSeconds"] >= grace
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                 "capabilities": {"drop": ["ALL"]}}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"  # the worker's own loop, not NATS
        assert container["readinessProbe"]["httpGet"]["path"] == container["startupProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        env = {e["name"]: e for e in container["env"]}
        assert env["KEFU_PROVISION"]["value"] == "false" and "secretKeyRef" in env["KEFU_NATS_PASSWORD"]["valueFrom"]
        name = obj["metadata"]["name"]
        if overlay == "prod" and name in ("intake", "routing"):
            assert "replicas" not in obj["spec"]  # KEDA owns the count
        elif name == "gateway":
            assert obj["spec"]["replicas"] == 1  # one WeChat access token per account (docs/channels.md)
        else:
            assert obj["spec"]["replicas"] == (2 if overlay == "prod" else 1)
        spread = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
        assert spread == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        assert "KEFU_CONFIG_DIR" not in env  # the image's packaged configuration
        if name == "metrics":  # its lookup index in a file on the pod's disk, kept across container restarts
            index = Path(env["KEFU_METRICS_INDEX_PATH"]["value"])
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volume = next(v for v in pod["volumes"] if v["name"] == mounts[str(index.parent)])
            assert volume["emptyDir"].get("medium") != "Memory"


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


def test_prometheus_operator_scrapes_every_service_under_the_job_the_rules_select() -> None:
    """kube-prometheus-stack names the job after the Service label its ServiceMonitor's jobLabel
    names: kefu-<service>, as `up{job=~"kefu-.*"}` and the dashboards expect."""
    import re

    objects = build("prod")
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    services = [o for o in objects if o["kind"] == "Service"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [svc for svc in services if selector.items() <= svc["metadata"]["labels"].items()]
    assert {svc["metadata"]["name"] for svc in scraped} == set(SERVICES)
    jobs = {svc["metadata"]["labels"][monitor["spec"]["jobLabel"]] for svc in scraped}
    assert jobs == {f"kefu-{name}" for name in SERVICES}
    assert all(re.fullmatch("kefu-.*", job) for job in jobs)
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for svc in scraped for p in svc["spec"]["ports"]}
    for obj in (o for o in objects if o["kind"] == "Deployment"):  # annotation discovery can relabel from it
        assert obj["spec"]["template"]["metadata"]["labels"]["kefu.io/job"] == f"kefu-{obj['metadata']['name']}"


def test_prometheus_rule_carries_the_tested_rules(tmp_path: Path) -> None:
    from devtools import gen_dashboards

    committed = (K8S / "overlays" / "prod" / "prometheusrule.yaml").read_text()
    assert committed == gen_dashboards.prometheus_rule(), "run `make docs` and commit"
    rule = next(o for o in build("prod") if o["kind"] == "PrometheusRule")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package) is needed; .ci/run installs it"
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "34 rules found" in checked.stdout, checked.stdout + checked.stderr


def test_network_policy_lets_in_http_only_and_out_to_nats_and_dns() -> None:
    objects = build("prod")
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == ["http"]
    assert sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]) == [53, 53, 4222]
    pods = [o["spec"]["template"]["metadata"]["labels"] for o in objects if o["kind"] == "Deployment"]
    assert all("kefu.io/job" in labels for labels in pods)  # the policy's selector covers every service
