"""templates/serviceaccount.yaml."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from helm import ChartUnderTest


def test_service_account_name_is_fixed(chart: ChartUnderTest) -> None:
    # RAM roles' RRSA trust policies name this ServiceAccount: it must not follow the release.
    for values in ({}, {"fullnameOverride": "other", "nameOverride": "x"}):
        sa = chart.template([], values).one("ServiceAccount")
        assert sa["metadata"]["name"] == "csi-secrets-store-provider-alibabacloud"
        assert sa["metadata"]["namespace"] == chart.NAMESPACE
    daemonset = chart.template([], {"fullnameOverride": "other"}).one("DaemonSet")
    assert daemonset["metadata"]["name"] == "other"
    assert daemonset["spec"]["template"]["spec"]["serviceAccountName"] == (
        "csi-secrets-store-provider-alibabacloud"
    )


def test_rbac_install_false_renders_no_service_account(chart: ChartUnderTest) -> None:
    assert chart.template([], {"rbac": {"install": False}}).find("ServiceAccount") == []
