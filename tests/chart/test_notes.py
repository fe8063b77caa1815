"""templates/NOTES.txt: one verification command and warnings for risky combinations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from helm import ChartUnderTest

STATIC_AK = "WARNING: static AccessKey mode"
OPEN_IDENTITY = "WARNING: the provider's own identity is open to all namespaces"
DIR_MISMATCH = "WARNING: linux.providersDir"


def test_verification_command(chart: ChartUnderTest) -> None:
    notes = chart.template().notes
    commands = [line.strip() for line in notes.splitlines() if line.strip().startswith("kubectl")]
    assert commands == [
        "kubectl -n kube-system rollout status "
        "daemonset/csi-secrets-store-provider-alibabacloud --timeout=180s"
    ]


def test_static_access_key_warning(chart: ChartUnderTest, seed_values: dict[str, Path]) -> None:
    static = {"envVarsFromSecret": {
        "ACCESS_KEY_ID": {"secretKeyRef": "c", "key": "id"},
        "SECRET_ACCESS_KEY": {"secretKeyRef": "c", "key": "secret"},
    }}
    assert STATIC_AK in chart.template([], static).notes
    # AccessKey + AssumeRole (the ak seed file) is not static mode.
    assert STATIC_AK not in chart.template([seed_values["ak"]]).notes
    assert STATIC_AK not in chart.template().notes


def test_open_provider_identity_warning(chart: ChartUnderTest) -> None:
    assert OPEN_IDENTITY in chart.template().notes
    limited = {"providerIdentity": {"allowedNamespaces": ["kube-system"]}}
    assert OPEN_IDENTITY not in chart.template([], limited).notes


def test_providers_dir_mismatch_warning(chart: ChartUnderTest) -> None:
    assert DIR_MISMATCH not in chart.template().notes
    moved = {"linux": {"providersDir": "/etc/kubernetes/secrets-store-csi-providers"}}
    assert DIR_MISMATCH in chart.template([], moved).notes


def test_region_note(chart: ChartUnderTest) -> None:
    # Unset (the marketplace placeholder by default): say where the region comes from.
    for values in ({}, {"regionId": ""}):
        assert "NOTE: regionId is not set" in chart.template([], values).notes
        assert "node label" in chart.template([], values).notes
    assert "regionId is not set" not in chart.template(
        [chart.region_values("cn-hangzhou")]).notes
