"""templates/networkpolicy.yaml: only the provider's own traffic, off by default."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import kubernetes_validate
import pytest

from ack_secrets_provider.core.cloud.metadata import METADATA_HOST

if TYPE_CHECKING:
    from helm import ChartUnderTest

PolicyOf = Callable[..., dict[str, Any]]

ON = {"enabled": True}
MONITORING_NS = {"namespaceSelector": {"matchLabels": {
    "kubernetes.io/metadata.name": "monitoring"}}}


@pytest.fixture
def policy_of(chart: ChartUnderTest, helm_lib: ModuleType) -> PolicyOf:
    """Renders the NetworkPolicy for some values; checks it for every supported Kubernetes."""

    def render(values: dict[str, Any] | None = None) -> dict[str, Any]:
        values = values or {}
        # A NetworkPolicy needs the pod network (the chart's default is the host network).
        linux = {"hostNetwork": False, **values.get("linux", {})}
        rendered = chart.template([], {"networkPolicy": ON, **values, "linux": linux})
        policy: dict[str, Any] = rendered.one("NetworkPolicy")
        for version in helm_lib.K8S_VERSIONS:
            kubernetes_validate.validate(policy, version, strict=True)
        assert policy["spec"]["podSelector"] == rendered.one("DaemonSet")["spec"]["selector"]
        return policy

    return render


def _ports(rule: dict[str, Any]) -> set[tuple[int, str]]:
    return {(port["port"], port["protocol"]) for port in rule["ports"]}


def _egress_to(policy: dict[str, Any], *ports: int, protocol: str = "TCP") -> list[Any]:
    """The destinations of the one egress rule for exactly `ports` ([]: any address)."""
    wanted = {(port, protocol) for port in ports}
    rules = [rule for rule in policy["spec"]["egress"] if _ports(rule) == wanted]
    assert len(rules) == 1, f"one egress rule for {sorted(wanted)}"
    result: list[Any] = rules[0].get("to", [])
    return result


def test_no_policy_by_default(chart: ChartUnderTest) -> None:
    assert chart.template().find("NetworkPolicy") == []
    assert chart.template([], {"linux": {"hostNetwork": False}}).find("NetworkPolicy") == []


def test_ingress_is_probes_and_scraping_only(policy_of: PolicyOf) -> None:
    policy = policy_of()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ingress = policy["spec"]["ingress"]
    assert [_ports(rule) for rule in ingress] == [{(8989, "TCP")}, {(8990, "TCP")}]
    assert all("from" not in rule for rule in ingress)  # default: any source


def test_ingress_follows_ports_and_peers(policy_of: PolicyOf) -> None:
    policy = policy_of({
        "linux": {"healthzPort": 9808},
        "metrics": {"port": 9090},
        "networkPolicy": {**ON, "metricsFrom": [MONITORING_NS],
                          "probesFrom": [{"ipBlock": {"cidr": "10.0.0.0/16"}}]},
    })
    probes, scraping = policy["spec"]["ingress"]
    assert (_ports(probes), probes["from"]) == ({(9808, "TCP")}, [{"ipBlock": {
        "cidr": "10.0.0.0/16"}}])
    assert (_ports(scraping), scraping["from"]) == ({(9090, "TCP")}, [MONITORING_NS])
    # No metrics port, no rule for it.
    policy = policy_of({"metrics": {"enabled": False}})
    assert [_ports(rule) for rule in policy["spec"]["ingress"]] == [{(8989, "TCP")}]


def test_egress_reaches_what_the_provider_calls(policy_of: PolicyOf) -> None:
    policy = policy_of()
    dns = [r for r in policy["spec"]["egress"] if _ports(r) == {(53, "UDP"), (53, "TCP")}]
    assert len(dns) == 1 and "to" not in dns[0]
    assert _egress_to(policy, 443) == []  # KMS, OOS, STS
    assert _egress_to(policy, 80) == [{"ipBlock": {"cidr": f"{METADATA_HOST}/32"}}]
    assert _egress_to(policy, 443, 6443) == []  # the API server
    assert len(policy["spec"]["egress"]) == 4


def test_egress_peers_and_extra_rules_follow_the_values(policy_of: PolicyOf) -> None:
    vpc = [{"ipBlock": {"cidr": "192.168.0.0/16"}}]
    dns = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    proxy = {"to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}], "ports": [{"port": 8443,
                                                                     "protocol": "TCP"}]}
    extra_in = {"from": [MONITORING_NS], "ports": [{"port": 9999, "protocol": "TCP"}]}
    api_server = [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    policy = policy_of({"networkPolicy": {
        **ON, "cloudApiTo": vpc, "dnsTo": dns, "apiServerTo": api_server,
        "apiServerPorts": [6443], "extraEgress": [proxy], "extraIngress": [extra_in]}})
    assert _egress_to(policy, 443) == vpc
    assert [r["to"] for r in policy["spec"]["egress"] if (53, "UDP") in _ports(r)] == [dns]
    assert _egress_to(policy, 6443) == api_server
    assert policy["spec"]["egress"][-1] == proxy
    assert policy["spec"]["ingress"][-1] == extra_in


def test_host_network_is_refused(chart: ChartUnderTest) -> None:
    # A NetworkPolicy does not apply to host-network pods: refuse rather than pretend.
    error = chart.template_error([], {"networkPolicy": ON, "linux": {"hostNetwork": True}})
    assert "networkPolicy.enabled" in error and "linux.hostNetwork" in error


@pytest.mark.parametrize(("values", "complaint"), [
    ({"metricsFrom": [{"ipBlok": {"cidr": "10.0.0.0/8"}}]}, "networkPolicy.metricsFrom.0"),
    ({"apiServerPorts": [0]}, "networkPolicy.apiServerPorts.0"),
    ({"apiServerPorts": []}, "networkPolicy.apiServerPorts"),
    ({"enable": True}, "networkPolicy: Additional property enable"),
])
def test_schema_refuses_bad_values(
    chart: ChartUnderTest, values: dict[str, Any], complaint: str
) -> None:
    error = chart.template_error([], {"networkPolicy": values, "linux": {"hostNetwork": False}})
    assert complaint in error
