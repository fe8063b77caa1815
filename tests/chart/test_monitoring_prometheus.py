"""The chart's monitoring against a real Prometheus scraping a real provider, on loopback.

Prometheus (from Debian's package, like promtool) scrapes a provider wired by `build_app` as
`serve` wires it (test backend `testmem`), with the relabelings of the chart's PodMonitor and
the chart's rules file. Real mounts then show that every dashboard query runs, that the panels
fed by them have data, and that the alerts see a failing mount and a provider that went away.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import yaml

from ack_secrets_provider.core.server.app import App
from ack_secrets_provider.core.server.driver_client import ProviderClient, driver_attributes

if TYPE_CHECKING:
    from helm import ChartUnderTest

# prometheus-operator's field names -> Prometheus's relabel_config keys.
RELABEL_KEYS = {"action": "action", "sourceLabels": "source_labels", "separator": "separator",
                "targetLabel": "target_label", "regex": "regex", "replacement": "replacement"}
# Panels whose metrics the mounts below produce: each must show data.
PANELS_WITH_DATA = {"Mounts per second by result code", "Mount latency", "Objects per mount (p95)",
                    "Upstream calls by service and result", "Upstream latency (p99)",
                    "Providers scraped", "Resident memory per provider", "CPU per provider"}
WAIT = 30.0  # seconds: scrapes and evaluations run every second


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


@dataclass
class Prometheus:
    url: str

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[Any]:
        result: list[Any] = self.get("/api/v1/query", query=expr)["result"]
        return result

    def alert_states(self) -> dict[str, str]:
        return {alert["labels"]["alertname"]: alert["state"]
                for alert in self.get("/api/v1/alerts")["alerts"]}


@pytest.fixture
def server(
    prometheus: Path, served_provider: App, chart: ChartUnderTest, monitoring_lib: ModuleType,
    tmp_path: Path,
) -> Iterator[Prometheus]:
    provider = served_provider
    assert provider.metrics_server is not None
    monitor = chart.template([], {"metrics": {"podMonitor": {"enabled": True}}}).one("PodMonitor")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    relabel = [{RELABEL_KEYS[key]: value for key, value in rule.items()}
               for rule in endpoint["relabelings"]]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(monitoring_lib.ALERTS_FILE)],
        "scrape_configs": [{
            # Static instead of Kubernetes discovery; named as annotation-based configs often
            # are, so only the monitor's relabeling gives the job the alerts select.
            "job_name": "kubernetes-pods",
            "metrics_path": endpoint["path"],
            "static_configs": [{"targets": [f"127.0.0.1:{provider.metrics_server.port}"]}],
            "relabel_configs": relabel,
        }],
    }))
    port = _free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [str(prometheus), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        api = Prometheus(f"http://127.0.0.1:{port}")

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                with urllib.request.urlopen(f"{api.url}/-/ready", timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        _until("Prometheus to start", ready)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _mount(provider: App, name: str) -> None:
    objects = f"- objectName: {name}\n  objectType: testmem\n"
    client = ProviderClient(provider.server.socket_path)
    try:
        client.mount(driver_attributes({"objects": objects}))
    except grpc.RpcError:
        pass  # the failing mount is wanted: the metrics record it
    finally:
        client.close()


def test_dashboard_and_alerts_on_a_real_prometheus(
    server: Prometheus, served_provider: App, monitoring_lib: ModuleType
) -> None:
    provider = served_provider
    job = '{job="csi-secrets-store-provider-alibabacloud"}'
    _until("the first scrape", lambda: [s["value"][1] for s in server.query(f"up{job}")] == ["1"])
    rules = server.get("/api/v1/rules")["groups"][0]["rules"]
    assert [rule["name"] for rule in rules] == [r["alert"] for r in monitoring_lib.alert_rules()]

    _mount(provider, "db/password")
    _mount(provider, "denied-thing")
    _until("the mounts to be scraped", lambda: len(server.query(
        "ack_secrets_provider_mounts_total")) == 2)
    # A labelled counter appears at its first increment, which rate() cannot see: the mount
    # fails again (as kubelet's retries would), and rate() has an increase to show.
    _mount(provider, "denied-thing")
    failures = 'ack_secrets_provider_mounts_total{result="failure"}'
    _until("the second failure to be scraped",
           lambda: [s["value"][1] for s in server.query(failures)] == ["2"])

    for title, expr in monitoring_lib.dashboard_queries():
        result = server.query(expr.replace("5m", "1m"))  # the test's whole history is short
        if title in PANELS_WITH_DATA:
            assert result, f"{title}: no data for {expr}"
    assert {row["metric"]["code"] for row in server.query(
        "sum by (code) (ack_secrets_provider_mounts_total)")} == {"OK", "PERMISSION_DENIED"}

    # Every rule evaluates; a failing mount makes its alert pending (it fires after `for`).
    assert all(rule["health"] == "ok" for rule in server.get("/api/v1/rules")["groups"][0][
        "rules"]), server.get("/api/v1/rules")
    _until("SecretsProviderMountsFailing to be pending",
           lambda: server.alert_states().get("SecretsProviderMountsFailing") == "pending")
    _until("SecretsProviderPermissionDenied to fire",
           lambda: server.alert_states().get("SecretsProviderPermissionDenied") == "firing")
    assert "SecretsProviderDown" not in server.alert_states()
    assert "SecretsProviderMetricsAbsent" not in server.alert_states()

    provider.stop()  # the provider goes away: its target is down
    _until("SecretsProviderDown to be pending",
           lambda: server.alert_states().get("SecretsProviderDown") == "pending")
