"""Every credential mode end to end through the provider's real unix socket.

The driver's Mount goes to the real provider; its credential plugins get the credential from the
emulator's STS (over TLS with the emulator's test CA) or instance metadata (IMDSv2), or use an
AccessKey; the real KMS SDK then signs GetSecretValue with it and the emulator verifies the
signature, the security token, the expiry and the principal's allow-list. The emulator's
per-principal counters show which identity really reached KMS. Pod RRSA reads the
ServiceAccount's role annotation from a fake Kubernetes API on loopback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import grpc
import pytest

from ack_secrets_provider.auth import _providers, kube
from ack_secrets_provider.auth.emulator import FakeKubeApi
from ack_secrets_provider.core.emulator.testing import EmulatorHandle, running_emulator
from ack_secrets_provider.core.endpoints import EndpointOverrides
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy
from ack_secrets_provider.core.spec import ATTR_SA_TOKENS
from ack_secrets_provider.core.testing import (
    PodRef,
    RunningProvider,
    driver_attributes,
    files_of,
    running_provider,
)

ACCOUNT = "1234567890"
OIDC = f"acs:ram::{ACCOUNT}:oidc-provider/ack-rrsa-c1"
ROLE_A = f"acs:ram::{ACCOUNT}:role/app-a"
ROLE_B = f"acs:ram::{ACCOUNT}:role/app-b"
ROLE_PROVIDER = f"acs:ram::{ACCOUNT}:role/provider"
ROLE_CROSS = "acs:ram::9876543210:role/cross"
NODE_ROLE_ARN = f"acs:ram::{ACCOUNT}:role/node-role"
USER_KEY, USER_SECRET = "LTAIe2eUser000001", "e2e-user-secret-value-1"
NPS_KEY, NPS_SECRET = "LTAIe2eNps0000001", "e2e-nps-secret-value-1"
PROVIDER_SA = ("kube-system", "csi-secrets-store-provider-alibabacloud")
SECRETS = {"app-a/db": "pw-a", "app-b/db": "pw-b", "shared/db": "pw-shared",
           "provider/db": "pw-provider", "cross/db": "pw-cross", "node/db": "pw-node",
           "user/db": "pw-user"}

SEED: dict[str, Any] = {
    "access_keys": [
        {"id": USER_KEY, "secret": USER_SECRET, "principal": "ci-user"},
        {"id": NPS_KEY, "secret": NPS_SECRET, "principal": "nps-user"},
    ],
    # each identity may read exactly one secret of its own (shared/db: pod role A and nps)
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
            {"arn": ROLE_CROSS, "trusted_principals": [ROLE_PROVIDER]},
        ],
    },
    "metadata": {"role": "node-role", "role_arn": NODE_ROLE_ARN, "require_v2": True},
}

#: every provider-level mode configured at once (ECS metadata is on unless disabled)
AK_ENV = {"ACCESS_KEY_ID": USER_KEY, "SECRET_ACCESS_KEY": USER_SECRET}
ROLE_ENV = {"ALICLOUD_ROLE_ARN": ROLE_PROVIDER}
OIDC_ENV = {"ALICLOUD_OIDC_PROVIDER_ARN": OIDC}
NO_ECS = {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
NPS = {"Access_Key": NPS_KEY, "ACCESS_SECRET": NPS_SECRET}  # keys in any case


@dataclass
class Env:
    emu: EmulatorHandle
    kube_api: FakeKubeApi
    base: ProviderSettings
    token_file: Path

    def settings(self, environ: Mapping[str, str], **changes: Any) -> ProviderSettings:
        return replace(self.base, environ=MappingProxyType(dict(environ)), **changes)

    def token(self, namespace: str, service_account: str) -> str:
        answer = self.emu.admin("POST", "sts/mint_token", {
            "provider": OIDC, "subject": f"system:serviceaccount:{namespace}:{service_account}",
        })
        return str(answer["token"])

    def write_provider_token(self) -> None:
        self.token_file.write_text(self.token(*PROVIDER_SA))

    def counters(self) -> dict[str, Any]:
        return self.emu.counters()

    def api(self, name: str) -> int:
        return int(self.counters()["by_api"].get(name, 0))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    scratch = tmp_path_factory.mktemp("e2e-auth")
    kube_api = FakeKubeApi(token="kube-api-token").start()
    try:
        with running_emulator(SEED, tls=True, tls_dir=scratch / "ca") as emu:
            assert emu.https_url and emu.root_ca
            kube_token = scratch / "kube-token"
            kube_token.write_text("kube-api-token\n")
            base = ProviderSettings(
                region="cn-hangzhou",
                endpoint_overrides=EndpointOverrides.parse([
                    f"kms={emu.http_url}", f"sts={emu.https_url}",
                    f"metadata={emu.http_url}",
                ]),
                sts_ca_file=str(emu.root_ca),
                kube_api_url=kube_api.url, kube_token_file=str(kube_token), kube_ca_file=None,
                rrsa_token_file=str(scratch / "rrsa-token"),
                retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
                cache_ttl=0.0,  # no value cache: every mount reaches KMS with its identity
            )
            yield Env(emu, kube_api, base, Path(base.rrsa_token_file))
    finally:
        kube_api.stop()


@pytest.fixture(autouse=True)
def fresh(env: Env) -> Iterator[None]:
    """No identity, annotation or counter survives a test (the identity cache is global)."""
    _providers.CACHE.clear()
    kube.clear_readers()
    env.emu.reset_counters()
    env.token_file.unlink(missing_ok=True)
    env.kube_api.service_accounts.clear()
    env.kube_api.add("team-a", "app-a", {kube.ROLE_ANNOTATION: ROLE_A})
    env.kube_api.add("team-b", "app-b", {kube.ROLE_ANNOTATION: ROLE_B})
    env.kube_api.add("team-c", "plain", {})
    env.kube_api.calls = 0
    yield
    _providers.CACHE.clear()
    _providers.CACHE.clock = time.time
    kube.clear_readers()


POD_A = PodRef(name="app-a-0", namespace="team-a", service_account="app-a")
POD_B = PodRef(name="app-b-0", namespace="team-b", service_account="app-b")


def attributes(secret: str, *, pod: PodRef = POD_A, pod_identity: bool = False,
               token: str | None = None, extra: str = "") -> str:
    parameters = {"objects": f"- {{objectName: {secret}, objectType: kms, objectAlias: out}}\n"
                             + extra}
    volume = {"usePodServiceAccountToken": "true"} if pod_identity else None
    tokens = {"sts.aliyuncs.com": token} if token else None
    return driver_attributes(parameters, pod=pod, volume_attributes=volume, tokens=tokens)


def mount_ok(provider: RunningProvider, secret: str, **kwargs: Any) -> None:
    secrets = kwargs.pop("secrets", None)
    response = provider.mount(attributes(secret, **kwargs),
                              secrets=json.dumps(secrets) if secrets else "null")
    assert files_of(response) == {"out": SECRETS[secret].encode()}


def mount_error(provider: RunningProvider, secret: str, **kwargs: Any) -> grpc.RpcError:
    secrets = kwargs.pop("secrets", None)
    with pytest.raises(grpc.RpcError) as info:
        provider.mount(attributes(secret, **kwargs),
                       secrets=json.dumps(secrets) if secrets else "null")
    return info.value


# --- each mode end to end ------------------------------------------------------------------------

@pytest.mark.parametrize("token_in", ["attributes", "secrets"])
def test_pod_rrsa(env: Env, tmp_path: Path, token_in: str) -> None:
    token = env.token("team-a", "app-a")
    settings = env.settings({**OIDC_ENV, **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        if token_in == "attributes":
            mount_ok(provider, "app-a/db", pod_identity=True, token=token)
        else:  # the driver's tokens in the nodePublishSecretRef data, not in the attributes
            tokens = json.dumps({"sts.aliyuncs.com": {
                "token": token, "expirationTimestamp": "2099-01-01T00:00:00Z"}})
            mount_ok(provider, "app-a/db", pod_identity=True, secrets={ATTR_SA_TOKENS: tokens})
        # the role's allow-list applies: the pod may not read what its role may not
        denied = mount_error(provider, "provider/db", pod_identity=True, token=token)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "kms:GetSecretValue" in denied.details() and token not in denied.details()
    counters = env.counters()
    assert counters["by_api"] == {"sts.AssumeRoleWithOIDC": 1, "kms.GetSecretValue": 2}
    assert counters["by_principal"] == {ROLE_A: 2}
    assert env.kube_api.calls == 1


def test_provider_rrsa_with_a_token_file(env: Env, tmp_path: Path) -> None:
    env.write_provider_token()
    settings = env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        mount_ok(provider, "provider/db")
    counters = env.counters()
    assert counters["by_api"] == {"sts.AssumeRoleWithOIDC": 1, "kms.GetSecretValue": 1}
    assert counters["by_principal"] == {ROLE_PROVIDER: 1}


def test_access_key_and_assume_role(env: Env, tmp_path: Path) -> None:
    settings = env.settings({**AK_ENV, **ROLE_ENV, "ALICLOUD_ROLE_SESSION_NAME": "e2e-session",
                             **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        mount_ok(provider, "provider/db")
        # the AccessKey's own principal is not what reads KMS
        assert mount_error(provider, "user/db").code() == grpc.StatusCode.PERMISSION_DENIED
    counters = env.counters()
    assert counters["by_api"] == {"sts.AssumeRole": 1, "kms.GetSecretValue": 2}
    assert counters["by_principal"] == {"ci-user": 1, ROLE_PROVIDER: 2}  # ci-user signed STS


def test_node_publish_secret_ref_keys_in_any_case(env: Env, tmp_path: Path) -> None:
    with running_provider(env.settings(NO_ECS), tmp_path) as provider:
        mount_ok(provider, "shared/db", secrets=NPS)
        mount_ok(provider, "shared/db", secrets={"access_key": NPS_KEY,
                                                 "access_secret": NPS_SECRET})
    counters = env.counters()
    assert counters["by_api"] == {"kms.GetSecretValue": 2}
    assert counters["by_principal"] == {"nps-user": 2}


def test_static_access_key(env: Env, tmp_path: Path) -> None:
    with running_provider(env.settings({**AK_ENV, **NO_ECS}), tmp_path) as provider:
        mount_ok(provider, "user/db")
    assert env.counters()["by_principal"] == {"ci-user": 1}


def test_static_access_key_with_a_wrong_secret_is_unauthenticated(
    env: Env, tmp_path: Path
) -> None:
    settings = env.settings({"ACCESS_KEY_ID": USER_KEY, "SECRET_ACCESS_KEY": "not-the-secret-9",
                             **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        error = mount_error(provider, "user/db")
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not-the-secret-9" not in error.details()


def test_ecs_ram_role_from_metadata_with_imdsv2(env: Env, tmp_path: Path) -> None:
    """The metadata emulator refuses IMDSv1 (require_v2 in the seed): success means v2."""
    with running_provider(env.settings({}), tmp_path) as provider:
        mount_ok(provider, "node/db")
    counters = env.counters()
    assert counters["by_api"].get("metadata./latest/api/token", 0) >= 1
    assert counters["by_api"]["kms.GetSecretValue"] == 1
    assert counters["by_principal"] == {NODE_ROLE_ARN: 1}


def test_cross_account_role_per_object(env: Env, tmp_path: Path) -> None:
    settings = env.settings({**AK_ENV, **ROLE_ENV, **NO_ECS})
    extra = (f"- {{objectName: cross/db, objectAlias: crossed,"
             f" crossAccountRoleArn: '{ROLE_CROSS}'}}\n")
    with running_provider(settings, tmp_path) as provider:
        response = provider.mount(attributes("provider/db", extra=extra))
    assert files_of(response) == {"out": b"pw-provider", "crossed": b"pw-cross"}
    counters = env.counters()
    assert counters["by_api"] == {"sts.AssumeRole": 2, "kms.GetSecretValue": 2}
    # ci-user → provider role (STS); provider role → cross role (STS) and its own KMS read;
    # the cross-account role reads only its object
    assert counters["by_principal"] == {"ci-user": 1, ROLE_PROVIDER: 2, ROLE_CROSS: 1}
    assert counters["by_secret"]["kms/cross/db"] == 1


# --- chain order -------------------------------------------------------------------------------

@pytest.mark.parametrize(("case", "secret", "principal", "sts_api"), [
    ("pod-identity", "app-a/db", ROLE_A, "sts.AssumeRoleWithOIDC"),
    ("provider-rrsa", "provider/db", ROLE_PROVIDER, "sts.AssumeRoleWithOIDC"),
    ("ak-assume-role", "provider/db", ROLE_PROVIDER, "sts.AssumeRole"),
    ("node-publish-secret", "shared/db", "nps-user", None),
    ("static-ak", "user/db", "ci-user", None),
    ("ecs-ram-role", "node/db", NODE_ROLE_ARN, None),
])
def test_chain_order_first_applicable_mode_wins(
    env: Env, tmp_path: Path, case: str, secret: str, principal: str, sts_api: str | None
) -> None:
    """Each row removes what made the previous row's mode apply; everything after it is still
    configured. The principal that reached KMS shows which mode won."""
    env.write_provider_token()
    order = ["pod-identity", "provider-rrsa", "ak-assume-role", "node-publish-secret",
             "static-ak", "ecs-ram-role"]
    later = order[order.index(case):]
    environ: dict[str, str] = {}
    if {"provider-rrsa", "ak-assume-role"} & set(later):
        environ.update(ROLE_ENV)
    if {"pod-identity", "provider-rrsa"} & set(later):
        environ.update(OIDC_ENV)
    if "static-ak" in later:
        environ.update(AK_ENV)  # also the key of AK + AssumeRole when a role is set
    secrets = NPS if "node-publish-secret" in later else None
    kwargs: dict[str, Any] = {"secrets": secrets}
    if case == "pod-identity":
        kwargs.update(pod_identity=True, token=env.token("team-a", "app-a"))
    with running_provider(env.settings(environ), tmp_path) as provider:
        mount_ok(provider, secret, **kwargs)
    counters = env.counters()
    kms_signers = dict(counters["by_principal"])
    if case == "ak-assume-role":
        assert kms_signers.pop("ci-user") == 1  # it signed AssumeRole, not the KMS call
    assert kms_signers == {principal: 1}
    sts_calls = {k: v for k, v in counters["by_api"].items() if k.startswith("sts.")}
    assert sts_calls == ({sts_api: 1} if sts_api else {})
    metadata_calls = [k for k in counters["by_api"] if k.startswith("metadata.")]
    assert bool(metadata_calls) == (case == "ecs-ram-role")


# --- no silent fallback, namespace allow-list ---------------------------------------------------

@pytest.mark.parametrize(("case", "code", "fragment"), [
    ("no-token", grpc.StatusCode.FAILED_PRECONDITION, "tokenRequests"),
    ("no-annotation", grpc.StatusCode.FAILED_PRECONDITION,
     "kubectl annotate serviceaccount -n team-c plain"),
    ("sts-refuses", grpc.StatusCode.PERMISSION_DENIED, "trust"),
])
def test_pod_identity_missing_piece_fails_without_using_another_identity(
    env: Env, tmp_path: Path, case: str, code: grpc.StatusCode, fragment: str
) -> None:
    """Every provider-level mode is configured and would work; none may be used instead."""
    env.write_provider_token()
    pod, token = POD_A, None
    if case == "no-annotation":
        pod = PodRef(name="plain-0", namespace="team-c", service_account="plain")
        token = env.token("team-c", "plain")
    elif case == "sts-refuses":  # role A does not trust team-a/other
        env.kube_api.add("team-a", "other", {kube.ROLE_ANNOTATION: ROLE_A})
        pod = PodRef(name="other-0", namespace="team-a", service_account="other")
        token = env.token("team-a", "other")
    settings = env.settings({**AK_ENV, **ROLE_ENV, **OIDC_ENV})
    with running_provider(settings, tmp_path) as provider:
        error = mount_error(provider, "shared/db", pod=pod, pod_identity=True, token=token,
                            secrets=NPS)
    assert error.code() == code, error.details()
    assert fragment in error.details()
    if token:
        assert token not in error.details()
    counters = env.counters()
    assert not any(api.startswith(("kms.", "metadata.")) for api in counters["by_api"])
    assert counters["by_api"].get("sts.AssumeRole", 0) == 0
    assert counters["by_principal"] == {}  # no identity signed anything


def test_namespace_allow_list_for_provider_identities(env: Env, tmp_path: Path) -> None:
    settings = env.settings({**AK_ENV, **OIDC_ENV, **NO_ECS},
                            provider_identity_namespaces=frozenset({"team-a"}))
    with running_provider(settings, tmp_path) as provider:
        denied = mount_error(provider, "user/db", pod=POD_B)
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "allow-list" in denied.details() and "team-b" in denied.details()
        assert env.counters()["total"] == 0
        mount_ok(provider, "user/db", pod=POD_A)  # inside the list: the same mount works
        # the pod's own identity is not restricted by the provider's allow-list
        mount_ok(provider, "app-b/db", pod=POD_B, pod_identity=True,
                 token=env.token("team-b", "app-b"))
    assert env.counters()["by_principal"] == {"ci-user": 1, ROLE_B: 1}


# --- one STS call per credential lifetime --------------------------------------------------

class FakeClock:
    """The identity cache's clock, moved forward to reach a credential's refresh time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.mark.parametrize("mode", ["pod-rrsa", "ak-assume-role"])
