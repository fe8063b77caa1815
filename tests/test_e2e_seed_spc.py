"""The product documentation's SecretProviderClass (tests/data/spc-kms-endpoints.yaml): one
secret read through the four kinds of KMS gateway, over the real socket and the real SDK.

Every endpoint host is redirected by a per-host endpoint override to its own emulator holding a
different value, so the files prove which endpoint each object really used: the public endpoint,
the VPC endpoint (no kmsEndpoint: built from the region), the dedicated instance gateway over TLS
(trusting only the intermediate of a root → intermediate → server chain) and a second region.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import grpc
import pytest
import yaml
from installed import SERVICES

from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator.testing import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    EmulatorHandle,
    default_seed,
    running_emulator,
)
from ack_secrets_provider.core.server.driver_client import (
    PodRef,
    driver_attributes,
    files_of,
    running_provider,
    versions_of,
)
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

SPC_FILE = Path(__file__).resolve().parent / "data" / "spc-kms-endpoints.yaml"
INSTANCE = "kst-hzz-test"
HANGZHOU, LONDON = "cn-hangzhou", "eu-west-1"
HOSTS = {
    "public": f"kms.{HANGZHOU}.aliyuncs.com",
    "vpc": f"kms-vpc.{HANGZHOU}.aliyuncs.com",
    "cryptoservice": f"{INSTANCE}.cryptoservice.kms.aliyuncs.com",
    "london": f"kms.{LONDON}.aliyuncs.com",
}


def load_spc() -> tuple[str, dict[str, str]]:
    document = yaml.safe_load(SPC_FILE.read_text())
    return document["metadata"]["name"], {
        key: str(value) for key, value in document["spec"]["parameters"].items()
    }


def filled(parameters: dict[str, str]) -> dict[str, str]:
    """The placeholders replaced as a user would: each object's region, the instance id."""
    objects = yaml.safe_load(parameters["objects"])
    for item in objects:
        region = LONDON if item["objectAlias"].startswith("london") else HANGZHOU
        if "kmsEndpoint" in item:
            item["kmsEndpoint"] = (item["kmsEndpoint"].replace("{region}", region)
                                   .replace("{kms-instance-id}", INSTANCE))
    assert "{" not in yaml.safe_dump(objects)
    return {**parameters, "objects": yaml.safe_dump(objects, sort_keys=False)}


def _seed(secret: str, value: str) -> dict[str, Any]:
    seed = default_seed()
    seed["kms"] = {"secrets": [{"name": secret,
                                "versions": [{"version_id": f"{value}-v1", "data": value}]}]}
    seed["oos"] = {"parameters": []}
    return seed


@dataclass
class Gateways:
    emulators: dict[str, EmulatorHandle]
    settings: ProviderSettings

    def totals(self) -> dict[str, int]:
        return {name: int(emu.counters()["total"]) for name, emu in self.emulators.items()}


@pytest.fixture()
def gateways(tmp_path: Path) -> Iterator[Gateways]:
    """One emulator per endpoint kind, each holding its own value of the secret."""
    with ExitStack() as stack:
        emulators = {
            "public": stack.enter_context(running_emulator(_seed("test-hangzhou", "via-public"))),
            "vpc": stack.enter_context(running_emulator(_seed("test-hangzhou", "via-vpc"))),
            "cryptoservice": stack.enter_context(running_emulator(
                _seed("test-hangzhou", "via-cryptoservice"), tls=True, tls_dir=tmp_path / "ca")),
            "london": stack.enter_context(running_emulator(_seed("test-london", "via-london"))),
        }
        gateway = emulators["cryptoservice"]
        assert gateway.https_url and gateway.intermediate_ca
        overrides = [f"{HOSTS[name]}={emu.http_url}" for name, emu in emulators.items()
                     if name != "cryptoservice"]
        overrides.append(f"{HOSTS['cryptoservice']}={gateway.https_url}")
        settings = ProviderSettings(
            region=HANGZHOU,  # the provider's --region: the VPC object names no endpoint
            endpoint_overrides=EndpointOverrides.parse(overrides, SERVICES),
            # only the intermediate, not the root (the KMS backend's --kms-ca-file)
            backend_options={"kms_ca_file": str(gateway.intermediate_ca)},
            environ=MappingProxyType({"ACCESS_KEY_ID": ACCESS_KEY_ID,
                                      "SECRET_ACCESS_KEY": ACCESS_KEY_SECRET}),
            retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
            cache_ttl=0.0,
        )
        yield Gateways(emulators, settings)


def test_filled_in_spc_mounts_the_four_files_each_from_its_endpoint(
    gateways: Gateways, tmp_path: Path
) -> None:
    name, parameters = load_spc()
    with running_provider(gateways.settings, tmp_path) as provider:
        response = provider.mount(driver_attributes(filled(parameters), spc_name=name,
                                                    pod=PodRef(name="test-0")))
    assert files_of(response) == {
        "hangzhou-public": b"via-public",
        "hangzhou-vpc": b"via-vpc",
        "hangzhou-cryptoservice": b"via-cryptoservice",
        "london-public": b"via-london",
    }
    assert versions_of(response) == {
        "hangzhou-public": "via-public-v1",
        "hangzhou-vpc": "via-vpc-v1",
        "hangzhou-cryptoservice": "via-cryptoservice-v1",
        "london-public": "via-london-v1",
    }
    assert gateways.totals() == {"public": 1, "vpc": 1, "cryptoservice": 1, "london": 1}


def test_spc_with_placeholders_left_in_is_refused_before_any_call(
    gateways: Gateways, tmp_path: Path
) -> None:
    name, parameters = load_spc()
    assert "{region}" in parameters["objects"]
    with running_provider(gateways.settings, tmp_path) as provider, \
            pytest.raises(grpc.RpcError) as info:
        provider.mount(driver_attributes(parameters, spc_name=name))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details()
    assert "{region}" in details and "placeholder" in details
    assert "kmsEndpoint" in details and "'test-hangzhou'" in details
    assert "'kms.cn-hangzhou.aliyuncs.com'" in details  # the corrected form
    assert gateways.totals() == {"public": 0, "vpc": 0, "cryptoservice": 0, "london": 0}


def test_instance_id_placeholder_shows_the_gateway_form(
    gateways: Gateways, tmp_path: Path
) -> None:
    """Regions filled in, the instance id forgotten: the message shows a gateway host."""
    name, parameters = load_spc()
    parameters["objects"] = parameters["objects"].replace("{region}", HANGZHOU)
    with running_provider(gateways.settings, tmp_path) as provider, \
            pytest.raises(grpc.RpcError) as info:
        provider.mount(driver_attributes(parameters, spc_name=name))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details()
    assert "{kms-instance-id}" in details and "object #3" in details
    assert ".cryptoservice.kms.aliyuncs.com'" in details and "'kst-" in details
    assert gateways.totals() == {"public": 0, "vpc": 0, "cryptoservice": 0, "london": 0}
