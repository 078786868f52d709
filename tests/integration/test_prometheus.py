"""A real Prometheus (Debian's package), with the project's scrape config and rules pointed at the four services
running here, answers every query the dashboard and the alert rules are built on: no panel or alert reads a metric
that does not exist."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid

import pytest
import yaml

from smartcrop.runtime.config import TOPICS
from smartcrop.runtime.kafka import admin_client

from .. import tools
from ..conftest import shared_media
from ..deploy.queries import RULES, SCRAPE_CONFIG, dashboard_expressions, rule_expressions, series_names
from .conftest import free_port, service_env, submit, wait_until_ready

pytestmark = pytest.mark.integration
CLIP = "A_man_talking_restaurant_720p_visualvoice.mp4"

SCRAPE_INTERVAL = "1s"
STAGES = ("detector", "tracker", "planner", "encoder")
SERVICES = (*STAGES, "gateway")


def local_scrape_config(ports: dict[str, int], port: int) -> dict:
    """deploy/prometheus/prometheus.yml with the Compose service names swapped for the local services' ports."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"] = {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL}
    config["rule_files"] = [str(RULES)]
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            if job["job_name"] == "smartcrop":
                group["targets"] = [f"127.0.0.1:{ports[group['labels']['service']]}"]
            else:
                group["targets"] = [f"127.0.0.1:{port}"]
    return config


class Prometheus:
    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list:
        return self.get("/api/v1/query", query=expr)["result"]


@pytest.fixture(scope="module")
def prometheus(services, gateway, tmp_path_factory):  # noqa: F811
    try:
        binary = tools.prometheus()
    except tools.ToolError as exc:
        pytest.fail(f"Prometheus unavailable: {exc}")
    work = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    ports = {**services.ports, "gateway": int(gateway.url.rsplit(":", 1)[1])}
    (work / "prometheus.yml").write_text(yaml.safe_dump(local_scrape_config(ports, port)))
    log = open(work / "prometheus.log", "wb")
    process = subprocess.Popen([str(binary), f"--config.file={work / 'prometheus.yml'}",
                                f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=log, stderr=subprocess.STDOUT)
    server = Prometheus(port)
    try:
        wait_until_ready(f"{server.url}/-/ready", process, work / "prometheus.log", "Prometheus")
        yield server
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def one_job_done(services, settings, stack_env, storage, tmp_path_factory):
    """One short job through every stage: each commits an offset, so each reports its consumer lag."""
    source = storage.put_file(f"inputs/{uuid.uuid4().hex[:6]}-{CLIP}", shared_media(CLIP))
    job = {"query": {"source": source, "format": [{"output": "mp4", "aspect_ratio": "1:1", "smart_crop": 1}]}}
    _, final = submit(settings, stack_env, job, tmp_path_factory.mktemp("job"))
    assert final["status"] == "completed", final


def wait_for_answers(prometheus: Prometheus, expressions: list[str], complete=bool, timeout: float = 90) -> dict:
    """Each expression's result, waiting while some are not ``complete`` yet (lag is reported every 15 s, rates
    need two scrapes)."""
    deadline = time.monotonic() + timeout
    while True:
        answers = {expr: prometheus.query(expr) for expr in expressions}
        if all(complete(result) for result in answers.values()) or time.monotonic() > deadline:
            return answers
        time.sleep(2)


def stages_in(result: list) -> set[str]:
    return {sample["metric"].get("stage") for sample in result}


def services_in(result: list) -> set[str]:
    return {sample["metric"]["service"] for sample in result}


def test_every_stage_is_scraped_and_up(prometheus, one_job_done):
    # A scrape of a service busy on a 2-core machine can miss its 1 s timeout once; every service must answer soon.
    answers = wait_for_answers(prometheus, ['up{job="smartcrop"} == 1'],
                               complete=lambda result: services_in(result) == set(SERVICES))
    assert services_in(next(iter(answers.values()))) == set(SERVICES)


def test_every_metric_in_the_dashboard_and_rules_has_series(prometheus, one_job_done):
    names = sorted(series_names(dashboard_expressions() + rule_expressions()))
    assert len(names) >= 8
    stage_names = [name for name in names if not name.startswith("smartcrop_gateway_")]
    answers = wait_for_answers(prometheus, stage_names, complete=lambda result: stages_in(result) == set(STAGES))
    missing = {name: sorted(set(STAGES) - stages_in(result)) for name, result in answers.items()
               if stages_in(result) != set(STAGES)}
    assert not missing, f"metrics with no series in Prometheus for these stages: {missing}"
    gateway_names = sorted(set(names) - set(stage_names))
    assert gateway_names, "the dashboard has gateway panels"
    answers = wait_for_answers(prometheus, gateway_names)
    assert not [name for name, result in answers.items() if not result], "gateway metrics with no series"


def test_every_dashboard_panel_query_answers(prometheus, one_job_done):
    answers = wait_for_answers(prometheus, dashboard_expressions())
    assert not [expr for expr, result in answers.items() if not result], "panels that would show no data"


def test_every_rule_loads_and_evaluates_without_error(prometheus, one_job_done):
    deadline = time.monotonic() + 30
    while True:
        rules = [rule for group in prometheus.get("/api/v1/rules")["groups"] for rule in group["rules"]]
        if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(1)
    assert len(rules) == len(rule_expressions())
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
    # With every service running, the down alerts' conditions clear once each target has answered a scrape (a
    # scrape of a busy service may miss its 1 s timeout now and then, which leaves an alert pending, not firing).
    down = {rule["name"]: rule["query"] for rule in rules
            if rule["name"] in ("SmartcropServiceDown", "SmartcropInstanceDown")}
    assert len(down) == 2
    answers = wait_for_answers(prometheus, list(down.values()), complete=lambda result: not result)
    assert not [name for name, query in down.items() if answers[query]], answers


def test_smartcrop_init_creates_topics_and_bucket(settings, stack_env):
    prefix = f"init-{uuid.uuid4().hex[:6]}."
    env = {**service_env(settings, stack_env), "SMARTCROP_TOPIC_PREFIX": prefix}
    result = subprocess.run([sys.executable, "-m", "smartcrop", "init", "--partitions", "2", "--wait", "30"], env=env,
                            capture_output=True, text=True, timeout=120)
    try:
        assert result.returncode == 0, result.stderr[-2000:]
        assert sorted(json.loads(result.stdout)["topics_created"]) == sorted(prefix + t for t in TOPICS.values())
        again = subprocess.run([sys.executable, "-m", "smartcrop", "init", "--wait", "30"], env=env,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and json.loads(again.stdout)["topics_created"] == [], "init is idempotent"
        metadata = admin_client(settings).list_topics(timeout=10).topics
        assert len(metadata[prefix + TOPICS["jobs"]].partitions) == 2
    finally:
        admin_client(settings).delete_topics([prefix + topic for topic in TOPICS.values()])
