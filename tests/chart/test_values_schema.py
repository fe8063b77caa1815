"""values.schema.json: typed values, misspellings refused, every compat value accepted."""

from __future__ import annotations

import json
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from helm import ChartUnderTest

# Every value of the existing chart (compat.md), with a non-default value of the right type.
COMPAT_VALUES: dict[str, Any] = {
    "regionId": "",
    "logVerbosity": 3,
    "imagePullSecrets": [{"name": "regcred"}],
    "rbac": {"install": True},
    "rrsa": {"enable": True, "accountId": "1234", "clusterId": "cabc"},
    "envVarsFromSecret": {"ALICLOUD_ROLE_ARN": {"secretKeyRef": "s", "key": "k"}},
    "nameOverride": "",
    "fullnameOverride": "",
    "linux": {
        "enabled": True,
        "image": {"repository": "registry.example/acs/p", "tag": "v1", "pullPolicy": "Always"},
        "nodeSelector": {"a": "b"},
        "tolerations": [],
        "affinity": {},
        "resources": {"requests": {"cpu": "10m"}},
        "podLabels": {"l": "v"},
        "podAnnotations": {"a": "v"},
        "priorityClassName": "",
        "updateStrategy": {"type": "OnDelete"},
        "healthzPort": 8989,
        "healthzPath": "/healthz",
        "healthzTimeout": "5s",
        "volumes": [],
        "volumeMounts": [],
        "providersDir": "/var/run/secrets-store-csi-providers",
    },
    "secrets-store-csi-driver": {
        "install": True,
        "enableSecretRotation": True,
        "rotationPollInterval": "120s",
        "syncSecret": {"enabled": True},
        "tokenRequests": [{"audience": "sts.aliyuncs.com"}],
        "linux": {"enabled": True, "kubeletRootDir": "/var/lib/kubelet",
                  "image": {"repository": "r/driver", "tag": "v1.6.1"}},
        "logVerbosity": 2,  # any other upstream value passes through
    },
}


def test_every_compat_value_is_accepted(chart: ChartUnderTest) -> None:
    assert chart.lint([], COMPAT_VALUES).returncode == 0
    assert chart.template([], COMPAT_VALUES).one("DaemonSet")


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"regionID": "cn-hangzhou"}, "Additional property regionID is not allowed"),
        ({"rrsa": {"enabled": True}}, "rrsa: Additional property enabled"),
        ({"linux": {"healthzport": 1}}, "linux: Additional property healthzport"),
        ({"cache": {"ttl": "ten minutes"}}, "cache.ttl"),
        ({"logFormat": "xml"}, "logFormat"),
        ({"logVerbosity": "loud"}, "logVerbosity"),
        ({"linux": {"healthzPort": "http"}}, "linux.healthzPort"),
        ({"rrsa": {"accountId": "12-34"}}, "rrsa.accountId"),
        ({"serviceAccount": {"annotations": {}}}, "serviceAccount: Additional property"),
        ({"envVarsFromSecret": {"ACCESS_KEY_ID": {"secretKeyRef": "s"}}},
         "envVarsFromSecret.ACCESS_KEY_ID: key is required"),
        ({"envVarsFromSecret": {"BAD-NAME": {"secretKeyRef": "s", "key": "k"}}}, "BAD-NAME"),
        ({"endpointOverrides": {"kms": "kms.example.com"}}, "endpointOverrides.kms"),
        ({"endpointOverrides": {"kms": "https://proxy:8443/path"}}, "endpointOverrides.kms"),
        ({"providerIdentity": {"allowedNamespaces": ["Not_A_Namespace"]}}, "allowedNamespaces.0"),
        ({"secrets-store-csi-driver": {"instal": False}}, None),  # pass-through: accepted
    ],
)
def test_schema_rejects_misspelled_and_mistyped_values(
    chart: ChartUnderTest, values: dict[str, Any], complaint: str | None
) -> None:
    if complaint is None:
        # Upstream driver values are passed through unchecked; only the known ones are typed.
        assert chart.template([], values).find("DaemonSet")
        return
    error = chart.template_error(values=values)
    assert "values don't meet the specifications of the schema" in error
    assert complaint in error


def test_schema_is_strict_where_it_owns_the_keys(helm_lib: ModuleType) -> None:
    schema = json.loads((helm_lib.CHART_DIR / "values.schema.json").read_text())

    def walk(node: dict[str, Any], path: str) -> None:
        if "properties" in node and path != "secrets-store-csi-driver" and not path.startswith(
            "secrets-store-csi-driver."
        ):
            assert node.get("additionalProperties") is False, f"{path or '<root>'} is open"
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}" if path else key)

    walk(schema, "")


def test_defaults_satisfy_the_schema_and_schema_covers_defaults(helm_lib: ModuleType) -> None:
    schema = json.loads((helm_lib.CHART_DIR / "values.schema.json").read_text())
    defaults = yaml.safe_load((helm_lib.CHART_DIR / "values.yaml").read_text())
    assert set(defaults) <= set(schema["properties"])
    assert set(schema["properties"]) - set(defaults) == {"global"}


@pytest.mark.parametrize("assignment", [
    # The official chart had no schema; what its users' values files and READMEs do.
    "rrsa.accountId=123456789012",        # both READMEs' --set: an integer to helm
    "logVerbosity=2",
])
def test_official_command_lines_are_accepted(chart: ChartUnderTest, assignment: str) -> None:
    assert chart.template(sets=[assignment]).one("DaemonSet")


def test_quoted_numbers_are_accepted(chart: ChartUnderTest) -> None:
    daemonset = chart.template([], {
        "logVerbosity": "2", "linux": {"healthzPort": "8989"}, "rrsa": {"accountId": 1234},
    }).one("DaemonSet")
    [container] = daemonset["spec"]["template"]["spec"]["containers"]
    assert "-v=2" in container["args"] and "--healthz-port=8989" in container["args"]
    # Still a number where Kubernetes needs one.
    assert container["livenessProbe"]["httpGet"]["port"] == 8989
    assert {"name": "healthz", "containerPort": 8989, "protocol": "TCP"} in container["ports"]


def test_official_service_account_keys_are_accepted_without_effect(
    chart: ChartUnderTest,
) -> None:
    rendered = chart.template([], {"serviceAccount": {"create": False, "name": "other"}})
    # As in the official chart, whose templates never read them: the name stays fixed.
    assert rendered.one("ServiceAccount")["metadata"]["name"] == (
        "csi-secrets-store-provider-alibabacloud")
    assert "serviceAccount.create / serviceAccount.name have no effect" in rendered.notes
    assert "have no effect" not in chart.template().notes


def test_dns_policy_none_is_refused(chart: ChartUnderTest) -> None:
    # `None` needs a dnsConfig the chart does not render: the pod would be invalid.
    error = chart.template_error(values={"linux": {"dnsPolicy": "None"}})
    assert "linux.dnsPolicy" in error
