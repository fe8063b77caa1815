"""The "auth world" the credential end-to-end tests run in.

tests/test_auth_e2e.py drives it through the provider's real unix socket and through
`CredentialHost.resolve` and the KMS SDK. Both depths need the same account:
roles with OIDC trust, AccessKeys, a node RAM role behind instance metadata (IMDSv2 required),
and KMS secrets that each identity may or may not read. One seed serves both, so a policy change
cannot make one depth pass while the other tests a different world.

The seed's allow-lists are disjoint on purpose: every identity may read exactly the secrets of
its own prefix (and `shared/db` is readable by role A and the nodePublishSecretRef user), so a
value that arrives proves which identity fetched it.

A test module takes the fixtures by binding them as its own names (tests/ is on pytest's
`pythonpath`; an assignment, unlike an import, does not read as unused to ruff):

    import auth_world
    env, fresh = auth_world.env, auth_world.fresh

`env` is module-scoped (one emulator with TLS, one fake Kubernetes API per module); `fresh` is
autouse and gives every test a new credential host (an empty identity cache and Kubernetes read
cache), the real time on `env.clock`, zero counters and the seeded ServiceAccounts and metadata
settings. A provider started by a test takes `env.clock` (`running_provider(..., clock=...)`) so
the test can move credential lifetimes forward.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from installed import SERVICES

from ack_secrets_provider.auth import kube
from ack_secrets_provider.auth.emulator import FakeKubeApi, MetadataEmulator, StsEmulator
from ack_secrets_provider.backends.kms.emulator import KmsEmulator
from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator import Emulator
from ack_secrets_provider.core.plugins.credentials import CredentialHost, IdentityCache
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

ACCOUNT = "1234567890"
OIDC = f"acs:ram::{ACCOUNT}:oidc-provider/ack-rrsa-c1"
ROLE_A = f"acs:ram::{ACCOUNT}:role/app-a"
ROLE_B = f"acs:ram::{ACCOUNT}:role/app-b"
ROLE_PROVIDER = f"acs:ram::{ACCOUNT}:role/provider"
ROLE_CROSS = "acs:ram::9876543210:role/cross"
NODE_ROLE = "node-role"
NODE_ROLE_ARN = f"acs:ram::{ACCOUNT}:role/{NODE_ROLE}"
USER_KEY, USER_SECRET = "LTAIe2eUser000001", "e2e-user-secret-value-1"
NPS_KEY, NPS_SECRET = "LTAIe2eNps0000001", "e2e-nps-secret-value-1"
PROVIDER_SA = ("kube-system", "csi-secrets-store-provider-alibabacloud")
KUBE_API_TOKEN = "kube-api-token"
SECRETS = {"app-a/db": "pw-a", "app-b/db": "pw-b", "shared/db": "pw-shared",
           "provider/db": "pw-provider", "cross/db": "pw-cross", "node/db": "pw-node",
           "user/db": "pw-user"}

SEED: Mapping[str, Any] = MappingProxyType({
    "access_keys": [
        {"id": USER_KEY, "secret": USER_SECRET, "principal": "ci-user"},
        {"id": NPS_KEY, "secret": NPS_SECRET, "principal": "nps-user"},
    ],
    # each identity may read only its own prefix (shared/*: pod role A and the nps user)
    "policies": [
        {"principal": ROLE_A, "allow": {"kms": ["app-a/*", "shared/*"]}},
        {"principal": ROLE_B, "allow": {"kms": ["app-b/*"]}},
        {"principal": ROLE_PROVIDER, "allow": {"kms": ["provider/*"]}},
        {"principal": ROLE_CROSS, "allow": {"kms": ["cross/*"]}},
        {"principal": "ci-user", "allow": {"kms": ["user/*"]}},
        {"principal": "nps-user", "allow": {"kms": ["shared/*"]}},
        {"principal": NODE_ROLE_ARN, "allow": {"kms": ["node/*"]}},
    ],
    "kms": {"secrets": [{"name": n, "versions": [{"version_id": "v1", "data": v}]}
                        for n, v in SECRETS.items()]},
    "sts": {
        "oidc_providers": [{"arn": OIDC, "issuer": "https://oidc.test/c1"}],
        "roles": [
            {"arn": ROLE_A, "oidc_subjects": ["system:serviceaccount:team-a:app-a"]},
            {"arn": ROLE_B, "oidc_subjects": ["system:serviceaccount:team-b:*"]},
            {"arn": ROLE_PROVIDER, "trusted_principals": ["ci-user"],
             "oidc_subjects": ["system:serviceaccount:kube-system:csi-secrets-store-provider-*"]},
            # only the provider role, not the AccessKey user: a cross-account hop must start
            # from the assumed role
            {"arn": ROLE_CROSS, "trusted_principals": [ROLE_PROVIDER]},
        ],
    },
    # the hardened setting: IMDSv1 is refused unless a test switches it on
    "metadata": {"role": NODE_ROLE, "role_arn": NODE_ROLE_ARN, "require_v2": True},
})
#: what `fresh` restores before each test (the seed plus the emulator's defaults a test may move)
METADATA_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {**SEED["metadata"], "v2_enabled": True, "credential_duration": 3600})

# Provider-level configuration pieces, to combine with `{**A, **B}` (ECS metadata is on unless
# NO_ECS disables it). Plain dicts, since some go into JSON: never change them in a test.
AK_ENV = {"ACCESS_KEY_ID": USER_KEY, "SECRET_ACCESS_KEY": USER_SECRET}
ROLE_ENV = {"ALICLOUD_ROLE_ARN": ROLE_PROVIDER}
OIDC_ENV = {"ALICLOUD_OIDC_PROVIDER_ARN": OIDC}
NO_ECS = {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
#: a nodePublishSecretRef's data, keys in mixed case (the provider accepts any case)
NPS = {"Access_Key": NPS_KEY, "ACCESS_SECRET": NPS_SECRET}


@dataclass
class AuthWorld:
    """A running emulator (KMS, STS over TLS, metadata), a fake Kubernetes API and the provider
    settings that point at them."""

    emulator: Emulator
    kube: FakeKubeApi
    base: ProviderSettings
    token_file: Path
    #: the clock credential lifetimes are measured on (the real time plus what a test advanced)
    clock: FakeClock = field(default_factory=lambda: FakeClock())
    #: the credential plugins as the provider loads them (built-ins only); new for every test
    host: CredentialHost = field(init=False)

    def __post_init__(self) -> None:
        self.host = self.new_host()

    def new_host(self) -> CredentialHost:
        host = CredentialHost(self.base, identities=IdentityCache(clock=self.clock))
        host.load(autoload_third_party=False)
        return host

    @property
    def sts(self) -> StsEmulator:
        part = self.emulator.parts["sts"]
        assert isinstance(part, StsEmulator)
        return part

    @property
    def metadata(self) -> MetadataEmulator:
        part = self.emulator.parts["metadata"]
        assert isinstance(part, MetadataEmulator)
        return part

    def settings(self, environ: Mapping[str, str] = MappingProxyType({}), **changes: Any
                 ) -> ProviderSettings:
        """The base settings with exactly `environ` as the provider's environment."""
        return replace(self.base, environ=MappingProxyType(dict(environ)), **changes)

    def token(self, namespace: str, service_account: str, **kwargs: Any) -> str:
        """A ServiceAccount token signed by the cluster's OIDC issuer (kwargs: mint_token's)."""
        return self.sts.mint_token(
            OIDC, f"system:serviceaccount:{namespace}:{service_account}", **kwargs)

    def write_provider_token(self, **kwargs: Any) -> None:
        """Put the provider's own projected token where provider RRSA reads it."""
        self.token_file.write_text(self.token(*PROVIDER_SA, **kwargs))

    def counters(self) -> dict[str, Any]:
        return dict(self.emulator.counters.snapshot())

    def api(self, name: str) -> int:
        return int(self.counters()["by_api"].get(name, 0))


