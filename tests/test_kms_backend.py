"""KmsBackend: validation, endpoints and ARNs (pure), then fetch through the real SDK against the
loopback emulator (which checks ACS3 signatures)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.provider.static_ak import StaticAKCredentialsProvider
from installed import SERVICES

from ack_secrets_provider.backends.kms.backend import KmsBackend
from ack_secrets_provider.backends.kms.emulator import put_secret_version
from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator.testing import EmulatorHandle, running_emulator
from ack_secrets_provider.core.errors import (
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Throttled,
    Unauthenticated,
    Unavailable,
)
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.plugins.backend import FetchContext
from ack_secrets_provider.core.plugins.credentials import Identity, IdentityKey
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.retry import RetryBudget, call_with_retries
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

AK, SECRET = "LTAI5tKmsTestUser01", "kms-test-secret-value"
GATEWAY = "kst-hzz62ee2a4f7ab1example.cryptoservice.kms.aliyuncs.com"
BINARY = bytes(range(256))
SEED = {
    "access_keys": [
        {"id": AK, "secret": SECRET, "principal": "app-user"},
        {"id": "LTAI5tLimitedUser01", "secret": "limited-secret", "principal": "limited"},
    ],
    "policies": [{"principal": "limited", "allow": {"kms": ["public-*"]}}],
    "kms": {"secrets": [
        {"name": "db-password", "versions": [
            {"version_id": "v1", "data": "old-pass", "stages": ["ACSPrevious"]},
            {"version_id": "v2", "data": "new-pass", "stages": ["ACSCurrent"]},
        ]},
        {"name": "rotating", "versions": [{"version_id": "r1", "data": "first"}]},
        {"name": "tls-key", "data_type": "binary",
         "data_base64": base64.b64encode(BINARY).decode()},
    ]},
}


def spec(name: str = "db-password", *, kms_endpoint: str | None = None,
         **fields: object) -> ObjectSpec:
    own = {"kmsEndpoint": kms_endpoint} if kms_endpoint is not None else {}
    return ObjectSpec(index=0, object_name=name, object_type="kms", file_name="f",
                      fields=own, **fields)  # type: ignore[arg-type]


def identity(ak: str = AK, secret: str = SECRET) -> Identity:
    provider = StaticAKCredentialsProvider(access_key_id=ak, access_key_secret=secret)
    return Identity(key=IdentityKey(mode="static-ak", access_key_id=ak),
                    credential=CredentialClient(provider=provider))


IDENTITY = identity()


# -- pure: validation, endpoints, ARNs --------------------------------------------------------

@pytest.mark.parametrize(("endpoint", "fix"), [
    ("kms-vpc.{region}.aliyuncs.com", "kms-vpc.cn-hangzhou.aliyuncs.com"),
    ("{kms-instance-id}.cryptoservice.kms.aliyuncs.com", "kst-"),
    ("https://kms.cn-beijing.aliyuncs.com", "kms.cn-beijing.aliyuncs.com"),
])
def test_validate_refuses_placeholders_and_schemes(endpoint: str, fix: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        KmsBackend(ProviderSettings()).validate(spec(kms_endpoint=endpoint))
    assert "kmsEndpoint" in info.value.message and fix in info.value.message
    assert "object #1" in info.value.message


def test_validate_refuses_bad_arns() -> None:
    backend = KmsBackend(ProviderSettings())
    with pytest.raises(InvalidArgument, match="ARN of the oos service"):
        backend.validate(spec("acs:oos:cn-hangzhou:123:secretparameter/p"))
    with pytest.raises(InvalidArgument, match="not a KMS secret"):
        backend.validate(spec("acs:kms:cn-hangzhou:123:key/k"))
    with pytest.raises(InvalidArgument, match="objectName"):
        backend.validate(spec("acs:kms:cn-hangzhou"))
    backend.validate(spec("acs:kms:cn-hangzhou:123:secret/db"))
    backend.validate(spec(kms_endpoint=GATEWAY, object_version="v1",
                          object_version_label="ACSCurrent"))


def test_endpoints_per_object_and_arn_region_wins() -> None:
    backend = KmsBackend(ProviderSettings())
    assert backend.endpoint(spec(), "cn-hangzhou").host == "kms-vpc.cn-hangzhou.aliyuncs.com"
    arn = spec("acs:kms:cn-shanghai:123456:secret/db")
    assert backend.endpoint(arn, "cn-hangzhou").host == "kms-vpc.cn-shanghai.aliyuncs.com"
    explicit = backend.endpoint(spec(kms_endpoint=GATEWAY), "cn-hangzhou")
    assert (explicit.host, explicit.address, explicit.protocol) == (GATEWAY, GATEWAY, "https")
    with pytest.raises(InvalidArgument, match="region"):
        backend.endpoint(spec(), None)
    overridden = KmsBackend(ProviderSettings(
        endpoint_overrides=EndpointOverrides.parse(["kms=http://127.0.0.1:9"], SERVICES)
    )).endpoint(spec(), "cn-hangzhou")
    assert overridden.address == "127.0.0.1:9" and overridden.protocol == "http"


# -- against the emulator ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator(SEED, tls=True) as handle:
        yield handle


def backend_for(emu: EmulatorHandle, **settings: object) -> KmsBackend:
    overrides = EndpointOverrides.parse([f"kms={emu.http_url}"], SERVICES)
    return KmsBackend(ProviderSettings(endpoint_overrides=overrides, **settings))  # type: ignore


def fetch(backend: KmsBackend, s: ObjectSpec, who: Identity | None = None,
          seconds: float = 10.0, region: str = "cn-hangzhou") -> tuple[bytes, str]:
    backend.validate(s)
    endpoint = backend.endpoint(s, region)
    ctx = FetchContext(who or IDENTITY, Deadline.after(seconds), endpoint, backend.settings,
                       region=region)
    value = backend.fetch(s, ctx)
    return value.data, value.version


def test_text_binary_version_and_stage(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    assert fetch(backend, spec()) == (b"new-pass", "v2")
    assert fetch(backend, spec("tls-key")) == (BINARY, "v1")
    assert fetch(backend, spec(object_version="v1")) == (b"old-pass", "v1")
    assert fetch(backend, spec(object_version_label="ACSPrevious")) == (b"old-pass", "v1")
    assert fetch(backend, spec("acs:kms:cn-hangzhou:1234567890:secret/db-password"))[1] == "v2"
    assert emu.counters()["by_api"]["kms.GetSecretValue"] == 5


def test_one_client_per_endpoint_and_identity(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    fetch(backend, spec())
    fetch(backend, spec("tls-key"))
    assert len(backend._clients) == 1
    with pytest.raises(PermissionDenied):
        fetch(backend, spec(), who=identity("LTAI5tLimitedUser01", "limited-secret"))
    assert len(backend._clients) == 2
    assert emu.counters()["by_api"]["kms.GetSecretValue"] == 3


def test_new_credential_for_the_same_key_is_not_served_a_stale_client(
    emu: EmulatorHandle,
) -> None:
    """Same AccessKey id, new (wrong) secret: the cached client must not keep signing."""
    backend = backend_for(emu)
    fetch(backend, spec())
    with pytest.raises(Unauthenticated) as bad:
        fetch(backend, spec(), who=identity(AK, "wrong-secret"))
    assert "wrong-secret" not in bad.value.message and SECRET not in bad.value.message
    assert fetch(backend, spec())[0] == b"new-pass"


def test_rotation_is_visible(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    assert fetch(backend, spec("rotating")) == (b"first", "r1")
    new_version = put_secret_version(emu, "rotating", "rotated")
    assert new_version != "r1"
    assert fetch(backend, spec("rotating")) == (b"rotated", new_version)
    assert fetch(backend, spec("rotating", object_version_label="ACSPrevious")) == (b"first", "r1")


def test_errors(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    with pytest.raises(NotFound) as missing:
        fetch(backend, spec("no-such-secret"))
    assert "no-such-secret" in missing.value.message
    assert "kms-vpc.cn-hangzhou" in missing.value.message
    with pytest.raises(NotFound):
        fetch(backend, spec(object_version="v99"))
    with pytest.raises(PermissionDenied) as denied:
        fetch(backend, spec(), who=identity("LTAI5tLimitedUser01", "limited-secret"))
    assert "kms:GetSecretValue" in denied.value.message
    with pytest.raises(Unauthenticated) as unknown:
        fetch(backend, spec(), who=identity("LTAI5tUnknownKey001", "x"))
    assert "LTAI5tUnknownKey001" not in unknown.value.message


def test_throttling_then_success_through_retries(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    emu.set_faults(service="kms", throttle_next=2, retry_after_ms=50)
    s = spec()
    endpoint = backend.endpoint(s, "cn-hangzhou")
    deadline = Deadline.after(10)
    ctx = FetchContext(IDENTITY, deadline, endpoint, backend.settings)
    value = call_with_retries(lambda: backend.fetch(s, ctx), deadline=deadline,
                              policy=RetryPolicy(base_delay=0.01), budget=RetryBudget(5, 0.2),
                              what=s.describe())
    assert value.data == b"new-pass"
    assert emu.counters()["by_api"]["kms.GetSecretValue"] == 3


def test_single_attempt_maps_throttling_and_5xx(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    emu.set_faults(service="kms", throttle_next=1, retry_after_ms=700)
    with pytest.raises(Throttled) as throttled:
        fetch(backend, spec())
    assert throttled.value.retry_after == pytest.approx(0.7)
    emu.set_faults(service="kms", error_next=1)
    with pytest.raises(Unavailable) as down:
        fetch(backend, spec())
    assert down.value.retryable
    emu.set_faults(service="kms", drop_next=1)
    with pytest.raises(Unavailable):
        fetch(backend, spec())
    assert emu.counters()["by_api"]["kms.GetSecretValue"] >= 2


def test_deadline_expires_during_retries(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    emu.set_faults(service="kms", outage_seconds=30)
    s = spec()
    endpoint = backend.endpoint(s, "cn-hangzhou")
    deadline = Deadline.after(0.6)
    ctx = FetchContext(IDENTITY, deadline, endpoint, backend.settings)
    # Unavailable with the upstream cause; DeadlineExceeded only if the deadline passes in the
    # instant between the retry loop's check and the backend's own check.
    #: (requested delay, time left on the deadline when the sleep began)
    slept: list[tuple[float, float]] = []

    def sleep(seconds: float) -> None:
        slept.append((seconds, deadline.remaining()))
        time.sleep(seconds)

    with pytest.raises((Unavailable, DeadlineExceeded)) as info:
        call_with_retries(lambda: backend.fetch(s, ctx), deadline=deadline,
                          policy=RetryPolicy(max_attempts=50, base_delay=0.05, max_delay=0.1),
                          budget=None, what=s.describe(), sleep=sleep)
    assert "deadline" in info.value.message and "db-password" in info.value.message
    assert slept and all(delay < left for delay, left in slept), slept  # never slept past it
    assert emu.counters()["by_api"]["kms.GetSecretValue"] >= 2


def test_timeout_follows_the_deadline(emu: EmulatorHandle) -> None:
    backend = backend_for(emu)
    emu.set_faults(service="kms", latency_ms=2000)
    with pytest.raises(Unavailable, match="timed out"):
        fetch(backend, spec(), seconds=0.3)


def test_dedicated_gateway_over_tls_with_only_the_intermediate(emu: EmulatorHandle) -> None:
    assert emu.https_url and emu.intermediate_ca
    overrides = EndpointOverrides.parse([f"{GATEWAY}={emu.https_url}"], SERVICES)
    backend = KmsBackend(ProviderSettings(
        endpoint_overrides=overrides, backend_options={"kms_ca_file": str(emu.intermediate_ca)}))
    assert fetch(backend, spec(kms_endpoint=GATEWAY)) == (b"new-pass", "v2")
