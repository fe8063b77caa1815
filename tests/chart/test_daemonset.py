"""templates/daemonset.yaml: the provider DaemonSet."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from helm import ChartUnderTest

TOKEN_PATH = "/var/run/secrets/tokens/csi-secrets-store-provider-alibabacloud"
TOKEN_VOLUME = "csi-secrets-store-provider-alibabacloud"

# The flags of `ack-secrets-provider serve` (value flags and boolean flags).
VALUE_FLAGS = {
    "--provider-volume", "--healthz-port", "--healthz-path", "--healthz-timeout", "--region",
    "--max-concurrent-kms-secret-pulls", "--max-concurrent-oos-secret-pulls", "-v",
    "--max-call-recv-msg-size",
    "--log-format", "--metrics-port", "--metrics-addr", "--healthz-addr", "--cache-ttl",
    "--cache-max-entries", "--cache-max-bytes", "--fetch-concurrency",
    "--provider-identity-namespaces", "--kms-ca-file", "--kms-ca-dir", "--sts-endpoint",
    "--rrsa-token-file", "--endpoint-override",
}
BOOL_FLAGS = {"--disable-imds-v1", "--events", "--no-events"}


def _container(chart: ChartUnderTest, files: list[Path] | None = None,
               values: dict[str, Any] | None = None) -> dict[str, Any]:
    daemonset = chart.template(files or [], values).one("DaemonSet")
    containers = daemonset["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def _pod_spec(chart: ChartUnderTest, values: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = chart.template([], values).one("DaemonSet")["spec"]["template"]["spec"]
    return spec


def _flags(container: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Split args into (flag, value); fail on anything the provider's CLI does not accept."""
    out: list[tuple[str, str | None]] = []
    for arg in container["args"]:
        flag, sep, value = arg.partition("=")
        if sep:
            assert flag in VALUE_FLAGS, f"unknown value flag {arg!r}"
            out.append((flag, value))
        else:
            assert flag in BOOL_FLAGS, f"unknown flag {arg!r}"
            out.append((flag, None))
    return out


def _flag(container: dict[str, Any], name: str) -> list[str | None]:
    return [value for flag, value in _flags(container) if flag == name]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [e["name"] for e in container.get("env", [])]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {e["name"]: e for e in container.get("env", [])}


