"""templates/rbac.yaml: only what the provider's code needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from helm import ChartUnderTest


def _rules(
    chart: ChartUnderTest, events: bool, region: str = "cn-hangzhou"
) -> set[tuple[str, str, str]]:
    role = chart.template([chart.region_values(region)], {"events": {"enabled": events}}).one(
        "ClusterRole")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rules_are_minimal(chart: ChartUnderTest) -> None:
    assert _rules(chart, events=True) == {("", "serviceaccounts", "get"), ("", "events", "create")}


def test_no_events_rule_when_events_are_off(chart: ChartUnderTest) -> None:
    assert _rules(chart, events=False) == {("", "serviceaccounts", "get")}


def test_nodes_readable_only_without_a_region(chart: ChartUnderTest) -> None:
    # Without regionId (default: the unreplaced marketplace placeholder) the provider may read
    # its node's topology.kubernetes.io/region label at start-up.
    rules = _rules(chart, events=False, region="__ACK_REGION_ID__")
    assert rules == {("", "serviceaccounts", "get"), ("", "nodes", "get")}


def test_binding_targets_the_provider_service_account(chart: ChartUnderTest) -> None:
    rendered = chart.template()
    binding = rendered.one("ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": rendered.one("ClusterRole")["metadata"]["name"],
    }
    assert binding["subjects"] == [{
        "kind": "ServiceAccount",
        "name": "csi-secrets-store-provider-alibabacloud",
        "namespace": chart.NAMESPACE,
    }]


def test_rbac_install_false_renders_no_rbac(chart: ChartUnderTest) -> None:
    rendered = chart.template([], {"rbac": {"install": False}})
    assert rendered.find("ClusterRole") == [] and rendered.find("ClusterRoleBinding") == []
