"""The PromQL that the dashboard and the alert rules run, and the smartcrop metric names in it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "smartcrop.json"
RULES = DEPLOY / "prometheus" / "rules.yml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"

# Grafana's variables, as the test queries stand them in.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s"}
_METRIC = re.compile(r"\bsmartcrop_[a-z_]+")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return [_with_grafana_variables(expr) for expr in expressions]


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def series_names(expressions: list[str]) -> set[str]:
    """Every smartcrop_ series an expression reads, as named there (``..._bucket`` included)."""
    return {name for expr in expressions for name in _METRIC.findall(expr)}


def metric_family(series: str) -> str:
    """The name a metric is declared with: histograms' ``_bucket/_sum/_count`` series belong to their histogram."""
    for suffix in _HISTOGRAM_SUFFIXES:
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


def _with_grafana_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr
