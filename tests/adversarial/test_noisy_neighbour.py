"""Noisy neighbours: one tenant's failures never fail another tenant's mounts.

Tenant X mounts a secret that does not exist, in a loop, while KMS answers 20 % of all calls with
503 (the emulator's seeded fault injection). Tenant Y mounts a good secret. Both share the
endpoint's retry budget and outage gate. A "not found" is the service's considered answer: it
proves the endpoint is up, so X's mistakes must not drain the budget or open the gate. The gate's
clock stands still, so an opened gate would stay open: any leak shows as Y's failures.
"""

from __future__ import annotations

import time

import pytest
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.provider.static_ak import StaticAKCredentialsProvider
from installed import SERVICES

from ack_secrets_provider.backends.kms.backend import KmsBackend
from ack_secrets_provider.core.cloud.endpoints import Endpoint, EndpointOverrides
from ack_secrets_provider.core.emulator.testing import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    EmulatorHandle,
)
from ack_secrets_provider.core.errors import NotFound, ProviderError, Throttled
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins.backend import Backend, FetchContext, SecretValue
from ack_secrets_provider.core.plugins.credentials import Identity, IdentityKey
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.fetcher import Fetcher, FetchUnit
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

Y_MOUNTS = 100
X_PER_Y = 3
FAULTS = {"error_ratio": 0.2, "error_status": 503}


def _identity() -> Identity:
    provider = StaticAKCredentialsProvider(access_key_id=ACCESS_KEY_ID,
                                           access_key_secret=ACCESS_KEY_SECRET)
    return Identity(key=IdentityKey(mode="static-ak", access_key_id=ACCESS_KEY_ID),
                    credential=CredentialClient(provider=provider))


def _y_failure_rate(emulator: EmulatorHandle, *, with_x: bool) -> float:
    settings = ProviderSettings(
        endpoint_overrides=EndpointOverrides.parse([f"kms={emulator.http_url}"], SERVICES),
        retry=RetryPolicy(base_delay=0.0005, max_delay=0.001),  # the default budget and attempts
    )
    frozen = time.monotonic()
    fetcher = Fetcher(settings, metrics=ProviderMetrics(process_collectors=False),
                      clock=lambda: frozen)
    backend = KmsBackend(settings)
    identity = _identity()

    def fetch(name: str) -> None:
        spec = ObjectSpec(index=0, object_name=name, object_type="kms", file_name="f")
        ctx = FetchContext(identity, Deadline.after(10), backend.endpoint(spec, "cn-hangzhou"),
                           settings, region="cn-hangzhou")
        fetcher.fetch(FetchUnit(backend, (spec,), ctx))

    emulator.set_faults(seed=1234, **FAULTS)
    failures = 0
    try:
        for _ in range(Y_MOUNTS):
            for _ in range(X_PER_Y if with_x else 0):
                with pytest.raises(ProviderError) as x_error:
                    fetch("app/no-such-secret")
                assert isinstance(x_error.value, NotFound) or x_error.value.retryable
            try:
                fetch("app/db-password")
            except ProviderError:
                failures += 1
    finally:
        emulator.clear_faults()
        backend.close()
    return failures / Y_MOUNTS


def test_a_tenant_mounting_a_missing_secret_does_not_fail_the_others(
    emulator: EmulatorHandle,
) -> None:
    alone = _y_failure_rate(emulator, with_x=False)
    with_x = _y_failure_rate(emulator, with_x=True)
    assert abs(with_x - alone) <= 0.01, (alone, with_x)


class _QuotaBackend(Backend):
    """One endpoint shared by two tenants; tenant X's account is over its quota, so every call
    made with X's identity is throttled (KMS throttles per account), Y's are answered."""

    object_type = "quota"
    service = "quota"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.calls = {"x": 0, "y": 0}

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        return Endpoint(service="quota", host="quota.local", address="quota.local")

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        tenant = ctx.identity.key.access_key_id or ""
        self.calls[tenant] += 1
        if tenant == "x":
            raise Throttled("objects (quota 's'): throttled: the account is over its quota")
        return SecretValue(b"value", "v1")


def test_a_throttled_tenant_does_not_close_the_endpoint_for_the_others() -> None:
    """Throttling is the service's considered answer about one caller's quota: the endpoint is
    up. X's throttled retries spend the shared retry budget (retries must not multiply the load
    on a throttling service), but X being throttled with the budget empty must not make the
    endpoint look down: Y's first attempts keep going out and are answered. Before, the outage
    gate closed on X's throttling and refused Y's mounts ('not called: endpoint ... kept
    failing') until a probe succeeded; the gate's clock stands still here, so it stayed shut."""
    settings = ProviderSettings(retry=RetryPolicy(base_delay=0.0005, max_delay=0.001),
                                cache_ttl=0)
    frozen = time.monotonic()
    fetcher = Fetcher(settings, metrics=ProviderMetrics(process_collectors=False),
                      clock=lambda: frozen)
    backend = _QuotaBackend(settings)

    def fetch(tenant: str) -> None:
        spec = ObjectSpec(index=0, object_name="s", object_type="quota", file_name="f")
        identity = Identity(IdentityKey(mode="static-ak", access_key_id=tenant), credential=None)
        ctx = FetchContext(identity, Deadline.after(10), backend.endpoint(spec, None), settings)
        fetcher.fetch(FetchUnit(backend, (spec,), ctx))

    for _ in range(Y_MOUNTS):
        for _ in range(X_PER_Y):
            with pytest.raises(Throttled):
                fetch("x")
        fetch("y")  # never refused
    assert backend.calls["y"] == Y_MOUNTS
    # X's retries are what the shared budget allows (its tokens, plus the refunds of Y's
    # successes), not up to 8 attempts per mount
    retry = settings.retry
    assert backend.calls["x"] <= (Y_MOUNTS * X_PER_Y + retry.budget_tokens
                                  + retry.budget_refund * Y_MOUNTS)
