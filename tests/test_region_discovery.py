"""Start-up region discovery: --region, else instance metadata, else the node's label, else a
clear start-up error. Everything points at the loopback emulator and a fake Kubernetes API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest
from installed import SERVICES

from ack_secrets_provider.auth.emulator import FakeKubeApi
from ack_secrets_provider.core.cli import build_parser, build_settings
from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.cloud.region import RegionUnknown, discover_region
from ack_secrets_provider.core.emulator.testing import EmulatorHandle
from ack_secrets_provider.core.settings import ProviderSettings


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    api = FakeKubeApi().start()
    try:
        yield api
    finally:
        api.stop()


def _settings(emulator: EmulatorHandle | None, environ: dict[str, str],
              kube_url: str | None = None) -> ProviderSettings:
    overrides = (EndpointOverrides.parse([f"metadata={emulator.http_url}"], SERVICES) if emulator
                 else EndpointOverrides())
    return ProviderSettings(endpoint_overrides=overrides, environ=MappingProxyType(environ),
                            kube_api_url=kube_url, kube_token_file=None, kube_ca_file=None)


def test_the_metadata_service_gives_the_region(emu: EmulatorHandle) -> None:
    emu.admin("POST", "metadata/set", {"region": "cn-shanghai"})
    found = discover_region(_settings(emu, {}))
    assert (found.region, found.source) == ("cn-shanghai", "the instance metadata service")


def test_the_node_label_answers_when_metadata_cannot(emu: EmulatorHandle,
                                                     kube: FakeKubeApi) -> None:
    emu.admin("POST", "metadata/set", {"region": None})  # metadata answers 404
    kube.nodes["node-1"] = {"topology.kubernetes.io/region": "cn-beijing"}
    found = discover_region(_settings(emu, {"NODE_NAME": "node-1"}, kube.url))
    assert (found.region, found.source) == ("cn-beijing", "the label of node node-1")


def test_disabled_metadata_is_not_called(emu: EmulatorHandle, kube: FakeKubeApi) -> None:
    emu.admin("POST", "metadata/set", {"region": "cn-shanghai"})
    emu.reset_counters()
    kube.nodes["node-1"] = {"topology.kubernetes.io/region": "cn-beijing"}
    environ = {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", "NODE_NAME": "node-1"}
    assert discover_region(_settings(emu, environ, kube.url)).region == "cn-beijing"
    assert not [api for api in emu.counters()["by_api"] if api.startswith("metadata.")]


def test_nothing_gives_a_region_error_naming_every_source(emu: EmulatorHandle,
                                                          kube: FakeKubeApi) -> None:
    emu.admin("POST", "metadata/set", {"region": None})
    kube.nodes["node-1"] = {"kubernetes.io/hostname": "node-1"}
    with pytest.raises(RegionUnknown) as caught:
        discover_region(_settings(emu, {"NODE_NAME": "node-1"}, kube.url))
    message = str(caught.value)
    assert "--region is not set (Helm value regionId)" in message
    assert f"metadata service at {emu.http_url}" in message
    assert "node node-1 has no topology.kubernetes.io/region label" in message


def test_an_unloadable_metadata_ca_is_named_not_raised(tmp_path: Path) -> None:
    """An https metadata override is trusted with --sts-ca-file: a CA file holding no PEM
    certificate is one of the reasons listed (file, flag, fix), not an SSLError escaping
    start-up with a traceback. Nothing is sent (port 9 is never dialled)."""
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    settings = ProviderSettings(
        endpoint_overrides=EndpointOverrides.parse(["metadata=https://127.0.0.1:9"], SERVICES),
        sts_ca_file=str(not_pem), environ=MappingProxyType({}))
    with pytest.raises(RegionUnknown) as caught:
        discover_region(settings)
    assert (f"the instance metadata service at https://127.0.0.1:9 gave no region-id: the CA "
            f"bundle {not_pem} (--sts-ca-file) trusted for the instance metadata service at "
            "https://127.0.0.1:9 cannot be loaded (NO_CERTIFICATE_OR_CRL_FOUND); an https "
            "metadata endpoint override is trusted with --sts-ca-file") in str(caught.value)


def test_the_unreplaced_marketplace_placeholder_means_no_region() -> None:
    args = build_parser("serve").parse_args(["serve", "--region=__ACK_REGION_ID__"])
    assert build_settings(args, {}).region is None
    args = build_parser("serve").parse_args(["serve", "--region=cn-hangzhou"])
    assert build_settings(args, {}).region == "cn-hangzhou"


def _serve(tmp_path: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ack_secrets_provider.core.cli", "serve",
         f"--provider-volume={tmp_path}", "--healthz-port=0", "--metrics-port=0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "NODE_NAME": ""},
    )


def test_serve_without_any_region_source_refuses_to_start(tmp_path: Path) -> None:
    # the suite's environment disables the metadata service; no NODE_NAME: nothing can answer
    proc = _serve(tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.startswith("ack-secrets-provider: cannot start: no default region")
    assert "ALIBABA_CLOUD_ECS_METADATA_DISABLED" in err and "NODE_NAME is not set" in err
    assert "Traceback" not in err
    assert not (tmp_path / "alibabacloud.sock").exists()


def test_serve_discovers_the_region_and_says_where_from(tmp_path: Path,
                                                       emu: EmulatorHandle) -> None:
    emu.admin("POST", "metadata/set", {"region": "cn-shenzhen"})
    env_flags = [f"--endpoint-override=metadata={emu.http_url}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ack_secrets_provider.core.cli", "serve",
         f"--provider-volume={tmp_path}", "--healthz-port=0", "--metrics-port=0", *env_flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "ALIBABA_CLOUD_ECS_METADATA_DISABLED"},
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "alibabacloud.sock").exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the provider did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "default region cn-shenzhen, from the instance metadata service" in err


def test_a_node_answer_of_the_wrong_shape_is_a_clear_problem_not_a_crash(
        kube: FakeKubeApi) -> None:
    kube.nodes["node-1"] = ["not", "labels"]  # type: ignore[assignment]
    with pytest.raises(RegionUnknown, match="node node-1 has no topology.kubernetes.io/region"):
        discover_region(_settings(None, {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
                                         "NODE_NAME": "node-1"}, kube.url))
