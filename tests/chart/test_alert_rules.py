"""files/alerts.yaml under the real promtool: each alert fires on its bad series, not on good ones.

`promtool test rules` evaluates the rules over synthetic series exactly as Prometheus would,
templates included: every case below states the labels and the rendered annotations it expects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

JOB = "csi-secrets-store-provider-alibabacloud"
TARGET = (f'job="{JOB}", instance="10.0.0.7:8990", namespace="kube-system", '
          'pod="provider-x7k2p", node="node-a"')


@dataclass(frozen=True)
class Case:
    """Series, and the alerts (labels each) expected at `at`; [] means the alert stays silent."""

    series: dict[str, str]
    at: str
    fires: list[dict[str, str]] = field(default_factory=list)


# alert -> cases; a firing case first, then the good series that must stay silent.
CASES: dict[str, list[Case]] = {
    "SecretsProviderDown": [
        Case({f"up{{{TARGET}}}": "1 1 0x20"}, "10m",
             [{"job": JOB, "instance": "10.0.0.7:8990", "namespace": "kube-system",
               "pod": "provider-x7k2p", "node": "node-a"}]),
        Case({f"up{{{TARGET}}}": "1x20"}, "10m"),
        # Down for 3 minutes (a restart): shorter than `for`.
        Case({f"up{{{TARGET}}}": "1 0 0 0 1x20"}, "10m"),
        # Another job's target being down is not the provider.
        Case({'up{job="kubernetes-pods", instance="10.0.0.9:9100"}': "0x20",
              f"up{{{TARGET}}}": "1x20"}, "10m"),
    ],
    "SecretsProviderMetricsAbsent": [
        # Scraped only through pod annotations under another job name: the alerts are blind.
        Case({'up{job="kubernetes-pods", instance="10.0.0.7:8990"}': "1x30"}, "20m",
             [{"job": JOB}]),
        Case({f"up{{{TARGET}}}": "1x30"}, "20m"),
        Case({f"up{{{TARGET}}}": "0x30"}, "20m"),  # present but down: SecretsProviderDown's job
    ],
    "SecretsProviderMountsFailing": [
        Case({'ack_secrets_provider_mounts_total{result="failure", code="PERMISSION_DENIED", '
              'node="node-a"}': "0+1x40",
              'ack_secrets_provider_mounts_total{result="success", code="OK", node="node-a"}':
                  "0+5x40"}, "30m",
             [{"node": "node-a", "code": "PERMISSION_DENIED"}]),
        Case({'ack_secrets_provider_mounts_total{result="failure", code="NOT_FOUND", '
              'node="node-a"}': "_x3 1+1x40"}, "30m",
             [{"node": "node-a", "code": "NOT_FOUND"}]),  # a series new at 1
        Case({'ack_secrets_provider_mounts_total{result="success", code="OK", node="node-a"}':
              "0+5x40"}, "30m"),
        # One failure long ago, then none for the whole 10-minute window.
        Case({'ack_secrets_provider_mounts_total{result="failure", code="NOT_FOUND", '
              'node="node-a"}': "0 1x40"}, "30m"),
        # Failing for 5 minutes only: pending, not firing yet.
        Case({'ack_secrets_provider_mounts_total{result="failure", code="UNAVAILABLE", '
              'node="node-a"}': "0x25 1 2 3 4 5 6"}, "30m"),
    ],
    "SecretsProviderPermissionDenied": [
        Case({'ack_secrets_provider_upstream_calls_total{service="kms", api="GetSecretValue", '
              'result="denied"}': "0 0 1x10"}, "5m", [{"service": "kms"}]),
        # The provider creates a labelled series at its first increment: it appears at 1.
        Case({'ack_secrets_provider_upstream_calls_total{service="oos", '
              'api="GetSecretParameter", result="unauthenticated"}': "_x3 1x10"}, "5m",
             [{"service": "oos"}]),
        # A denial 40 minutes ago, none since.
        Case({'ack_secrets_provider_upstream_calls_total{service="kms", api="GetSecretValue", '
              'result="denied"}': "_x3 1x60"}, "45m"),
        Case({'ack_secrets_provider_upstream_calls_total{service="kms", api="GetSecretValue", '
              'result="ok"}': "0+10x10",
              'ack_secrets_provider_upstream_calls_total{service="kms", api="GetSecretValue", '
              'result="not_found"}': "0+1x10"}, "5m"),
    ],
    "SecretsProviderThrottled": [
        Case({'ack_secrets_provider_upstream_throttled_total{service="kms"}': "0+120x30"},
             "20m", [{"service": "kms"}]),  # 2 per second
        Case({'ack_secrets_provider_upstream_throttled_total{service="kms"}': "0+30x30"},
             "20m"),  # 0.5 per second
    ],
    "SecretsProviderSlowMounts": [
        # Every mount takes between 30 and 60 seconds.
        Case({'ack_secrets_provider_mount_duration_seconds_bucket{result="success", le="1"}':
              "0x40",
              'ack_secrets_provider_mount_duration_seconds_bucket{result="success", le="30"}':
              "0x40",
              'ack_secrets_provider_mount_duration_seconds_bucket{result="success", le="60"}':
              "0+10x40",
              'ack_secrets_provider_mount_duration_seconds_bucket{result="success", le="+Inf"}':
              "0+10x40"}, "30m", [{}]),
        # Every mount takes under a second.
        Case({'ack_secrets_provider_mount_duration_seconds_bucket{result="success", le="1"}':
              "0+10x40",
              'ack_secrets_provider_mount_duration_seconds_bucket{result="success", le="30"}':
              "0+10x40",
              'ack_secrets_provider_mount_duration_seconds_bucket{result="success", le="60"}':
              "0+10x40",
              'ack_secrets_provider_mount_duration_seconds_bucket{result="success", le="+Inf"}':
              "0+10x40"}, "30m"),
    ],
    "SecretsProviderStsFailing": [
        Case({'ack_secrets_provider_sts_calls_total{api="AssumeRoleWithOIDC", result="denied"}':
              "0+1x30"}, "20m", [{"api": "AssumeRoleWithOIDC", "result": "denied"}]),
        Case({'ack_secrets_provider_sts_calls_total{api="AssumeRoleWithOIDC", result="ok"}':
              "0+1x30"}, "20m"),
    ],
    "SecretsProviderPluginLoadFailed": [
        Case({'ack_secrets_provider_plugin_load_failures{kind="backend", plugin="oosparam", '
              'pod="provider-x7k2p"}': "1x10"}, "2m", [{"kind": "backend", "plugin": "oosparam"}]),
        Case({'ack_secrets_provider_plugin_load_failures{kind="backend", plugin="oosparam", '
              'pod="provider-x7k2p"}': "0x10"}, "2m"),
    ],
    "SecretsProviderEventsFailing": [
        Case({'ack_secrets_provider_kube_events_total{reason="SecretMountFailed", '
              'outcome="failed"}': "0 1x10"}, "5m", [{"outcome": "failed"}]),
        Case({'ack_secrets_provider_kube_events_total{reason="SecretRotated", outcome="dropped"}':
              "_x2 3x10"}, "5m", [{"outcome": "dropped"}]),  # a series new at 3
        Case({'ack_secrets_provider_kube_events_total{reason="SecretRotated", outcome="dropped"}':
              "_x2 3x60"}, "50m"),
        Case({'ack_secrets_provider_kube_events_total{reason="SecretMountFailed", '
              'outcome="sent"}': "0+1x10",
              'ack_secrets_provider_kube_events_total{reason="SecretRotated", '
              'outcome="suppressed"}': "0+5x10"}, "5m"),
    ],
}

_LABEL_REFERENCE = re.compile(r"\{\{ \$labels\.([a-zA-Z_][a-zA-Z0-9_]*) \}\}")


def rendered(template: str, labels: dict[str, str], where: str) -> str:
    """What Prometheus renders for an annotation using only `{{ $labels.NAME }}`.

    A label the alert does not carry (lost to aggregation) is a mistake here, not an empty
    string as Prometheus would print it.
    """
    def label(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in labels, f"{where} uses $labels.{name}, which the alert does not carry"
        return labels[name]

    text = _LABEL_REFERENCE.sub(label, template)
    assert "{{" not in text, f"{where}: only {{{{ $labels.NAME }}}} is supported here: {text}"
    return text


def unit_test(rule: dict[str, Any], case: Case) -> dict[str, Any]:
    expected = []
    for fired in case.fires:
        labels = {**fired, **rule["labels"]}
        expected.append({
            "exp_labels": labels,
            "exp_annotations": {
                name: rendered(text, labels, f"{rule['alert']}.{name}")
                for name, text in rule["annotations"].items()
            },
        })
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
        "alert_rule_test": [
            {"eval_time": case.at, "alertname": rule["alert"], "exp_alerts": expected}
        ],
    }


def run_tests(promtool: Path, monitoring_lib: ModuleType, tmp_path: Path,
              tests: list[dict[str, Any]]) -> Any:
    file = tmp_path / "alerts_test.yaml"
    file.write_text(yaml.safe_dump({
        "rule_files": [str(monitoring_lib.ALERTS_FILE)],
        "evaluation_interval": "1m",
        "tests": tests,
    }, sort_keys=False))
    return monitoring_lib.run_promtool(promtool, "test", "rules", file.name, cwd=tmp_path)


def test_every_alert_has_cases_that_fire_and_stay_silent(monitoring_lib: ModuleType) -> None:
    alerts = [rule["alert"] for rule in monitoring_lib.alert_rules()]
    assert sorted(CASES) == sorted(alerts)
    for alert, cases in CASES.items():
        assert any(case.fires for case in cases), f"{alert}: no case where it fires"
        assert any(not case.fires for case in cases), f"{alert}: no case where it is silent"


def test_rules_file_passes_promtool_check(promtool: Path, monitoring_lib: ModuleType) -> None:
    proc = monitoring_lib.run_promtool(promtool, "check", "rules",
                                       str(monitoring_lib.ALERTS_FILE), cwd=Path.cwd())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(CASES)} rules found" in proc.stdout


@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert_fires_on_bad_series_only(
    alert: str, promtool: Path, monitoring_lib: ModuleType, tmp_path: Path
) -> None:
    rule = next(r for r in monitoring_lib.alert_rules() if r["alert"] == alert)
    proc = run_tests(promtool, monitoring_lib, tmp_path,
                     [unit_test(rule, case) for case in CASES[alert]])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_fails_a_wrong_expectation(
    promtool: Path, monitoring_lib: ModuleType, tmp_path: Path
) -> None:
    # Guards the harness: a healthy provider expected to alert, and a down one expected silent.
    rule = next(r for r in monitoring_lib.alert_rules() if r["alert"] == "SecretsProviderDown")
    healthy, down = CASES["SecretsProviderDown"][1], CASES["SecretsProviderDown"][0]
    wrong = [unit_test(rule, Case(healthy.series, healthy.at, down.fires)),
             unit_test(rule, Case(down.series, down.at))]
    for test in wrong:
        proc = run_tests(promtool, monitoring_lib, tmp_path, [test])
        assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr


def test_every_alert_is_labelled_and_explained(monitoring_lib: ModuleType) -> None:
    for rule in monitoring_lib.alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]
        assert all(len(text) > 20 for text in rule["annotations"].values()), rule["alert"]


def test_alerts_only_name_metrics_the_provider_exports(monitoring_lib: ModuleType) -> None:
    known = monitoring_lib.provider_metric_names() | monitoring_lib.PROMETHEUS_SERIES
    for rule in monitoring_lib.alert_rules():
        assert monitoring_lib.metric_names(rule["expr"]) <= known, rule["alert"]