def test_one_sts_call_over_100_mounts_then_one_more_near_expiry(
    env: Env, tmp_path: Path, mode: str
) -> None:
    clock = FakeClock()
    _providers.CACHE.clock = clock
    if mode == "pod-rrsa":
        settings = env.settings({**OIDC_ENV, **NO_ECS})
        token = env.token("team-a", "app-a")
        kwargs: dict[str, Any] = {"pod_identity": True, "token": token}
        secret, api, principal = "app-a/db", "sts.AssumeRoleWithOIDC", ROLE_A
    else:
        settings = env.settings({**AK_ENV, **ROLE_ENV, **NO_ECS})
        kwargs = {}
        secret, api, principal = "provider/db", "sts.AssumeRole", ROLE_PROVIDER
    with running_provider(settings, tmp_path) as provider:
        for _ in range(100):
            mount_ok(provider, secret, **kwargs)
        assert env.api(api) == 1
        assert env.api("kms.GetSecretValue") == 100
        assert env.counters()["by_principal"][principal] == 100
        if mode == "pod-rrsa":
            assert env.kube_api.calls == 1  # the role annotation is cached too
        clock.offset = 3000.0  # of a 3600 s credential: time to refresh
        for _ in range(3):
            mount_ok(provider, secret, **kwargs)
    assert env.api(api) == 2
