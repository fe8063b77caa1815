"""The monitoring objects: ServiceMonitor (with its Service), PodMonitor, PrometheusRule.

Built-in kinds are validated with kubernetes-validate; the Prometheus Operator kinds against
their CRDs' schemas (crd_schemas/, strict about unknown fields).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import jsonschema
import kubernetes_validate
import pytest

if TYPE_CHECKING:
    from helm import ChartUnderTest

MONITOR_KINDS = {"serviceMonitor": "ServiceMonitor", "podMonitor": "PodMonitor"}
OPERATIONS_DOC = "docs/operations.md"


def _render(chart: ChartUnderTest, **metrics: Any) -> Any:
    return chart.template([], {"metrics": metrics} if metrics else None)


def _pod_labels(rendered: Any) -> dict[str, str]:
    labels: dict[str, str] = rendered.one("DaemonSet")["spec"]["template"]["metadata"]["labels"]
    return labels


def _container_ports(rendered: Any) -> dict[str, int]:
    container = rendered.one("DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    return {port["name"]: port["containerPort"] for port in container["ports"]}


def _endpoint(monitor: dict[str, Any]) -> dict[str, Any]:
    endpoints = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
    assert len(endpoints) == 1
    endpoint: dict[str, Any] = endpoints[0]
    return endpoint


def test_nothing_is_rendered_by_default(chart: ChartUnderTest) -> None:
    kinds = {obj["kind"] for obj in chart.template().objects}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule", "Service",
                        "ConfigMap", "NetworkPolicy"}


@pytest.mark.parametrize("key", sorted(MONITOR_KINDS))
def test_monitor_scrapes_every_provider_pod(
    chart: ChartUnderTest, helm_lib: ModuleType, monitoring_lib: ModuleType, key: str
) -> None:
    rendered = _render(chart, **{key: {"enabled": True, "labels": {"release": "kps"},
                                       "interval": "15s", "scrapeTimeout": "10s"}})
    monitor = rendered.one(MONITOR_KINDS[key])
    monitoring_lib.crd_validate(monitor)
    assert monitor["metadata"]["labels"]["release"] == "kps"  # what Prometheus selects on
    assert monitor["metadata"]["namespace"] == chart.NAMESPACE
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [chart.NAMESPACE]}
    selector = monitor["spec"]["selector"]["matchLabels"]
    endpoint = _endpoint(monitor)
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "10s")
    assert endpoint["path"] == "/metrics"
    if key == "podMonitor":
        assert selector.items() <= _pod_labels(rendered).items()
        assert endpoint["port"] in _container_ports(rendered)
        assert rendered.find("Service") == []
    else:
        service = rendered.one("Service")
        kubernetes_validate.validate(service, helm_lib.K8S_VERSIONS[0], strict=True)
        assert selector.items() <= service["metadata"]["labels"].items()
        assert service["spec"]["selector"].items() <= _pod_labels(rendered).items()
        assert service["spec"]["clusterIP"] == "None"
        (port,) = service["spec"]["ports"]
        assert port["name"] == endpoint["port"]
        assert _container_ports(rendered)[port["targetPort"]] == port["port"] == 8990


@pytest.mark.parametrize("key", sorted(MONITOR_KINDS))
def test_monitor_sets_the_job_and_node_the_alerts_use(
    chart: ChartUnderTest, monitoring_lib: ModuleType, key: str
) -> None:
    # Scraped through pod annotations the job is whatever that scrape config calls itself, so
    # an alert on `up{job=...}` never fires; the monitors pin the job the alerts select.
    relabelings = _endpoint(_render(chart, **{key: {"enabled": True}}).one(
        MONITOR_KINDS[key]))["relabelings"]
    fixed = {r["targetLabel"]: r["replacement"] for r in relabelings if "replacement" in r}
    copied = {r["targetLabel"]: r["sourceLabels"] for r in relabelings if "sourceLabels" in r}
    assert copied == {"node": ["__meta_kubernetes_pod_node_name"]}
    jobs = {
        matcher.value
        for rule in monitoring_lib.alert_rules()
        for selector in monitoring_lib.selectors(rule["expr"])
        for matcher in selector.matchers.matchers if matcher.name == "job"
    }
    assert jobs == {fixed["job"]}
    # The alerts group by `node`, which the monitors add.
    assert any("by (node" in rule["expr"] for rule in monitoring_lib.alert_rules())


@pytest.mark.parametrize("key", sorted(MONITOR_KINDS))
def test_monitor_uses_the_health_port_when_the_metrics_port_is_off(
    chart: ChartUnderTest, key: str
) -> None:
    # The health port serves /metrics too (docs/operations.md).
    rendered = chart.template([], {"metrics": {"enabled": False, key: {"enabled": True}}})
    endpoint = _endpoint(rendered.one(MONITOR_KINDS[key]))
    assert endpoint["port"] == "healthz"
    assert _container_ports(rendered) == {"healthz": 8989}
    if key == "serviceMonitor":
        (port,) = rendered.one("Service")["spec"]["ports"]
        assert (port["name"], port["port"], port["targetPort"]) == ("healthz", 8989, "healthz")


def test_both_monitors_at_once_are_refused(chart: ChartUnderTest) -> None:
    error = chart.template_error([], {"metrics": {"serviceMonitor": {"enabled": True},
                                                  "podMonitor": {"enabled": True}}})
    assert "enable either serviceMonitor or podMonitor, not both" in error


def test_crd_validation_rejects_unknown_and_mistyped_fields(
    chart: ChartUnderTest, monitoring_lib: ModuleType
) -> None:
    # Guards the validator: the schemas are strict, as the API server with kubectl's default.
    monitor = _render(chart, podMonitor={"enabled": True}).one("PodMonitor")
    misspelled = {**monitor, "spec": {**monitor["spec"], "podMetricEndpoints": []}}
    mistyped = {**monitor, "spec": {**monitor["spec"], "podMetricsEndpoints": {"port": "x"}}}
    for broken in (misspelled, mistyped):
        with pytest.raises(jsonschema.ValidationError):
            monitoring_lib.crd_validate(broken)


def test_prometheus_rule_ships_the_rules_file(
    chart: ChartUnderTest, monitoring_lib: ModuleType
) -> None:
    rule = _render(chart, prometheusRule={"enabled": True, "labels": {"release": "kps"}}).one(
        "PrometheusRule")
    monitoring_lib.crd_validate(rule)
    assert rule["metadata"]["labels"]["release"] == "kps"
    shipped = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    for rule_in_file, rule_shipped in zip(monitoring_lib.alert_rules(), shipped, strict=True):
        annotations = dict(rule_shipped["annotations"])
        runbook = annotations.pop("runbook_url")
        assert runbook == f"{OPERATIONS_DOC}#{rule_in_file['alert'].lower()}"
        assert {**rule_shipped, "annotations": annotations} == rule_in_file


def test_runbook_url_follows_the_value(chart: ChartUnderTest) -> None:
    base = "https://docs.example.com/operations.html"
    rule = _render(chart, prometheusRule={"enabled": True, "runbookUrl": base}).one(
        "PrometheusRule")
    urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert urls and all(url.startswith(base + "#") for url in urls)


def test_every_alert_has_its_runbook_section(monitoring_lib: ModuleType) -> None:
    doc = (monitoring_lib.REPO_ROOT / OPERATIONS_DOC).read_text()
    # MkDocs' anchor of a heading that is only the alert name is the name in lower case.
    headings = set(re.findall(r"^#{3,4} (SecretsProvider\w+)$", doc, flags=re.MULTILINE))
    assert headings == {rule["alert"] for rule in monitoring_lib.alert_rules()}


def _doc_values_examples(monitoring_lib: ModuleType) -> list[str]:
    doc = (monitoring_lib.REPO_ROOT / OPERATIONS_DOC).read_text()
    return re.findall(r"```yaml\n(# values\.yaml.*?)```", doc, flags=re.DOTALL)


def test_the_docs_values_examples_render_as_described(
    chart: ChartUnderTest, monitoring_lib: ModuleType, tmp_path: Path
) -> None:
    monitoring, network = _doc_values_examples(monitoring_lib)
    (tmp_path / "monitoring.yaml").write_text(monitoring)
    rendered = chart.template([tmp_path / "monitoring.yaml"])
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert rendered.one(kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rendered.one("Service") and rendered.one("ConfigMap")
    pod = rendered.one("DaemonSet")["spec"]["template"]["metadata"]
    assert not any(key.startswith("prometheus.io/") for key in pod.get("annotations", {}))
    (tmp_path / "network.yaml").write_text(network)
    policy = chart.template([tmp_path / "network.yaml"]).one("NetworkPolicy")
    assert policy["spec"]["ingress"][1]["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]


def test_the_docs_alert_table_matches_the_rules(monitoring_lib: ModuleType) -> None:
    doc = (monitoring_lib.REPO_ROOT / OPERATIONS_DOC).read_text()
    table = dict(re.findall(r"^\| `(SecretsProvider\w+)` \| (\w+) \|", doc, flags=re.MULTILINE))
    assert table == {rule["alert"]: rule["labels"]["severity"]
                     for rule in monitoring_lib.alert_rules()}


@pytest.mark.parametrize(("metrics", "complaint"), [
    ({"serviceMonitor": {"enable": True}}, "metrics.serviceMonitor: Additional property enable"),
    ({"podMonitor": {"interval": "30 seconds"}}, "metrics.podMonitor.interval"),
    ({"prometheusRule": {"runbookUrl": "https://docs.example.com/ops.html#x"}},
     "metrics.prometheusRule.runbookUrl"),
    ({"grafanaDashboard": {"labels": {"grafana_dashboard": 1}}},
     "metrics.grafanaDashboard.labels.grafana_dashboard"),
])
def test_schema_refuses_bad_monitoring_values(
    chart: ChartUnderTest, metrics: dict[str, Any], complaint: str
) -> None:
    assert complaint in chart.template_error([], {"metrics": metrics})
