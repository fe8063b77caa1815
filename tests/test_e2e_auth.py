"""Every credential mode end to end through the provider's real unix socket.

The driver's Mount goes to the real provider; its credential plugins get the credential from the
emulator's STS (over TLS with the emulator's test CA) or instance metadata (IMDSv2), or use an
AccessKey; the real KMS SDK then signs GetSecretValue with it and the emulator verifies the
signature, the security token, the expiry and the principal's allow-list. The emulator's
per-principal counters show which identity really reached KMS. Pod RRSA reads the
ServiceAccount's role annotation from a fake Kubernetes API on loopback. The account (seed,
emulator, fixtures) is shared with test_auth_e2e.py: tests/auth_world.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import auth_world
import grpc
import pytest
from auth_world import (
    AK_ENV,
    NO_ECS,
    NODE_ROLE_ARN,
    NPS,
    NPS_KEY,
    NPS_SECRET,
    OIDC_ENV,
    ROLE_A,
    ROLE_B,
    ROLE_CROSS,
    ROLE_ENV,
    ROLE_PROVIDER,
    SECRETS,
    USER_KEY,
    AuthWorld,
    FakeClock,
)

from ack_secrets_provider.auth import kube
from ack_secrets_provider.core.mount.spec import ATTR_SA_TOKENS
from ack_secrets_provider.core.server.driver_client import (
    PodRef,
    RunningProvider,
    driver_attributes,
    files_of,
    running_provider,
)

# the module-scoped world and the autouse reset before every test (pytest fixtures)
env, fresh = auth_world.env, auth_world.fresh

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
def test_pod_rrsa(env: AuthWorld, tmp_path: Path, token_in: str) -> None:
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
    assert env.kube.calls == 1


def test_provider_rrsa_with_a_token_file(env: AuthWorld, tmp_path: Path) -> None:
    env.write_provider_token()
    settings = env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        mount_ok(provider, "provider/db")
    counters = env.counters()
    assert counters["by_api"] == {"sts.AssumeRoleWithOIDC": 1, "kms.GetSecretValue": 1}
    assert counters["by_principal"] == {ROLE_PROVIDER: 1}


def test_access_key_and_assume_role(env: AuthWorld, tmp_path: Path) -> None:
    settings = env.settings({**AK_ENV, **ROLE_ENV, "ALICLOUD_ROLE_SESSION_NAME": "e2e-session",
                             **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        mount_ok(provider, "provider/db")
        # the AccessKey's own principal is not what reads KMS
        assert mount_error(provider, "user/db").code() == grpc.StatusCode.PERMISSION_DENIED
    counters = env.counters()
    assert counters["by_api"] == {"sts.AssumeRole": 1, "kms.GetSecretValue": 2}
    assert counters["by_principal"] == {"ci-user": 1, ROLE_PROVIDER: 2}  # ci-user signed STS


def test_node_publish_secret_ref_keys_in_any_case(env: AuthWorld, tmp_path: Path) -> None:
    with running_provider(env.settings(NO_ECS), tmp_path) as provider:
        mount_ok(provider, "shared/db", secrets=NPS)
        mount_ok(provider, "shared/db", secrets={"access_key": NPS_KEY,
                                                 "access_secret": NPS_SECRET})
    counters = env.counters()
    assert counters["by_api"] == {"kms.GetSecretValue": 2}
    assert counters["by_principal"] == {"nps-user": 2}


def test_static_access_key(env: AuthWorld, tmp_path: Path) -> None:
    with running_provider(env.settings({**AK_ENV, **NO_ECS}), tmp_path) as provider:
        mount_ok(provider, "user/db")
    assert env.counters()["by_principal"] == {"ci-user": 1}


def test_static_access_key_with_a_wrong_secret_is_unauthenticated(
    env: AuthWorld, tmp_path: Path
) -> None:
    settings = env.settings({"ACCESS_KEY_ID": USER_KEY, "SECRET_ACCESS_KEY": "not-the-secret-9",
                             **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        error = mount_error(provider, "user/db")
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not-the-secret-9" not in error.details()


def test_ecs_ram_role_from_metadata_with_imdsv2(env: AuthWorld, tmp_path: Path) -> None:
    """The metadata emulator refuses IMDSv1 (require_v2 in the seed): success means v2."""
    with running_provider(env.settings({}), tmp_path) as provider:
        mount_ok(provider, "node/db")
    counters = env.counters()
    assert counters["by_api"].get("metadata./latest/api/token", 0) >= 1
    assert counters["by_api"]["kms.GetSecretValue"] == 1
    assert counters["by_principal"] == {NODE_ROLE_ARN: 1}


def test_cross_account_role_per_object(env: AuthWorld, tmp_path: Path) -> None:
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
    env: AuthWorld, tmp_path: Path, case: str, secret: str, principal: str, sts_api: str | None
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
    ("not-a-jwt", grpc.StatusCode.UNAUTHENTICATED, "not a ServiceAccount token"),
])
def test_pod_identity_missing_piece_fails_without_using_another_identity(
    env: AuthWorld, tmp_path: Path, case: str, code: grpc.StatusCode, fragment: str
) -> None:
    """Every provider-level mode is configured and would work; none may be used instead."""
    env.write_provider_token()
    pod, token = POD_A, None
    if case == "no-annotation":
        pod = PodRef(name="plain-0", namespace="team-c", service_account="plain")
        token = env.token("team-c", "plain")
    elif case == "sts-refuses":  # role A does not trust team-a/other
        env.kube.add("team-a", "other", {kube.ROLE_ANNOTATION: ROLE_A})
        pod = PodRef(name="other-0", namespace="team-a", service_account="other")
        token = env.token("team-a", "other")
    elif case == "not-a-jwt":  # e.g. injected through volumeAttributes without tokenRequests
        token = "opaque-token-value-0123456789"
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


def test_namespace_allow_list_for_provider_identities(env: AuthWorld, tmp_path: Path) -> None:
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

@pytest.mark.parametrize("mode", ["pod-rrsa", "ak-assume-role"])
def test_one_sts_call_over_100_mounts_then_one_more_near_expiry(
    env: AuthWorld, tmp_path: Path, mode: str
) -> None:
    clock = FakeClock().install()
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
            assert env.kube.calls == 1  # the role annotation is cached too
        clock.advance(3000)  # of a 3600 s credential: time to refresh
        for _ in range(3):
            mount_ok(provider, secret, **kwargs)
    assert env.api(api) == 2


def test_sts_calls_and_credential_refreshes_are_counted(env: AuthWorld, tmp_path: Path) -> None:
    """The STS and refresh metrics move with real STS calls (and only with them)."""
    from ack_secrets_provider.core.observability import metrics

    token = env.token("team-a", "app-a")
    settings = env.settings({**OIDC_ENV, **NO_ECS})
    with metrics.installed() as recorded, running_provider(settings, tmp_path) as provider:
        for _ in range(3):  # one STS call for the identity's lifetime, not one per mount
            mount_ok(provider, "app-a/db", pod_identity=True, token=token)
        registry = recorded.registry
        assert registry.get_sample_value(
            "ack_secrets_provider_sts_calls_total",
            {"api": "AssumeRoleWithOIDC", "result": "ok"}) == 1
        assert registry.get_sample_value(
            "ack_secrets_provider_credential_refreshes_total",
            {"mode": "pod-rrsa", "result": "ok"}) == 1
    assert env.counters()["by_api"]["sts.AssumeRoleWithOIDC"] == 1
