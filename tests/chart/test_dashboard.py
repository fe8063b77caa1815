"""files/dashboard.json: valid Grafana JSON whose every query is PromQL over existing metrics."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import kubernetes_validate
import yaml

if TYPE_CHECKING:
    from helm import ChartUnderTest


PREFIX = "ack_secrets_provider_"


def _family(series: str) -> str:
    for suffix in ("_bucket", "_sum", "_count", "_total", "_info"):
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def test_dashboard_is_a_grafana_dashboard(monitoring_lib: ModuleType) -> None:
    dashboard = monitoring_lib.dashboard()  # json.loads: fails on invalid JSON
    assert dashboard["uid"] and dashboard["title"]
    (datasource,) = dashboard["templating"]["list"]
    assert (datasource["name"], datasource["type"], datasource["query"]) == (
        "datasource", "datasource", "prometheus")
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["description"], panel
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_every_query_is_valid_promql(
    promtool: Path, monitoring_lib: ModuleType, tmp_path: Path
) -> None:
    # promtool parses rule files with Prometheus's own parser: one recording rule per query.
    queries = monitoring_lib.dashboard_queries()
    rules = [{"record": f"dashboard:query_{n}", "expr": expr} for n, (_, expr) in
             enumerate(queries)]
    file = tmp_path / "dashboard_queries.yaml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = monitoring_lib.run_promtool(promtool, "check", "rules", file.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(queries)} rules found" in proc.stdout
    # ...and refuses a broken one (the check is not vacuous).
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": "dashboard:broken", "expr": "sum by (le (rate(x[5m]))"}]}]}))
    proc = monitoring_lib.run_promtool(promtool, "check", "rules", file.name, cwd=tmp_path)
    assert proc.returncode != 0


def test_every_query_names_only_metrics_the_provider_exports(monitoring_lib: ModuleType) -> None:
    known = monitoring_lib.provider_metric_names() | monitoring_lib.PROMETHEUS_SERIES
    used: set[str] = set()
    for title, expr in monitoring_lib.dashboard_queries():
        names = monitoring_lib.metric_names(expr)
        assert names <= known, f"{title}: {sorted(names - known)} not exported by the provider"
        used |= names
    # The dashboard shows every provider metric (process metrics aside).
    assert {_family(n) for n in known if n.startswith(PREFIX)} == {
        _family(n) for n in used if n.startswith(PREFIX)}


def test_metric_check_catches_an_unknown_metric(monitoring_lib: ModuleType) -> None:
    known = monitoring_lib.provider_metric_names()
    assert "ack_secrets_provider_mounts_total" in known
    typo = "ack_secrets_provider_mount_total"
    assert monitoring_lib.metric_names(f"rate({typo}[5m])") - known == {typo}


def test_dashboard_config_map_carries_the_file(
    chart: ChartUnderTest, helm_lib: ModuleType, monitoring_lib: ModuleType
) -> None:
    values = {"metrics": {"grafanaDashboard": {
        "enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "Secrets"}}}}
    config_map = chart.template([], values).one("ConfigMap")
    kubernetes_validate.validate(config_map, helm_lib.K8S_VERSIONS[0], strict=True)
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's label
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Secrets"}
    (text,) = config_map["data"].values()
    assert json.loads(text) == monitoring_lib.dashboard()
    default = chart.template([], {"metrics": {"grafanaDashboard": {"enabled": True}}})
    assert default.one("ConfigMap")["metadata"]["namespace"] == chart.NAMESPACE
