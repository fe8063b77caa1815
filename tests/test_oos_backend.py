"""OosBackend: validation and endpoints (pure), then single and batched fetches through the real
OOS SDK against the loopback emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.provider.static_ak import StaticAKCredentialsProvider
from installed import SERVICES

from ack_secrets_provider.backends.oos.backend import MAX_NAMES_PER_CALL, OosBackend
from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator.testing import EmulatorHandle, running_emulator
from ack_secrets_provider.core.errors import InvalidArgument, NotFound, PermissionDenied
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.plugins.backend import FetchContext
from ack_secrets_provider.core.plugins.credentials import Identity, IdentityKey
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings

AK, SECRET = "LTAI5tOosTestUser01", "oos-test-secret-value"
SEED = {
    "access_keys": [
        {"id": AK, "secret": SECRET, "principal": "app-user"},
        {"id": "LTAI5tOosLimited001", "secret": "limited", "principal": "limited"},
    ],
    "policies": [{"principal": "limited", "allow": {"oos": ["public-*"]}}],
    "oos": {"parameters": [
        {"name": "api-token", "values": ["token-v1", "token-v2"]},
        *({"name": f"p{i}", "value": f"value-{i}"} for i in range(12)),
    ]},
}


def spec(name: str = "api-token", index: int = 0, *, oos_endpoint: str | None = None,
         **fields: object) -> ObjectSpec:
    own = {"oosEndpoint": oos_endpoint} if oos_endpoint is not None else {}
    return ObjectSpec(index=index, object_name=name, object_type="oos", file_name=f"f{index}",
                      fields=own, **fields)  # type: ignore[arg-type]


def identity(ak: str = AK, secret: str = SECRET) -> Identity:
    provider = StaticAKCredentialsProvider(access_key_id=ak, access_key_secret=secret)
    return Identity(key=IdentityKey(mode="static-ak", access_key_id=ak),
                    credential=CredentialClient(provider=provider))


IDENTITY = identity()


def test_validate() -> None:
    backend = OosBackend(ProviderSettings())
    with pytest.raises(InvalidArgument, match="objectVersionLabel"):
        backend.validate(spec(object_version_label="ACSCurrent"))
    for bad in ("latest", "1.5", "0", "-2"):
        with pytest.raises(InvalidArgument, match="ParameterVersion"):
            backend.validate(spec(object_version=bad))
    with pytest.raises(InvalidArgument) as placeholder:
        backend.validate(spec(oos_endpoint="oos-vpc.{region}.aliyuncs.com"))
    assert "oos-vpc.cn-hangzhou.aliyuncs.com" in placeholder.value.message
    for nothing_left in ("https://", "/"):  # CHANGELOG: the default host, not ''
        with pytest.raises(InvalidArgument) as bare:
            backend.validate(spec(oos_endpoint=nothing_left))
        assert bare.value.message.endswith("; write 'oos-vpc.cn-hangzhou.aliyuncs.com'")
    with pytest.raises(InvalidArgument, match="ARN of the kms service"):
        backend.validate(spec("acs:kms:cn-hangzhou:123:secret/s"))
    backend.validate(spec("acs:oos:cn-hangzhou:123:secretparameter/api-token",
                          object_version="2", oos_endpoint="oos.cn-hangzhou.aliyuncs.com"))


def test_an_object_version_of_other_digits_is_refused_not_an_internal_error() -> None:
    """str.isdigit() is true for '²', which int() refuses: the ValueError escaped the parser and
    the Mount was an internal error (lint crashed). Only ASCII digits are a ParameterVersion."""
    backend = OosBackend(ProviderSettings())
    for other in ("²", "٣"):
        with pytest.raises(InvalidArgument) as info:
            backend.validate(spec(object_version=other))
        assert info.value.message == (
            f"object #1 (oos 'api-token'): field objectVersion {other!r} must be an OOS "
            "ParameterVersion, a whole number such as \"3\"")


def test_endpoints() -> None:
    backend = OosBackend(ProviderSettings())
    assert backend.endpoint(spec(), "cn-beijing").host == "oos-vpc.cn-beijing.aliyuncs.com"
    arn = spec("acs:oos:cn-shenzhen:123:secretparameter/api-token")
    assert backend.endpoint(arn, "cn-beijing").host == "oos-vpc.cn-shenzhen.aliyuncs.com"
    assert backend.endpoint(spec(oos_endpoint="oos.cn-beijing.aliyuncs.com"), None).host == \
        "oos.cn-beijing.aliyuncs.com"
    with pytest.raises(InvalidArgument, match="region"):
        backend.endpoint(spec(), None)
    assert OosBackend.max_batch == MAX_NAMES_PER_CALL == 10


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator(SEED) as handle:
        yield handle


def backend_for(emu: EmulatorHandle) -> OosBackend:
    overrides = EndpointOverrides.parse([f"oos={emu.http_url}"], SERVICES)
    return OosBackend(ProviderSettings(endpoint_overrides=overrides))


def context(backend: OosBackend, s: ObjectSpec, who: Identity = IDENTITY) -> FetchContext:
    backend.validate(s)
    return FetchContext(who, Deadline.after(10), backend.endpoint(s, "cn-hangzhou"),
                        backend.settings, region="cn-hangzhou")


def test_single_fetch_version_and_pin(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    value = backend.fetch(spec(), context(backend, spec()))
    assert (value.data, value.version) == (b"token-v2", "2")
    pinned = spec(object_version="1")
    value = backend.fetch(pinned, context(backend, pinned))
    assert (value.data, value.version) == (b"token-v1", "1")
    arn = spec("acs:oos:cn-hangzhou:123:secretparameter/api-token")
    assert backend.fetch(arn, context(backend, arn)).version == "2"
    assert emu.counters()["by_api"]["oos.GetSecretParameter"] == 3


def test_rotation_changes_the_version(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    new = int(emu.rotate("oos", "p11", "value-11-rotated"))
    value = backend.fetch(spec("p11"), context(backend, spec("p11")))
    assert (value.data, value.version) == (b"value-11-rotated", str(new))


def test_errors(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    with pytest.raises(NotFound, match="missing-param"):
        backend.fetch(spec("missing-param"), context(backend, spec("missing-param")))
    limited = identity("LTAI5tOosLimited001", "limited")
    with pytest.raises(PermissionDenied) as denied:
        backend.fetch(spec(), context(backend, spec(), limited))
    assert "oos:GetSecretParameter" in denied.value.message


def test_a_batch_of_the_api_maximum_is_one_call(emu: EmulatorHandle) -> None:
    """The core hands fetch_batch 2-10 unpinned objects (pinned ones and the split into
    calls of 10: tests/test_e2e_backends.py)."""
    backend = backend_for(emu)
    specs = [spec(f"p{i}", index=i) for i in range(10)]
    values = backend.fetch_batch(specs, context(backend, specs[0]))
    assert [v.data for v in values] == [f"value-{i}".encode() for i in range(10)]
    assert all(v.version == "1" for v in values)
    assert emu.counters()["by_api"] == {"oos.GetSecretParameters": 1}


def test_batch_reports_missing_names(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    specs = [spec("p1", index=0), spec("nope-a", index=1), spec("p2", index=2)]
    with pytest.raises(NotFound) as info:
        backend.fetch_batch(specs, context(backend, specs[0]))
    assert "parameter(s) 'nope-a' not found" in info.value.message
