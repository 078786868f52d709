"""Every Kustomize overlay builds, and what it builds is a deployment we would run: probes, limits, a locked-down
container, KEDA scaling on the right consumer groups, disruption budgets, network policies and monitoring."""

from __future__ import annotations

import pytest
import yaml

from smartcrop.runtime.config import TOPICS
from smartcrop.runtime.kafka import DEFAULT_PARTITIONS
from smartcrop.stages import stages

from .conftest import run_tool
from .queries import DEPLOY, RULES

K8S = DEPLOY / "k8s"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").is_file())
STAGES = ("detector", "tracker", "planner", "encoder")
PROBES = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}


@pytest.fixture(scope="module")
def built(kustomize) -> dict[str, list[dict]]:
    return {overlay: [doc for doc in yaml.safe_load_all(run_tool(kustomize, "build", K8S / "overlays" / overlay))
                      if doc] for overlay in OVERLAYS}


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def stage_deployments(docs: list[dict]) -> dict[str, dict]:
    return {stage: of_kind(docs, "Deployment")[f"smartcrop-{stage}"] for stage in STAGES}


def the_container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_there_are_dev_prod_and_gpu_overlays():
    assert {"dev", "prod", "prod-gpu"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_stage_is_a_deployment_serving_its_stage(built, overlay):
    for stage, deployment in stage_deployments(built[overlay]).items():
        assert the_container(deployment)["args"] == ["serve", stage]
        assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == stage


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_limits_and_a_locked_down_container(built, overlay):
    for stage, deployment in stage_deployments(built[overlay]).items():
        pod = deployment["spec"]["template"]["spec"]
        container = the_container(deployment)
        for probe, path in PROBES.items():
            assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, (stage, probe)
        assert {"name": "metrics", "containerPort": 9100} in container["ports"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), (stage, kind)
        assert pod["securityContext"]["runAsNonRoot"] is True
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True and context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
        # A read-only root needs writable scratch space and a model cache, each of a bounded size.
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for path in ("/tmp", "/var/cache/smartcrop"):
            assert volumes[mounts[path]]["emptyDir"]["sizeLimit"], (stage, path)
        assert {"name": "SMARTCROP_HOME", "value": "/var/cache/smartcrop"} in container["env"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_comes_from_the_configmap_and_credentials_from_the_secret(built, overlay):
    docs = built[overlay]
    configmaps = of_kind(docs, "ConfigMap")
    for deployment in stage_deployments(docs).values():
        sources = the_container(deployment)["envFrom"]
        (config,) = [source["configMapRef"]["name"] for source in sources if "configMapRef" in source]
        (secret,) = [source["secretRef"]["name"] for source in sources if "secretRef" in source]
        assert config in configmaps and config.startswith("smartcrop-config")
        assert secret.startswith("smartcrop-secrets")
        data = configmaps[config]["data"]
        assert data["SMARTCROP_METRICS_PORT"] == "9100"
        assert not any(key in data for key in ("SMARTCROP_S3_ACCESS_KEY", "SMARTCROP_S3_SECRET_KEY",
                                               "SMARTCROP_SECRET_KEY")), "credentials belong in the Secret"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_each_stage_on_its_consumer_group_lag(built, overlay):
    docs = built[overlay]
    (config,) = [cm for name, cm in of_kind(docs, "ConfigMap").items() if name.startswith("smartcrop-config")]
    prefix = config["data"].get("SMARTCROP_TOPIC_PREFIX", "")
    scaled = of_kind(docs, "ScaledObject")
    assert set(scaled) == {f"smartcrop-{stage}" for stage in STAGES}
    for stage in STAGES:
        spec = scaled[f"smartcrop-{stage}"]["spec"]
        assert spec["scaleTargetRef"]["name"] == f"smartcrop-{stage}"
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= DEFAULT_PARTITIONS
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "kafka"
        metadata = trigger["metadata"]
        assert metadata["consumerGroup"] == f"{prefix}smartcrop-{stage}"  # StageService.group_id
        assert metadata["topic"] == prefix + TOPICS[stages()[stage].input_topic]
        assert metadata["bootstrapServers"] == config["data"]["SMARTCROP_KAFKA_BOOTSTRAP"]
        assert metadata["offsetResetPolicy"] == "earliest"  # as the stages' consumers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_stage_has_a_disruption_budget(built, overlay):
    budgets = of_kind(built[overlay], "PodDisruptionBudget")
    for stage, deployment in stage_deployments(built[overlay]).items():
        budget = budgets[f"smartcrop-{stage}"]["spec"]
        assert budget["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        assert budget.get("maxUnavailable") == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_cover_the_stages_and_admit_only_metrics_scrapes(built, overlay):
    policies = of_kind(built[overlay], "NetworkPolicy").values()
    for deployment in stage_deployments(built[overlay]).values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [p["spec"] for p in policies
                    if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert {"Ingress", "Egress"} <= {kind for spec in covering for kind in spec["policyTypes"]}
        ingress_ports = {port["port"] for spec in covering for rule in spec.get("ingress", [])
                         for port in rule["ports"]}
        assert ingress_ports == {9100}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_operator_scrapes_the_stages_and_loads_the_alerts(built, overlay):
    docs = built[overlay]
    (monitor,) = of_kind(docs, "PodMonitor").values()
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "smartcrop"}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
            "targetLabel": "service"} in endpoint["relabelings"]
    (rule,) = of_kind(docs, "PrometheusRule").values()
    assert rule["spec"] == yaml.safe_load(RULES.read_text()), "PrometheusRule must equal deploy/prometheus/rules.yml"
    (service,) = [s for name, s in of_kind(docs, "Service").items() if name == "smartcrop-metrics"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_and_bucket_are_created_by_a_one_shot_job(built, overlay):
    job = of_kind(built[overlay], "Job")["smartcrop-init"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "init"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_gpu_overlay_gives_a_gpu_to_the_detector_only(built):
    for overlay in OVERLAYS:
        for stage, deployment in stage_deployments(built[overlay]).items():
            container = the_container(deployment)
            wants_gpu = overlay.endswith("gpu") and stage == "detector"
            for kind in ("requests", "limits"):
                assert ("nvidia.com/gpu" in container["resources"][kind]) == wants_gpu, (overlay, stage, kind)
            env = {item["name"]: item.get("value") for item in container["env"]}
            assert (env.get("SMARTCROP_DEVICE") == "cuda:0") == wants_gpu, (overlay, stage)
            assert container["image"].endswith("-gpu") == wants_gpu, (overlay, stage)


def test_the_dev_overlay_is_self_contained(built):
    docs = built["dev"]
    assert {"kafka"} <= set(of_kind(docs, "StatefulSet")) and "minio" in of_kind(docs, "Deployment")
    assert any(name.startswith("smartcrop-secrets") for name in of_kind(docs, "Secret"))
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {"smartcrop-dev"}


def test_prod_runs_at_least_two_of_each_stage(built):
    for overlay in ("prod", "prod-gpu"):
        for scaled in of_kind(built[overlay], "ScaledObject").values():
            assert scaled["spec"]["minReplicaCount"] >= 2
        assert not any(name.startswith("smartcrop-secrets") for name in of_kind(built[overlay], "Secret")), \
            "production credentials are created by the operator, never committed"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_is_served_behind_an_ingress_scaled_by_an_hpa_and_fenced_by_a_policy(built, overlay):
    docs = built[overlay]
    deployment = of_kind(docs, "Deployment")["smartcrop-gateway"]
    container = the_container(deployment)
    assert container["args"] == ["serve", "gateway"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["SMARTCROP_GATEWAY_PORT"] == "9100"  # the API beside /metrics and the probes, on port `metrics`
    for probe, path in PROBES.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(source.get("secretRef", {}).get("name", "").startswith("smartcrop-secrets")
               for source in container["envFrom"])  # SMARTCROP_GATEWAY_API_KEYS
    service = of_kind(docs, "Service")["smartcrop-gateway"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "metrics"}]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"
    (ingress,) = of_kind(docs, "Ingress").values()
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == "/v1" and path["backend"]["service"] == {"name": "smartcrop-gateway",
                                                                    "port": {"name": "http"}}
    hpa = of_kind(docs, "HorizontalPodAutoscaler")["smartcrop-gateway"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "smartcrop-gateway" and hpa["minReplicas"] >= 2
    assert {metric["type"] for metric in hpa["metrics"]} == {"Resource", "Pods"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    covering = [p["spec"] for p in of_kind(docs, "NetworkPolicy").values()
                if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
    sources = [source for spec in covering for rule in spec.get("ingress", []) for source in rule["from"]]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in sources
    assert {"Ingress", "Egress"} <= {kind for spec in covering for kind in spec["policyTypes"]}
