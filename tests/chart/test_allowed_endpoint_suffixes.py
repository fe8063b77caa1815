"""The chart value `allowedEndpointSuffixes` reaches the provider as `--allowed-endpoint-suffixes`
(empty keeps the provider's default, aliyuncs.com) and the schema refuses malformed domains."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from ack_secrets_provider.core import cli

if TYPE_CHECKING:
    from helm import ChartUnderTest


def _settings(chart: ChartUnderTest, helm_lib: ModuleType,
              values: dict[str, Any] | None) -> Any:
    daemonset = chart.template([], values).one("DaemonSet")
    [container] = daemonset["spec"]["template"]["spec"]["containers"]
    # as the process receives them: kubelet expands $(POD_IP)
    args = cli.build_parser("serve").parse_args(["serve", *helm_lib.kubelet_args(container)])
    return container["args"], cli.build_settings(args, {})


def test_default_keeps_the_provider_default(chart: ChartUnderTest, helm_lib: ModuleType) -> None:
    args, settings = _settings(chart, helm_lib, None)
    assert not any(arg.startswith("--allowed-endpoint-suffixes") for arg in args)
    assert settings.allowed_endpoint_suffixes == ("aliyuncs.com",)


def test_listed_domains_become_the_flag(chart: ChartUnderTest, helm_lib: ModuleType) -> None:
    args, settings = _settings(
        chart, helm_lib, {"allowedEndpointSuffixes": ["aliyuncs.com", "kms-proxy.corp.example"]})
    assert "--allowed-endpoint-suffixes=aliyuncs.com,kms-proxy.corp.example" in args
    assert settings.allowed_endpoint_suffixes == ("aliyuncs.com", "kms-proxy.corp.example")
    _args, settings = _settings(chart, helm_lib, {"allowedEndpointSuffixes": ["*"]})
    assert settings.allowed_endpoint_suffixes == ("*",)


@pytest.mark.parametrize("bad", ["https://corp.example", "corp.example:443", "*.corp.example"])
def test_schema_refuses_malformed_domains(chart: ChartUnderTest, bad: str) -> None:
    error = chart.template_error(values={"allowedEndpointSuffixes": [bad]})
    assert "values don't meet the specifications of the schema" in error
    assert "allowedEndpointSuffixes.0" in error
