"""The whole chart: `helm lint --strict` and Kubernetes schema validation of every render.

Renders cover the defaults, each seed values file users already have, and a values set that
turns on every optional branch, for the lowest and highest supported Kubernetes versions.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import kubernetes_validate
import pytest

if TYPE_CHECKING:
    from helm import ChartUnderTest

# Every optional branch of the templates at once.
EVERYTHING_ON: dict[str, Any] = {
    "regionId": "cn-hangzhou",
    "secrets-store-csi-driver": {"install": False},
    "logVerbosity": 4,
    "logFormat": "json",
    "rrsa": {"enable": True, "accountId": "1234567890", "clusterId": "c0123abcd"},
    "fetchConcurrency": 8,
    "cache": {"ttl": "5m", "maxEntries": 5000, "maxBytes": 67108864},
    "providerIdentity": {"allowedNamespaces": ["kube-system", "payments"]},
    "kmsCaBundle": {"configMap": {"name": "kms-gateway-ca", "key": "bundle.pem"}},
    "stsEndpoint": "sts-vpc.cn-hangzhou.aliyuncs.com",
    "disableImdsV1": True,
    "endpointOverrides": {"kms": "https://kms-proxy.internal:8443"},
    "imagePullSecrets": [{"name": "regcred"}],
    "linux": {
        "hostNetwork": False,
        "dnsPolicy": "ClusterFirst",
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "tmpSizeLimit": "16Mi",
        "podLabels": {"team": "platform"},
        "podAnnotations": {"example.com/owner": "platform"},
        "nodeSelector": {"node-role.kubernetes.io/worker": ""},
        "volumes": [{"name": "extra", "emptyDir": {}}],
        "volumeMounts": [{"name": "extra", "mountPath": "/extra"}],
    },
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}, "scrapeTimeout": "10s"},
        "prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Secrets"}},
    },
    "networkPolicy": {"enabled": True, "metricsFrom": [{"namespaceSelector": {}}],
                      "extraEgress": [{"ports": [{"port": 8443, "protocol": "TCP"}]}]},
}
# What EVERYTHING_ON cannot hold: the other monitor (the chart refuses both at once).
THE_OTHER_BRANCHES: dict[str, Any] = {"metrics": {"podMonitor": {"enabled": True}}}
BASE_KINDS = ["ClusterRole", "ClusterRoleBinding", "DaemonSet", "ServiceAccount"]
EXPECTED_KINDS = {
    "everything-on": sorted([*BASE_KINDS, "ConfigMap", "NetworkPolicy", "PrometheusRule",
                             "Service", "ServiceMonitor"]),
    "the-other-branches": sorted([*BASE_KINDS, "PodMonitor"]),
}
# Prometheus Operator kinds: kubernetes-validate does not know them; their CRDs' schemas do.
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def _value_sets(
    chart: ChartUnderTest, seed_values: dict[str, Path]
) -> list[tuple[str, list[Path], dict[str, Any]]]:
    sets: list[tuple[str, list[Path], dict[str, Any]]] = [("defaults", [], {})]
    # The region placeholder replaced, as the ACK marketplace does.
    sets.append(("region", [chart.region_values("cn-hangzhou")], {}))
    sets += [(f"seed-{name}", [path], {}) for name, path in sorted(seed_values.items())]
    sets.append(("everything-on", [], EVERYTHING_ON))
    sets.append(("the-other-branches", [], THE_OTHER_BRANCHES))
    return sets


def test_seed_values_files_are_present(seed_values: dict[str, Path]) -> None:
    # Both documented modes must be exercised; a missing file is a broken layout, not a skip.
    assert {"ak", "rrsa"} <= set(seed_values)


def test_lint_strict(chart: ChartUnderTest, seed_values: dict[str, Path]) -> None:
    for name, files, values in _value_sets(chart, seed_values):
        proc = chart.lint(files, values)
        assert proc.returncode == 0, f"helm lint --strict failed for {name}:\n{proc.stdout}"
        assert "[ERROR]" not in proc.stdout and "[WARNING]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("kube_version", ["1.30.0", "1.37.0"])
def test_rendered_objects_validate_strictly(
    chart: ChartUnderTest,
    seed_values: dict[str, Path],
    helm_lib: ModuleType,
    monitoring_lib: ModuleType,
    kube_version: str,
) -> None:
    assert kube_version in helm_lib.K8S_VERSIONS
    for name, files, values in _value_sets(chart, seed_values):
        rendered = chart.template(files, values, kube_version=kube_version)
        kinds = sorted(obj["kind"] for obj in rendered.objects)
        assert kinds == EXPECTED_KINDS.get(name, BASE_KINDS), name
        for obj in rendered.objects:
            if obj["kind"] in CRD_KINDS:
                monitoring_lib.crd_validate(obj)
                continue
            try:
                kubernetes_validate.validate(obj, kube_version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {obj['kind']} invalid for Kubernetes {kube_version}: {exc}")


def test_validation_catches_a_broken_manifest(chart: ChartUnderTest) -> None:
    # Guards the validator itself: strict mode must reject an unknown field.
    daemonset = chart.template().one("DaemonSet")
    broken = {**daemonset, "spec": {**daemonset["spec"], "hostNetworking": True}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)


def test_chart_refuses_kubernetes_older_than_supported(chart: ChartUnderTest) -> None:
    proc = chart.helm.run(
        "template", "x", str(chart.chart), "--kube-version", "1.29.0", check=False
    )
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr or "incompatible" in proc.stderr
