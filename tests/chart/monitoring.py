"""Helpers of the monitoring tests: the chart's rules and dashboard, PromQL, promtool, CRD schemas.

Loaded by path from conftest.py (tests/ is not a package) and handed out through a fixture.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser
import yaml

from ack_secrets_provider.core.observability.metrics import ProviderMetrics

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_FILES = REPO_ROOT / "charts" / "csi-secrets-store-provider-alibabacloud" / "files"
ALERTS_FILE = CHART_FILES / "alerts.yaml"
DASHBOARD_FILE = CHART_FILES / "dashboard.json"
CRD_SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"
# Where `python3 tasks.py test` puts promtool and prometheus (from Debian's prometheus package).
PROMETHEUS_TOOLS = REPO_ROOT / ".tools" / "prometheus"
# Series Prometheus itself creates for every target; every other name must be the provider's.
PROMETHEUS_SERIES = frozenset({"up"})
# Grafana's variables are not PromQL; before parsing they take a value Grafana could give them.
GRAFANA_VARIABLES = {"$__rate_interval": "5m"}


def prometheus_tool(name: str) -> Path | None:
    """`promtool` or `prometheus` from .tools/ (fetched by tasks.py) or PATH; None: neither."""
    local = PROMETHEUS_TOOLS / name
    if local.exists():
        return local
    found = shutil.which(name)
    return Path(found) if found else None


def run_promtool(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of files/alerts.yaml."""
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return result


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables replaced) for every panel target."""
    queries = []
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries


def _selectors(node: Any) -> Iterator[promql_parser.VectorSelector]:
    if isinstance(node, promql_parser.VectorSelector):
        yield node
    elif isinstance(node, promql_parser.MatrixSelector):
        yield node.vector_selector
    elif isinstance(node, promql_parser.BinaryExpr):
        yield from _selectors(node.lhs)
        yield from _selectors(node.rhs)
    elif isinstance(node, promql_parser.Call):
        for argument in node.args:
            yield from _selectors(argument)
    elif isinstance(node, promql_parser.AggregateExpr):
        yield from _selectors(node.expr)
        if node.param is not None:
            yield from _selectors(node.param)
    elif isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr,
                           promql_parser.SubqueryExpr)):
        yield from _selectors(node.expr)


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    """The series selectors of a PromQL expression (parsing fails loudly on bad PromQL)."""
    return list(_selectors(promql_parser.parse(expr)))


def metric_names(expr: str) -> set[str]:
    names = {selector.name for selector in selectors(expr)}
    if None in names:
        raise AssertionError(f"a selector without a metric name in {expr!r}")
    return {str(name) for name in names}


def provider_metric_names() -> set[str]:
    """Every series name the provider exports (core/observability/metrics.py), process too."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "info": ("_info",),
                "histogram": ("_bucket", "_sum", "_count")}
    families = list(ProviderMetrics().registry.collect())
    # Labelled metrics export no sample before their first use: name them from their type.
    return {sample.name for family in families for sample in family.samples} | {
        family.name + suffix for family in families for suffix in suffixes.get(family.type, ())
    }


def crd_validate(obj: dict[str, Any]) -> None:
    """Validate a custom resource against its CRD's schema (crd_schemas/); raises on error."""
    schema = json.loads((CRD_SCHEMAS / f"{obj['kind']}.json").read_text())
    jsonschema.validate(obj, schema, cls=jsonschema.Draft7Validator)
