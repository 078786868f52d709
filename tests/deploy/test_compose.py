"""The Compose files follow the Compose specification (its JSON schema, offline), start in a safe order, and every
setting they take from the environment is documented; the Dockerfile builds the images they use."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from .queries import REPO, SCRAPE_CONFIG

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.gpu.yml")
STAGES = ("detector", "tracker", "planner", "encoder")
README = (REPO / "README.md").read_text()


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return load("docker-compose.yml")


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_follows_the_compose_specification(compose_schema, name):
    schema = json.loads(compose_schema.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
              for error in validator.iter_errors(load(name))]
    assert not errors, "\n".join(errors)


def test_the_stack_is_complete(compose):
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert {"minio", "init", "prometheus", "grafana", *STAGES} <= set(services)
    for stage in STAGES:
        assert services[stage]["command"] == ["serve", stage]
    assert services["init"]["command"][0] == "init"


def test_long_running_services_have_healthchecks_and_one_shots_do_not_restart(compose):
    for name, service in compose["services"].items():
        one_shot = service.get("restart") == "no" or "profiles" in service
        if one_shot:
            assert service["healthcheck"] == {"disable": True}, f"{name} would inherit the stages' healthcheck"
        else:
            assert "test" in service.get("healthcheck", {}), f"{name} has no healthcheck"
            assert service.get("restart") == "unless-stopped", name


def expected_condition(dependency: str) -> str:
    """What a service waits for on each dependency: the one-shot init to succeed, infrastructure to be healthy, and a
    stage only to have started (Prometheus scrapes a stage that never gets ready: that is when its metrics matter)."""
    if dependency == "init":
        return "service_completed_successfully"
    if dependency in ("kafka", "minio", "prometheus"):
        return "service_healthy"
    if dependency in (*STAGES, "gateway"):
        return "service_started"
    raise AssertionError(f"no rule for a dependency on {dependency!r}: add one here")


def test_services_wait_for_what_they_need(compose):
    services = compose["services"]
    pairs = [(name, dependency, rule) for name, service in services.items()
             for dependency, rule in service.get("depends_on", {}).items()]
    assert len(pairs) >= 16, pairs
    for name, dependency, rule in pairs:
        assert dependency in services, (name, dependency)
        assert rule["condition"] == expected_condition(dependency), (name, dependency)
    for stage in (*STAGES, "gateway"):
        assert set(services[stage]["depends_on"]) == {"init", "kafka", "minio"}
    assert set(services["init"]["depends_on"]) == {"kafka", "minio"}
    assert set(services["prometheus"]["depends_on"]) == {*STAGES, "gateway"}


def test_stages_serve_metrics_where_prometheus_scrapes_and_grafana_is_provisioned(compose):
    services = compose["services"]
    scrape = yaml.safe_load(SCRAPE_CONFIG.read_text())
    targets = {target for job in scrape["scrape_configs"] if job["job_name"] == "smartcrop"
               for group in job["static_configs"] for target in group["targets"]}
    assert targets == {f"{stage}:{services[stage]['environment']['SMARTCROP_METRICS_PORT']}" for stage in STAGES} | {
        f"gateway:{services['gateway']['environment']['SMARTCROP_GATEWAY_PORT']}"}
    assert services["gateway"]["command"] == ["serve", "gateway"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    grafana = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana


def test_stages_run_with_a_read_only_root_filesystem(compose):
    for stage in STAGES:
        service = compose["services"][stage]
        assert service["read_only"] is True
        assert "/tmp" in service.get("tmpfs", []) or any(v.endswith(":/tmp") for v in service.get("volumes", []))


def test_the_gpu_override_gives_the_detector_a_gpu():
    detector = load("docker-compose.gpu.yml")["services"]["detector"]
    assert detector["build"]["target"] == "gpu" and detector["environment"]["SMARTCROP_DEVICE"] == "cuda:0"
    (device,) = detector["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]


def test_every_setting_from_the_environment_is_documented_in_the_readme():
    configuration = README.split("## Configuration", 1)[1]
    text = "\n".join((REPO / name).read_text() for name in COMPOSE_FILES)
    substituted = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert len(substituted) >= 10, substituted
    for variable in substituted:
        assert f"`{variable}`" in README, f"{variable} (read by the Compose files) is not in the README"
    settings = {variable for name in COMPOSE_FILES for service in load(name)["services"].values()
                for variable in service.get("environment", {}) if variable.startswith("SMARTCROP_")}
    assert len(settings) >= 10, settings
    for variable in settings:
        assert variable in configuration, f"{variable} is not in the README's Configuration table"


def test_every_setting_in_the_configmap_is_documented_in_the_readme():
    configuration = README.split("## Configuration", 1)[1]
    kustomization = yaml.safe_load((REPO / "deploy" / "k8s" / "base" / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    assert len(generator["literals"]) >= 5, generator
    for literal in generator["literals"]:
        assert literal.split("=", 1)[0] in configuration, literal


def test_the_image_runs_as_a_user_and_has_cpu_and_gpu_targets():
    dockerfile = (REPO / "Dockerfile").read_text()
    targets = re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.MULTILINE)
    assert targets[-1] == "cpu" and "gpu" in targets, "the default target (the last) is the CPU image"
    for target in ("cpu", "gpu"):
        stage = dockerfile.split(f" AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert re.search(r"^USER 10001", stage, re.MULTILINE), f"{target} image must not run as root"
    assert 'ENTRYPOINT ["smartcrop"]' in dockerfile and 'CMD ["serve", "detector"]' in dockerfile
    assert "download.pytorch.org/whl/cpu" in dockerfile.split(" AS build-cpu", 1)[1].split("\nFROM ", 1)[0]
    ignored = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert ignored[0] == "*" and "!services/" in ignored, "only what the image needs goes to the build context"
