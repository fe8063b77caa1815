"""Chart.yaml's optional driver dependency and the values this chart hands the driver."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from helm import ChartUnderTest


def test_dependency_is_the_upstream_chart_and_optional(helm_lib: ModuleType) -> None:
    chart = yaml.safe_load((helm_lib.CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    (dep,) = chart["dependencies"]
    assert dep["name"] == "secrets-store-csi-driver"
    assert dep["repository"] == "https://kubernetes-sigs.github.io/secrets-store-csi-driver/charts"
    assert dep["condition"] == "secrets-store-csi-driver.install"
    # No upstream code in the repository: the dependency is fetched by `helm dependency build`.
    assert not (helm_lib.CHART_DIR / "charts").exists() or not any(
        (helm_lib.CHART_DIR / "charts").iterdir()
    )


def test_driver_defaults(chart: ChartUnderTest) -> None:
    values = chart.template().driver_values
    assert values is not None, "the driver dependency must be installed by default"
    assert values["tokenRequests"] == [{"audience": "sts.aliyuncs.com"}]
    assert values["enableSecretRotation"] is False
    assert values["syncSecret"] == {"enabled": False}
    assert values["linux"]["providersDir"] == "/var/run/secrets-store-csi-providers"
    assert values["fullnameOverride"] == "secrets-store-csi-driver"


def test_seed_ak_turns_on_rotation(chart: ChartUnderTest, seed_values: dict[str, Path]) -> None:
    values = chart.template([seed_values["ak"]]).driver_values
    assert values is not None
    assert values["enableSecretRotation"] is True
    assert values["rotationPollInterval"] == "120s"
    assert values["tokenRequests"] == [{"audience": "sts.aliyuncs.com"}]


def test_seed_rrsa_keeps_driver_defaults(
    chart: ChartUnderTest, seed_values: dict[str, Path]
) -> None:
    values = chart.template([seed_values["rrsa"]]).driver_values
    assert values is not None
    assert values["enableSecretRotation"] is False and values["rotationPollInterval"] == "2m"


def test_driver_values_pass_through(chart: ChartUnderTest) -> None:
    values = chart.template([], {"secrets-store-csi-driver": {
        "syncSecret": {"enabled": True},
        "linux": {"kubeletRootDir": "/data/kubelet"},
        "logVerbosity": 3,
    }}).driver_values
    assert values is not None
    assert values["syncSecret"] == {"enabled": True}
    assert values["linux"]["kubeletRootDir"] == "/data/kubelet"
    assert values["logVerbosity"] == 3


def test_install_false_skips_the_driver(chart: ChartUnderTest) -> None:
    rendered = chart.template([], {"secrets-store-csi-driver": {"install": False}})
    assert rendered.driver_values is None
    assert rendered.find("DaemonSet")  # the provider is still installed


def test_one_value_sets_the_response_limit_of_the_driver_and_the_provider(
    chart: ChartUnderTest, helm_lib: ModuleType,
) -> None:
    """The driver refuses a Mount response above its --max-call-recv-msg-size; the provider
    refuses first, with an explanation, at its flag of the same name. Raising only one side
    cannot help, so the chart feeds both from secrets-store-csi-driver.maxCallRecvMsgSize."""
    for size, values in ((4194304, None),
                         (8388608, {"secrets-store-csi-driver": {"maxCallRecvMsgSize": 8388608}})):
        rendered = chart.template([], values)
        driver = rendered.driver_values
        assert driver is not None and int(driver["maxCallRecvMsgSize"]) == size
        daemonset = rendered.one("DaemonSet")
        (container,) = daemonset["spec"]["template"]["spec"]["containers"]
        assert f"--max-call-recv-msg-size={size}" in container["args"]
        from ack_secrets_provider.core import cli

        args = cli.build_parser("serve").parse_args(["serve", *helm_lib.kubelet_args(container)])
        assert cli.build_settings(args, {}).max_response_bytes == size
