"""Prometheus accepts the scrape config and the rules, the alerts fire when they should (promtool's unit tests), and
the dashboard and rules read only metrics the services declare."""

from __future__ import annotations

import json

import yaml
from prometheus_client import REGISTRY

from smartcrop.core.errors import CODES
from smartcrop.gateway import metrics as gateway_metrics
from smartcrop.runtime import metrics

from .conftest import run_tool
from .queries import (
    DASHBOARD,
    DEPLOY,
    RULES,
    SCRAPE_CONFIG,
    dashboard_expressions,
    metric_family,
    rule_expressions,
    series_names,
)

STAGES = ("detector", "tracker", "planner", "encoder")


def test_promtool_accepts_the_scrape_config_and_the_rules_it_loads(promtool):
    output = run_tool(promtool, "check", "config", SCRAPE_CONFIG)
    assert "SUCCESS" in output and "rules found" in output


def test_promtool_accepts_the_rules(promtool):
    assert "SUCCESS" in run_tool(promtool, "check", "rules", RULES)


def test_alerts_fire_when_they_should_and_only_then(promtool):
    assert "SUCCESS" in run_tool(promtool, "test", "rules", DEPLOY / "prometheus" / "tests" / "rules_test.yml")


def test_the_issue_asks_for_these_alerts():
    alerts = {rule["alert"] for rule in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]}
    assert {"SmartcropConsumerLagGrowing", "SmartcropJobFailureRate", "SmartcropNoProgress",
            "SmartcropServiceDown", "SmartcropGateway5xx"} <= alerts


def test_every_stage_is_scraped_with_a_service_label():
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "smartcrop"]
    labelled = {group["labels"]["service"]: group["targets"] for group in job["static_configs"]}
    assert labelled == {**{stage: [f"{stage}:9100"] for stage in STAGES}, "gateway": ["gateway:9100"]}


def test_dashboard_and_rules_read_only_declared_metrics():
    for stage in STAGES:
        metrics.initialise(stage, CODES)
    gateway_metrics.initialise()
    declared = {family.name: family.type for family in REGISTRY.collect() if family.name.startswith("smartcrop_")}
    read = series_names(dashboard_expressions() + rule_expressions())
    assert len(read) >= 5, read  # the expressions were found and parsed
    for series in read:
        family = metric_family(series)
        name = family[: -len("_total")] if family.endswith("_total") else family
        assert name in declared, f"{series} is not a metric of smartcrop.runtime.metrics or smartcrop.gateway.metrics"
        if series != family:
            assert declared[name] == "histogram", f"{series}: {name} is not a histogram"


def test_the_dashboard_shows_what_operators_ask_for():
    text = " ".join(dashboard_expressions())
    for needed in ("smartcrop_jobs_completed_total", "smartcrop_stage_duration_seconds_bucket",
                   "smartcrop_frames_processed_total", "smartcrop_inference_seconds_total",
                   "smartcrop_consumer_lag", "smartcrop_job_failures_total", "smartcrop_jobs_in_flight"):
        assert needed in text
    assert "histogram_quantile(0.5," in text and "histogram_quantile(0.95," in text
    dashboard = json.loads(DASHBOARD.read_text())
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"]), \
        "panels follow the datasource variable, so the dashboard imports into any Grafana"
