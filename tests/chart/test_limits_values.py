"""The chart's `limits` values reach the provider's request bounds (docs/security.md)."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from ack_secrets_provider.core import cli
from ack_secrets_provider.core.mount.limits import RequestLimits
from ack_secrets_provider.core.settings import ProviderSettings

if TYPE_CHECKING:
    from helm import ChartUnderTest


def _settings(chart: ChartUnderTest, helm_lib: ModuleType,
              limits: dict[str, int | None]) -> ProviderSettings:
    daemonset = chart.template([chart.region_values("cn-hangzhou")], {"limits": limits}).one(
        "DaemonSet")
    # as the process receives them: kubelet expands $(POD_IP)
    args = helm_lib.kubelet_args(daemonset["spec"]["template"]["spec"]["containers"][0])
    return cli.build_settings(cli.build_parser().parse_args(["serve", *args]), {})


def test_unset_limits_keep_the_providers_defaults(
        chart: ChartUnderTest, helm_lib: ModuleType) -> None:
    settings = _settings(chart, helm_lib, {})
    assert settings.request_limits == RequestLimits()
    assert settings.max_concurrent_mounts == ProviderSettings().max_concurrent_mounts


def test_every_limit_value_sets_its_flag(chart: ChartUnderTest, helm_lib: ModuleType) -> None:
    settings = _settings(chart, helm_lib, {
        "requestBytes": 2097152, "objectsBytes": 1048576, "objects": 512, "jmespathEntries": 300,
        "objectsYamlNodes": 50000, "objectsYamlDepth": 20, "jmespathLength": 2048,
        "jmespathSteps": 5000000,
        "concurrentMounts": 32,
    })
    assert settings.request_limits == RequestLimits(
        request_bytes=2097152, objects_bytes=1048576, objects=512, jmespath_entries=300,
        yaml_nodes=50000, yaml_depth=20, jmespath_length=2048, jmespath_steps=5000000)
    assert settings.max_concurrent_mounts == 32


def test_the_schema_refuses_a_misspelled_or_zero_limit(chart: ChartUnderTest) -> None:
    assert "maxObjects" in chart.template_error([], {"limits": {"maxObjects": 5}})
    assert "limits.objects" in chart.template_error([], {"limits": {"objects": 0}})