def _secret_env(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        name: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for name, e in _env(container).items()
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def _volume(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found = [v for v in spec["volumes"] if v["name"] == name]
    assert len(found) == 1, f"volume {name} not rendered once: {spec['volumes']}"
    return found[0]


def _mounts(container: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}


def test_default_args_match_the_cli(chart: ChartUnderTest) -> None:
    assert _flags(_container(chart)) == [
        ("--provider-volume", "/provider"),
        ("-v", "0"),
        ("--log-format", "text"),
        ("--healthz-port", "8989"),
        ("--healthz-path", "/healthz"),
        ("--healthz-timeout", "5s"),
        ("--healthz-addr", "$(POD_IP)"),
        ("--metrics-port", "8990"),
        ("--metrics-addr", "$(POD_IP)"),
        ("--max-concurrent-kms-secret-pulls", "10"),
        ("--max-concurrent-oos-secret-pulls", "10"),
        ("--max-call-recv-msg-size", "4194304"),
        ("--cache-ttl", "60s"),
        ("--events", None),
    ]


def test_socket_hostpath_is_mounted_at_provider_volume(chart: ChartUnderTest) -> None:
    spec = _pod_spec(chart, {"linux": {"providersDir": "/etc/kubernetes/providers"}})
    assert _volume(spec, "provider-vol")["hostPath"]["path"] == "/etc/kubernetes/providers"
    assert _mounts(spec["containers"][0])["provider-vol"] == "/provider"
    assert _volume(_pod_spec(chart), "provider-vol")["hostPath"]["path"] == (
        "/var/run/secrets-store-csi-providers"
    )


def test_hardening(chart: ChartUnderTest) -> None:
    spec = _pod_spec(chart)
    ctx = spec["containers"][0]["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # Root by default (root-owned socket dir); the host network as the official chart, no more.
    assert ctx["runAsUser"] == 0 and ctx["runAsNonRoot"] is False
    assert spec["hostNetwork"] is True
    assert not {"hostPID", "hostIPC"} & set(spec)
    # The provider writes no files: no /tmp unless asked for.
    assert "/tmp" not in _mounts(spec["containers"][0]).values()


def test_non_root_user_sets_run_as_non_root(chart: ChartUnderTest) -> None:
    ctx = _container(chart, values={"linux": {"runAsUser": 65532, "runAsGroup": 65532}})[
        "securityContext"
    ]
    assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["runAsNonRoot"]) == (65532, 65532, True)


def test_memory_backed_tmp_only_when_asked(chart: ChartUnderTest) -> None:
    spec = _pod_spec(chart, {"linux": {"tmpSizeLimit": "16Mi"}})
    assert _volume(spec, "tmp")["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Mi"}
    assert _mounts(spec["containers"][0])["tmp"] == "/tmp"


def test_probes_use_the_health_port(chart: ChartUnderTest) -> None:
    container = _container(chart, values={"linux": {"healthzPort": 9999, "healthzPath": "/hz"}})
    assert {"name": "healthz", "containerPort": 9999, "protocol": "TCP"} in container["ports"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/hz", "port": 9999}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9999}
    assert _flag(container, "--healthz-port") == ["9999"]
    assert _flag(container, "--healthz-path") == ["/hz"]


def test_scheduling_defaults(chart: ChartUnderTest) -> None:
    spec = _pod_spec(chart)
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    resources = spec["containers"][0]["resources"]
    # Memory as the official chart (the request covers the measured ~90-102 MB peak); the CPU
    # limit lifted from 100m (docs/migration.md).
    assert resources == {
        "requests": {"cpu": "50m", "memory": "100Mi"},
        "limits": {"cpu": "500m", "memory": "500Mi"},
    }


def test_image_defaults_to_app_version(chart: ChartUnderTest, helm_lib: ModuleType) -> None:
    app_version = yaml.safe_load((helm_lib.CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    # The default tag is the provider release this chart ships.
    assert app_version == importlib.metadata.version("csi-secrets-store-provider-alibabacloud")
    image = _container(chart)["image"]
    assert image == (
        "registry.cn-hangzhou.aliyuncs.com/ack-secrets-provider/"
        f"csi-secrets-store-provider-alibabacloud:{app_version}"
    )
    # Fully qualified: the first path element is a registry host, so the name never resolves to
    # Docker Hub.
    assert "." in image.split("/")[0]
    pinned = _container(chart, values={"linux": {"image": {"repository": "r/p", "tag": "t1"}}})
    assert pinned["image"] == "r/p:t1"


@pytest.mark.parametrize("repository", [
    "registry-cn-hangzhou.aliyuncs.com/acs/secrets-store-csi-driver-provider-alibaba-cloud",
    "registry.__ACK_REGION_ID__.aliyuncs.com/acs/secrets-store-csi-driver-provider-alibaba-cloud",
    "registry-vpc.cn-beijing.aliyuncs.com/acs/secrets-store-csi-driver-provider-alibaba-cloud",
    "mirror.corp.example/secrets-store-csi-driver-provider-alibaba-cloud",
])
def test_the_go_image_is_refused(chart: ChartUnderTest, repository: str) -> None:
    error = chart.template_error(values={"linux": {"image": {"repository": repository,
                                                             "tag": "v0.6.0"}}})
    assert f"linux.image.repository is {repository}, the official Go provider's image" in error
    assert "--log-format" in error  # why: flags the Go binary exits on
    assert "Remove linux.image (repository and tag) from your values file" in error


def test_other_images_are_not_mistaken_for_the_go_one(chart: ChartUnderTest) -> None:
    for repository in ("registry.example/acs/secrets-store-csi-driver-provider-alibaba-cloud-py",
                       "registry.example/acs/csi-secrets-store-provider-alibabacloud"):
        image = _container(chart, values={"linux": {"image": {"repository": repository}}})["image"]
        assert image.startswith(f"{repository}:")
    # The provider disabled: nothing runs the image, nothing to refuse.
    off = {"linux": {"enabled": False, "image": {
        "repository": "r/acs/secrets-store-csi-driver-provider-alibaba-cloud"}}}
    assert chart.template([], off).find("DaemonSet") == []


def test_selector_is_the_existing_charts(chart: ChartUnderTest) -> None:
    # DaemonSet selectors are immutable: keep the old chart's so `helm upgrade` over it works.
    daemonset = chart.template().one("DaemonSet")
    assert daemonset["spec"]["selector"] == {
        "matchLabels": {"app": "csi-secrets-store-provider-alibabacloud"}
    }
    assert daemonset["metadata"]["name"] == "csi-secrets-store-provider-alibabacloud"
    spec = daemonset["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "csi-secrets-store-provider-alibabacloud"


def test_seed_ak_env_from_secret(chart: ChartUnderTest, seed_values: dict[str, Path]) -> None:
    container = _container(chart, [seed_values["ak"]])
    assert _secret_env(container) == {
        "ACCESS_KEY_ID": ("alibaba-credentials", "id"),
        "SECRET_ACCESS_KEY": ("alibaba-credentials", "secret"),
        "ALICLOUD_ROLE_ARN": ("alibaba-credentials", "rolearn"),
    }
    assert TOKEN_VOLUME not in _mounts(container)
    assert _flag(container, "--rrsa-token-file") == []


def test_seed_rrsa_projects_the_token(chart: ChartUnderTest, seed_values: dict[str, Path]) -> None:
    daemonset = chart.template([seed_values["rrsa"]]).one("DaemonSet")
    spec = daemonset["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert _secret_env(container) == {
        "ALICLOUD_ROLE_ARN": ("alibaba-credentials", "rolearn"),
        "ALICLOUD_OIDC_PROVIDER_ARN": ("alibaba-credentials", "oidcproviderarn"),
    }
    # The official chart's volume name (a values file's linux.volumeMounts may name it).
    sources = _volume(spec, TOKEN_VOLUME)["projected"]["sources"]
    assert sources == [
        {
            "serviceAccountToken": {
                "audience": "sts.aliyuncs.com",
                "expirationSeconds": 7200,
                "path": "csi-secrets-store-provider-alibabacloud",
            }
        }
    ]
    mount = [m for m in container["volumeMounts"] if m["name"] == TOKEN_VOLUME]
    assert len(mount) == 1 and mount[0]["readOnly"] is True
    token_file = f"{mount[0]['mountPath']}/{sources[0]['serviceAccountToken']['path']}"
    assert token_file == TOKEN_PATH
    assert _flag(container, "--rrsa-token-file") == [TOKEN_PATH]


@pytest.mark.parametrize("enable", [True, False])
def test_rrsa_account_and_cluster_ids_become_env(chart: ChartUnderTest, enable: bool) -> None:
    # Passed with or without provider RRSA, as the official chart: pod-level RRSA builds the
    # OIDC provider ARN from them too.
    values = {"rrsa": {"enable": enable, "accountId": "1234567890", "clusterId": "c0123abcd"}}
    env = _env(_container(chart, values=values))
    assert env["ALICLOUD_ACCOUNT_ID"]["value"] == "1234567890"
    assert env["ALICLOUD_CLUSTER_ID"]["value"] == "c0123abcd"
    unset = _env(_container(chart))
    assert "ALICLOUD_ACCOUNT_ID" not in unset and "ALICLOUD_CLUSTER_ID" not in unset


def test_numeric_account_id_is_passed_digit_for_digit(
    chart: ChartUnderTest, tmp_path: Path
) -> None:
    # `--set` (how both READMEs show it) gives helm an integer ...
    daemonset = chart.template(sets=["rrsa.accountId=1234567890123456"]).one("DaemonSet")
    env = _env(daemonset["spec"]["template"]["spec"]["containers"][0])
    assert env["ALICLOUD_ACCOUNT_ID"]["value"] == "1234567890123456"
    # ... and a values file a float, which must not come out as 1.234567890123456e+15.
    values_file = tmp_path / "ids.yaml"
    values_file.write_text("rrsa:\n  accountId: 1234567890123456\n")
    env = _env(_container(chart, [values_file]))
    assert env["ALICLOUD_ACCOUNT_ID"]["value"] == "1234567890123456"


def test_rrsa_id_twice_is_refused(chart: ChartUnderTest) -> None:
    error = chart.template_error(values={
        "rrsa": {"enable": True, "accountId": "1"},
        "envVarsFromSecret": {"ALICLOUD_ACCOUNT_ID": {"secretKeyRef": "s", "key": "k"}},
    })
    assert "rrsa.accountId" in error and "envVarsFromSecret.ALICLOUD_ACCOUNT_ID" in error


def test_downward_api_env(chart: ChartUnderTest) -> None:
    env = _env(_container(chart))
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_host_network_binds_to_the_pod_ip(chart: ChartUnderTest) -> None:
    # The default, as the official chart: the host network with the Kubernetes default DNS
    # policy, which there means the node's resolver, as before.
    spec = _pod_spec(chart)
    container = spec["containers"][0]
    assert spec["hostNetwork"] is True and "dnsPolicy" not in spec
    assert _flag(container, "--healthz-addr") == ["$(POD_IP)"]
    assert _flag(container, "--metrics-addr") == ["$(POD_IP)"]
    # Cluster DNS on the host network, for endpointOverrides naming in-cluster Services.
    spec = _pod_spec(chart, {"linux": {"dnsPolicy": "ClusterFirstWithHostNet"}})
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_own_network_namespace_is_an_opt_in(chart: ChartUnderTest) -> None:
    spec = _pod_spec(chart, {"linux": {"hostNetwork": False}})
    container = spec["containers"][0]
    # The pod's own interfaces are private: bind everything; cluster DNS (ClusterFirst).
    assert spec["hostNetwork"] is False and "dnsPolicy" not in spec
    assert _flag(container, "--healthz-addr") == [] and _flag(container, "--metrics-addr") == []


def test_metrics_port_and_annotations(chart: ChartUnderTest) -> None:
    daemonset = chart.template([], {"metrics": {"port": 9100}}).one("DaemonSet")
    template = daemonset["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert _flag(container, "--metrics-port") == ["9100"]
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in container["ports"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "9100"


def test_metrics_disabled(chart: ChartUnderTest) -> None:
    daemonset = chart.template([], {"metrics": {"enabled": False}}).one("DaemonSet")
    template = daemonset["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert _flag(container, "--metrics-port") == ["0"]
    assert [p["name"] for p in container["ports"]] == ["healthz"]
    assert "annotations" not in template["metadata"]


def test_provider_settings_flags(chart: ChartUnderTest) -> None:
    container = _container(chart, [chart.region_values("cn-shanghai")], values={
        "logVerbosity": 5,
        "logFormat": "json",
        "rateLimits": {"kmsSecretPullsPerSecond": 25, "oosSecretPullsPerSecond": 3},
        "fetchConcurrency": 6,
        "cache": {"ttl": "0", "maxEntries": 100, "maxBytes": 10485760},
        "providerIdentity": {"allowedNamespaces": ["a", "b-2"]},
        "stsEndpoint": "sts-vpc.cn-shanghai.aliyuncs.com",
        "disableImdsV1": True,
        "events": {"enabled": False},
        "endpointOverrides": {"oos": "http://127.0.0.1:9002", "kms": "https://kms.proxy:8443"},
    })
    flags = dict((f, v) for f, v in _flags(container) if f != "--endpoint-override")
    assert flags["--region"] == "cn-shanghai"
    assert flags["-v"] == "5" and flags["--log-format"] == "json"
    assert flags["--max-concurrent-kms-secret-pulls"] == "25"
    assert flags["--max-concurrent-oos-secret-pulls"] == "3"
    assert flags["--fetch-concurrency"] == "6"
    assert flags["--cache-ttl"] == "0"
    assert flags["--cache-max-entries"] == "100" and flags["--cache-max-bytes"] == "10485760"
    assert flags["--provider-identity-namespaces"] == "a,b-2"
    assert flags["--sts-endpoint"] == "sts-vpc.cn-shanghai.aliyuncs.com"
    assert "--disable-imds-v1" in flags
    assert "--no-events" in flags and "--events" not in flags
    assert _flag(container, "--endpoint-override") == [
        "kms=https://kms.proxy:8443",
        "oos=http://127.0.0.1:9002",
    ]


@pytest.mark.parametrize("source", ["configMap", "secret"])
def test_kms_ca_bundle(chart: ChartUnderTest, source: str) -> None:
    spec = _pod_spec(chart, {"kmsCaBundle": {source: {"name": "gw-ca", "key": "bundle.pem"}}})
    container = spec["containers"][0]
    volume = _volume(spec, "kms-ca")
    if source == "configMap":
        assert volume["configMap"]["name"] == "gw-ca"
        items = volume["configMap"]["items"]
    else:
        assert volume["secret"]["secretName"] == "gw-ca"
        items = volume["secret"]["items"]
    assert items == [{"key": "bundle.pem", "path": "ca.pem"}]
    assert _flag(container, "--kms-ca-file") == [f"{_mounts(container)['kms-ca']}/ca.pem"]


def test_kms_ca_bundle_needs_one_source(chart: ChartUnderTest) -> None:
    error = chart.template_error(values={
        "kmsCaBundle": {"configMap": {"name": "a"}, "secret": {"name": "b"}}
    })
    assert "kmsCaBundle" in error and "not both" in error


def test_user_volumes_and_pod_metadata(chart: ChartUnderTest) -> None:
    daemonset = chart.template([], {"linux": {
        "volumes": [{"name": "extra", "emptyDir": {}}],
        "volumeMounts": [{"name": "extra", "mountPath": "/extra"}],
        "podLabels": {"team": "platform"},
        "podAnnotations": {"owner": "platform"},
        "nodeSelector": {"pool": "a"},
        "priorityClassName": "",
    }}).one("DaemonSet")
    template = daemonset["spec"]["template"]
    spec = template["spec"]
    assert _volume(spec, "extra") == {"name": "extra", "emptyDir": {}}
    assert _mounts(spec["containers"][0])["extra"] == "/extra"
    assert template["metadata"]["labels"]["team"] == "platform"
    assert template["metadata"]["annotations"]["owner"] == "platform"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "a"}
    assert "priorityClassName" not in spec


def test_linux_disabled_renders_no_daemonset(chart: ChartUnderTest) -> None:
    assert chart.template([], {"linux": {"enabled": False}}).find("DaemonSet") == []


def test_rendered_args_parse_with_the_provider_cli(
        chart: ChartUnderTest, helm_lib: ModuleType) -> None:
    """The chart/CLI contract, checked against the real parser and settings builder."""
    from ack_secrets_provider.core import cli

    values: dict[str, Any] = {
        "logVerbosity": 4,
        "logFormat": "json",
        "rateLimits": {"kmsSecretPullsPerSecond": 20, "oosSecretPullsPerSecond": 5},
        "fetchConcurrency": 8,
        "cache": {"ttl": "5m", "maxEntries": 5000, "maxBytes": 67108864},
        "providerIdentity": {"allowedNamespaces": ["kube-system", "payments"]},
        "kmsCaBundle": {"secret": {"name": "gw-ca"}},
        "stsEndpoint": "sts-vpc.cn-hangzhou.aliyuncs.com",
        "disableImdsV1": True,
        "rrsa": {"enable": True},
        "events": {"enabled": True},
        "endpointOverrides": {"kms": "http://127.0.0.1:18080",
                              "kms.cn-hangzhou.aliyuncs.com": "https://proxy.internal:8443"},
    }
    container = _container(chart, [chart.region_values("cn-hangzhou")], values=values)
    # as the process receives them: kubelet expands $(POD_IP)
    args = cli.build_parser().parse_args(["serve", *helm_lib.kubelet_args(container)])
    assert (args.verbosity, args.log_format, args.events) == (4, "json", True)
    assert (args.provider_volume, args.healthz_port, args.metrics_port) == ("/provider", 8989, 8990)
    settings = cli.build_settings(args, {})
    assert settings.region == "cn-hangzhou"
    assert (settings.rate_limits["kms"], settings.rate_limits["oos"]) == (20, 5)
    assert settings.fetch_concurrency == 8
    assert settings.cache_ttl == 300.0
    assert (settings.cache_max_entries, settings.cache_max_bytes) == (5000, 67108864)
    assert settings.provider_identity_namespaces == frozenset({"kube-system", "payments"})
    assert settings.backend_options["kms_ca_file"] == f"{_mounts(container)['kms-ca']}/ca.pem"
    assert settings.sts_endpoint == "sts-vpc.cn-hangzhou.aliyuncs.com"
    assert settings.imds_v1_fallback is False
    assert settings.rrsa_token_file == TOKEN_PATH
    assert dict(settings.endpoint_overrides.by_service) == {"kms": "http://127.0.0.1:18080"}
    assert dict(settings.endpoint_overrides.by_host) == {
        "kms.cn-hangzhou.aliyuncs.com": "https://proxy.internal:8443"
    }
    off = cli.build_parser().parse_args(
        ["serve", *helm_lib.kubelet_args(_container(chart, values={"events": {"enabled": False}}))]
    )
    assert off.events is False


@pytest.mark.parametrize("region_id", ["", "__ACK_REGION_ID__"])
def test_no_region_flag_without_a_real_region(chart: ChartUnderTest, region_id: str) -> None:
    # Empty, or the marketplace placeholder left unreplaced (the default): no --region, so the
    # provider uses its node's region instead of a bogus one.
    assert _flag(_container(chart, values={"regionId": region_id}), "--region") == []


def test_region_flag_as_the_official_chart(chart: ChartUnderTest) -> None:
    container = _container(chart, [chart.region_values("ap-southeast-1")])
    assert _flag(container, "--region") == ["ap-southeast-1"]
    without_driver = {"regionId": "cn-beijing", "secrets-store-csi-driver": {"install": False}}
    assert _flag(_container(chart, values=without_driver), "--region") == ["cn-beijing"]


def test_region_set_by_hand_with_placeholder_driver_images_is_refused(
    chart: ChartUnderTest,
) -> None:
    # The driver's images would be registry.__ACK_REGION_ID__.aliyuncs.com/...: unpullable, and
    # the pre-install CRD hook Job would hang until helm times out.
    error = chart.template_error(values={"regionId": "cn-beijing"})
    refusal = "secrets-store-csi-driver values still contain the placeholder __ACK_REGION_ID__"
    assert refusal in error
    assert "helm show values CHART | sed 's/__ACK_REGION_ID__/cn-beijing/g'" in error


def test_log_format_json_of_the_official_readme(chart: ChartUnderTest) -> None:
    assert _flag(_container(chart, values={"logFormatJSON": True}), "--log-format") == ["json"]
    assert _flag(_container(chart, values={"logFormat": "json"}), "--log-format") == ["json"]