@contextmanager
def running_world(scratch: Path) -> Iterator[AuthWorld]:
    """Start the world with its files under `scratch`; stop both servers on exit."""
    emulator = Emulator(copy.deepcopy(dict(SEED)),
                        parts=[KmsEmulator, StsEmulator, MetadataEmulator])
    kube_api = FakeKubeApi(token=KUBE_API_TOKEN).start()
    try:
        emulator.start("127.0.0.1:0", tls_listen="127.0.0.1:0", tls_dir=scratch / "ca")
        try:
            assert emulator.tls is not None and emulator.https_url and emulator.http_url
            kube_token = scratch / "kube-token"
            kube_token.write_text(KUBE_API_TOKEN + "\n")
            base = ProviderSettings(
                region="cn-hangzhou",
                endpoint_overrides=EndpointOverrides.parse([
                    f"kms={emulator.http_url}", f"sts={emulator.https_url}",
                    f"metadata={emulator.http_url}",
                ], SERVICES),
                sts_ca_file=str(emulator.tls.root),
                kube_api_url=kube_api.url, kube_token_file=str(kube_token), kube_ca_file=None,
                rrsa_token_file=str(scratch / "rrsa-token"),
                retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
                cache_ttl=0.0,  # no value cache: every mount reaches KMS with its identity
            )
            yield AuthWorld(emulator, kube_api, base, Path(base.rrsa_token_file))
        finally:
            emulator.stop()
    finally:
        kube_api.stop()


def reset(world: AuthWorld) -> None:
    """No identity, annotation, counter, token file, clock offset or metadata setting survives a
    test."""
    world.host = world.new_host()
    world.clock.offset = 0.0
    world.emulator.counters.reset()
    world.metadata.configure(METADATA_DEFAULTS)
    world.token_file.unlink(missing_ok=True)
    world.kube.service_accounts.clear()
    world.kube.add("team-a", "app-a", {kube.ROLE_ANNOTATION: ROLE_A})
    world.kube.add("team-b", "app-b", {kube.ROLE_ANNOTATION: ROLE_B})
    world.kube.add("team-c", "plain", {})
    world.kube.calls = 0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthWorld]:
    with running_world(tmp_path_factory.mktemp("auth-world")) as world:
        yield world


@pytest.fixture(autouse=True)
def fresh(env: AuthWorld) -> Iterator[None]:
    reset(env)
    yield


class FakeClock:
    """Epoch seconds that a test moves forward to reach a credential's refresh time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
