"""KMS and OOS end to end: the driver's Mount over the real unix socket, the real provider with its
installed backends, the real Alibaba SDKs, and the loopback emulator that verifies every request's
signature. Nothing is faked between the gRPC call and the emulator's HTTP handler; each test reads
the emulator's counters to prove what really went upstream.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import grpc
import jmespath
import pytest
from installed import SERVICES
from scraped import sample, total, wait_for

from ack_secrets_provider.backends.kms.emulator import put_secret_version
from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator.testing import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    LIMITED_ACCESS_KEY_ID,
    LIMITED_ACCESS_KEY_SECRET,
    LIMITED_PRINCIPAL,
    PRINCIPAL,
    EmulatorHandle,
    default_seed,
    running_emulator,
)
from ack_secrets_provider.core.server.driver_client import (
    RunningProvider,
    driver_attributes,
    files_of,
    running_provider,
    versions_of,
)
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

GATEWAY = "kst-hzz-test.cryptoservice.kms.aliyuncs.com"
P = "ack_secrets_provider"
#: short retries keep the suite fast; tests that need more pass their own policy
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
NESTED_JSON = '{"db": {"host": "db.internal", "port": 5432}, "user": "app", "tags": ["a", "b"]}'
BATCH_PARAMS = [f"batch-{i:02d}" for i in range(23)]


def _seed() -> dict[str, Any]:
    seed = default_seed()
    seed["kms"]["secrets"].append({"name": "app/nested", "data": NESTED_JSON})
    seed["kms"]["secrets"].append({"name": "app/deep", "data": "[" * 5000 + "]" * 5000})
    seed["oos"]["parameters"] += [{"name": n, "value": f"value-of-{n}"} for n in BATCH_PARAMS]
    return seed


@pytest.fixture()
def emu() -> Iterator[EmulatorHandle]:
    """A fresh emulator per test (tests rotate secrets and inject faults)."""
    with running_emulator(_seed()) as handle:
        yield handle


def settings_for(
    emu: EmulatorHandle,
    *,
    overrides: list[str] | None = None,
    key: tuple[str, str] = (ACCESS_KEY_ID, ACCESS_KEY_SECRET),
    **changes: Any,
) -> ProviderSettings:
    """The provider's settings: every service at the emulator, a static AccessKey (mode 5)."""
    entries = overrides if overrides is not None else [f"kms={emu.http_url}",
                                                       f"oos={emu.http_url}"]
    values: dict[str, Any] = {
        "region": "cn-hangzhou",
        "endpoint_overrides": EndpointOverrides.parse(entries, SERVICES),
        "environ": MappingProxyType({"ACCESS_KEY_ID": key[0], "SECRET_ACCESS_KEY": key[1]}),
        "retry": FAST_RETRY,
        "cache_ttl": 0.0,  # no value cache: every fetch is an upstream call the counters see
    }
    values.update(changes)
    return ProviderSettings(**values)


@pytest.fixture()
def provider(emu: EmulatorHandle, tmp_path: Any) -> Iterator[RunningProvider]:
    with running_provider(settings_for(emu), tmp_path) as running:
        yield running


def objects(*entries: str) -> dict[str, str]:
    return {"objects": "\n".join(entries) + "\n"}


def mount(provider: RunningProvider, parameters: Mapping[str, str], **kwargs: Any) -> Any:
    return provider.mount(driver_attributes(parameters), **kwargs)


def mount_error(provider: RunningProvider, parameters: Mapping[str, str],
                **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        mount(provider, parameters, **kwargs)
    return info.value


def api(emu: EmulatorHandle, name: str) -> int:
    return int(emu.counters()["by_api"].get(name, 0))


# --- KMS values ----------------------------------------------------------------------------------

def test_text_secret(provider: RunningProvider, emu: EmulatorHandle) -> None:
    response = mount(provider, objects("- {objectName: app/db-password, objectType: kms}"))
    assert files_of(response) == {"app_db-password": b"new-password"}
    assert versions_of(response) == {"app_db-password": "v2"}
    counters = emu.counters()
    assert counters["by_api"] == {"kms.GetSecretValue": 1}
    assert counters["by_principal"] == {PRINCIPAL: 1}  # the signature was verified


def test_binary_secret_is_raw_bytes(provider: RunningProvider) -> None:
    response = mount(provider, objects("- {objectName: app/binary, objectAlias: blob}"))
    assert files_of(response) == {"blob": bytes([0, 1, 2, 3, 4, 5, 0xFF])}


def test_binary_rotation_keeps_every_byte(provider: RunningProvider, emu: EmulatorHandle) -> None:
    every_byte = bytes(range(256))
    version = put_secret_version(emu, "app/binary", every_byte)
    response = mount(provider, objects("- {objectName: app/binary, objectAlias: blob}"))
    assert files_of(response) == {"blob": every_byte}
    assert versions_of(response) == {"blob": version}


def test_json_with_jmes_path_files_and_compact_json(provider: RunningProvider) -> None:
    response = mount(provider, objects(
        "- objectName: app/nested",
        "  objectAlias: nested.json",
        "  jmesPath:",
        "    - {path: user, objectAlias: user}",
        "    - {path: db.port, objectAlias: port}",
        "    - {path: db, objectAlias: db.json}",
        "    - {path: tags, objectAlias: tags.json}",
    ))
    assert files_of(response) == {
        "nested.json": NESTED_JSON.encode(),  # the secret itself, byte for byte
        "user": b"app",
        "port": b"5432",
        "db.json": b'{"host":"db.internal","port":5432}',
        "tags.json": b'["a","b"]',
    }
    assert set(versions_of(response).values()) == {"v1"}


def test_jmes_path_on_a_secret_that_is_not_json_names_the_object(
    provider: RunningProvider,
) -> None:
    error = mount_error(provider, objects(
        "- objectName: app/db-password",
        "  jmesPath: [{path: user, objectAlias: user}]",
    ))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "app/db-password" in error.details()
    assert "new-password" not in error.details()


def test_a_jmes_path_whose_result_is_null_is_an_error_naming_the_entry(
    provider: RunningProvider,
) -> None:
    """docs/secretproviderclass.md, jmesPath: "a null result is an error" (a key the secret does
    not have, at the top or nested): never an empty file or the text null, and the mount
    returns none of its files."""
    for path in ("passwd", "db.missing"):
        error = mount_error(provider, objects(
            "- objectName: app/nested",
            "  jmesPath:",
            "    - {path: user, objectAlias: user}",
            f"    - {{path: {path}, objectAlias: out}}",
        ))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert error.details() == (
            f"object #1 (kms 'app/nested'): jmesPath {path!r} (objectAlias 'out') matched "
            "nothing in the secret's JSON; check the expression against the secret's keys")


@pytest.mark.parametrize(("path", "problem"), [
    ("to_str(user)", "Unknown function: to_str()"),
    ("length(user, db)", "Expected 1 argument for function length(), received 2"),
    ("sum(db)", "function sum() was given object, not array-number"),
])
def test_a_jmes_path_that_fails_on_the_secret_is_invalid_argument_not_internal(
    provider: RunningProvider, path: str, problem: str,
) -> None:
    """jmespath finds an unknown function, a wrong number of arguments or an argument of the
    wrong type only when it evaluates: the JMESPathError escaped as an internal error. The
    secret's value is never quoted (jmespath's own text for a type error quotes it)."""
    error = mount_error(provider, objects(
        "- objectName: app/nested",
        f"  jmesPath: [{{path: '{path}', objectAlias: out}}]",
    ))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details() == (
        f"object #1 (kms 'app/nested'): jmesPath {path!r} (objectAlias 'out') cannot be evaluated "
        f"on the secret's JSON ({problem}); check the expression against https://jmespath.org "
        "and the secret's keys")
    assert "db.internal" not in error.details()


def test_an_ordering_of_a_string_and_a_number_is_null_not_internal(
    provider: RunningProvider,
) -> None:
    """The JMESPath specification (and go-jmespath, the official provider's) makes an ordering
    comparison of other than numbers null; jmespath raised TypeError, an internal error."""
    response = mount(provider, objects(
        "- objectName: app/nested",
        "  jmesPath: [{path: 'tags[?@ > `1`]', objectAlias: none.json}]",
    ))
    assert files_of(response)["none.json"] == b"[]"


def test_an_ordering_compares_two_numbers_or_two_strings_and_is_null_otherwise() -> None:
    """The rule of the test above, item by item; an error inside an operand is still an error
    (only the comparison itself yields null)."""
    from ack_secrets_provider.core.mount.jmespath_eval import Budget, search

    document = {"items": ["a", 2, "b", 3.5, True, None, [1]], "n": 2}
    assert search("items[?@ > `1`]", document, Budget(1000)) == [2, 3.5]
    assert search("items[?@ >= 'b']", document, Budget(1000)) == ["b"]
    assert search("n < `3`", document, Budget(1000)) is True
    assert search("`true` > `false`", document, Budget(1000)) is None
    with pytest.raises(jmespath.exceptions.JMESPathTypeError):  # abs('a'): not null
        search("abs(items[0]) > `1`", document, Budget(1000))


def test_jmes_path_on_json_nested_too_deeply_names_the_object(
    provider: RunningProvider, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The JSON decoder's RecursionError escaped as an internal error."""
    error = mount_error(provider, objects(
        "- objectName: app/deep",
        "  jmesPath: [{path: '@', objectAlias: out}]",
    ))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details() == (
        "object #1 (kms 'app/deep'): field jmesPath is set but the secret's JSON is nested too "
        "deeply to be read; remove jmesPath or store the secret with fewer levels")
    # JSON that the decoder could still read, nested deep enough that walking it in full
    # (to_string) runs out of stack: the same (the walk is made to fail as it would)
    from ack_secrets_provider.core.mount import jmespath_eval

    def too_deep(*_args: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(jmespath_eval, "search", too_deep)
    error = mount_error(provider, objects(
        "- objectName: app/nested",
        "  jmesPath: [{path: 'to_string(@)', objectAlias: out}]",
    ))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "cannot be evaluated on the secret's JSON (the secret's JSON is nested too deeply)" \
        in error.details()


#: an AccessKey ID pasted with a zero-width space (not latin-1: no HTTP header can carry it)
PASTED_ID = ACCESS_KEY_ID + "\u200b"


def test_an_access_key_id_that_no_request_can_carry_names_where_it_comes_from(
    emu: EmulatorHandle, tmp_path: Any,
) -> None:
    """The SDK could not encode it into the request: 'the KMS call failed inside the provider
    (UnicodeEncodeError) ... a bug' (INTERNAL); a line break in it read 'could not reach KMS'
    (retried). Either is the credential's configuration: FAILED_PRECONDITION naming its source
    and the fix, the value never quoted, nothing sent."""
    fix = ("holds characters no AccessKey ID has (a space, a line break, an invisible or "
           "full-width character copied with it); copy the AccessKey ID again from the RAM "
           "console")
    with running_provider(settings_for(emu, key=(PASTED_ID, ACCESS_KEY_SECRET)),
                          tmp_path) as provider:
        error = mount_error(provider, objects("- objectName: app/db-password"))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        assert error.details() == (
            f"the environment variable ACCESS_KEY_ID (Helm value envVarsFromSecret) {fix}")
    with running_provider(settings_for(emu, key=("", "")), tmp_path / "nps") as provider:
        secrets = json.dumps({"access_key": ACCESS_KEY_ID[:4] + "\n" + ACCESS_KEY_ID[4:],
                              "access_secret": ACCESS_KEY_SECRET})
        error = mount_error(provider, objects("- objectName: app/db-password"), secrets=secrets)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        assert error.details().endswith(
            f"key 'access_key' of the nodePublishSecretRef Secret of pod default/app-0 {fix}")
    assert not [name for name in emu.counters()["by_api"] if name.startswith("kms.")]


def test_version_pin(provider: RunningProvider) -> None:
    response = mount(provider, objects(
        "- {objectName: app/db-password, objectVersion: v1, objectAlias: pinned}",
        "- {objectName: app/db-password, objectAlias: current}",
    ))
    assert files_of(response) == {"pinned": b"old-password", "current": b"new-password"}
    assert versions_of(response) == {"pinned": "v1", "current": "v2"}


def test_stage_label(provider: RunningProvider, emu: EmulatorHandle) -> None:
    response = mount(provider, objects(
        "- {objectName: app/db-password, objectVersionLabel: ACSPrevious, objectAlias: prev}",
    ))
    assert files_of(response) == {"prev": b"old-password"}
    assert versions_of(response) == {"prev": "v1"}
    # after a rotation, ACSPrevious moves to what was current
    put_secret_version(emu, "app/db-password", "newest-password")
    response = mount(provider, objects(
        "- {objectName: app/db-password, objectVersionLabel: ACSPrevious, objectAlias: prev}",
    ))
    assert files_of(response) == {"prev": b"new-password"}
    assert versions_of(response) == {"prev": "v2"}


@pytest.mark.parametrize(("translation", "db_file", "config_file"), [
    (None, "app_db-password", "app_config"),  # the default is "_"
    ("_", "app_db-password", "app_config"),
    ("-", "app-db-password", "app-config"),
    ("False", "app/db-password", "app/config"),  # kept: a sub-directory
])
def test_path_translation_modes(
    provider: RunningProvider, translation: str | None, db_file: str, config_file: str
) -> None:
    parameters = objects("- {objectName: app/db-password}", "- {objectName: app/config}")
    if translation is not None:
        parameters["pathTranslation"] = translation
    response = mount(provider, parameters)
    assert files_of(response) == {db_file: b"new-password",
                                  config_file: b'{"user": "app", "password": "p@ss"}'}
    assert versions_of(response) == {db_file: "v2", config_file: "v1"}


def test_rotation_is_visible_in_version_and_content(
    provider: RunningProvider, emu: EmulatorHandle
) -> None:
    parameters = objects("- {objectName: app/db-password, objectAlias: db}")
    first = mount(provider, parameters)
    new_version = put_secret_version(emu, "app/db-password", "rotated")
    second = mount(provider, parameters)
    assert versions_of(first) == {"db": "v2"}
    assert versions_of(second) == {"db": new_version} and new_version != "v2"
    assert files_of(second) == {"db": b"rotated"}


# --- endpoints -----------------------------------------------------------------------------------

def _regional_seed(value: str, version: str) -> dict[str, Any]:
    seed = default_seed()
    seed["kms"]["secrets"] = [{"name": "app/db-password",
                               "versions": [{"version_id": version, "data": value}]},
                              {"name": f"only-{version}", "data": value}]
    seed["oos"] = {"parameters": []}
    return seed


def test_each_object_uses_its_own_kms_endpoint(tmp_path: Any) -> None:
    """Two objects, two KMS endpoints, two emulators with different data: each object reaches
    only its own endpoint (the existing provider sends every object to the first one's)."""
    with running_emulator(_regional_seed("from-hangzhou", "hz1")) as hangzhou, \
            running_emulator(_regional_seed("from-shanghai", "sh1")) as shanghai:
        settings = settings_for(hangzhou, overrides=[
            f"kms.cn-hangzhou.aliyuncs.com={hangzhou.http_url}",
            f"kms.cn-shanghai.aliyuncs.com={shanghai.http_url}",
        ])
        with running_provider(settings, tmp_path) as provider:
            response = mount(provider, objects(
                "- {objectName: app/db-password, objectAlias: hz,"
                " kmsEndpoint: kms.cn-hangzhou.aliyuncs.com}",
                "- {objectName: app/db-password, objectAlias: sh,"
                " kmsEndpoint: kms.cn-shanghai.aliyuncs.com}",
                "- {objectName: only-sh1, kmsEndpoint: kms.cn-shanghai.aliyuncs.com}",
            ))
        assert files_of(response) == {"hz": b"from-hangzhou", "sh": b"from-shanghai",
                                      "only-sh1": b"from-shanghai"}
        assert versions_of(response) == {"hz": "hz1", "sh": "sh1", "only-sh1": "v1"}
        assert hangzhou.counters()["by_secret"] == {"kms/app/db-password": 1}
        assert shanghai.counters()["by_secret"] == {"kms/app/db-password": 1, "kms/only-sh1": 1}


def test_arn_region_picks_the_endpoint(tmp_path: Any) -> None:
    with running_emulator(_regional_seed("from-beijing", "bj1")) as beijing, \
            running_emulator(_regional_seed("from-hangzhou", "hz1")) as hangzhou:
        settings = settings_for(hangzhou, overrides=[
            f"kms-vpc.cn-beijing.aliyuncs.com={beijing.http_url}",
            f"kms-vpc.cn-hangzhou.aliyuncs.com={hangzhou.http_url}",
        ])
        with running_provider(settings, tmp_path) as provider:
            response = mount(provider, objects(
                "- {objectName: 'acs:kms:cn-beijing:1234567890123456:secret/app/db-password',"
                " objectAlias: db}",
            ))
        assert files_of(response) == {"db": b"from-beijing"}
        assert hangzhou.counters()["total"] == 0 and beijing.counters()["total"] == 1


def test_dedicated_gateway_over_tls_trusting_only_the_intermediate(
    tmp_path: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The emulator's chain is root → intermediate → server (the server sends leaf +
    intermediate); only the intermediate is configured, as users and the bundled CAs do."""
    with running_emulator(_seed(), tls=True, tls_dir=tmp_path_factory.mktemp("gw-ca")) as gw:
        assert gw.https_url and gw.intermediate_ca and gw.root_ca
        assert gw.intermediate_ca.read_bytes() != gw.root_ca.read_bytes()
        settings = settings_for(gw, overrides=[f"{GATEWAY}={gw.https_url}"],
                                backend_options={"kms_ca_file": str(gw.intermediate_ca)})
        with running_provider(settings, tmp_path) as provider:
            response = mount(provider, objects(
                f"- {{objectName: app/db-password, objectAlias: db, kmsEndpoint: {GATEWAY}}}",
            ))
        assert files_of(response) == {"db": b"new-password"}
        assert gw.counters()["by_api"] == {"kms.GetSecretValue": 1}


def test_dedicated_gateway_refused_with_the_bundled_region_ca(
    tmp_path: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No CA file set: the bundled cn-hangzhou instance CA is used, which does not vouch for the
    test chain, so the connection is refused (fail closed) and no request reaches the gateway.

    Its own emulator (a fresh port): SDK trust is installed per address for the whole process."""
    with running_emulator(_seed(), tls=True, tls_dir=tmp_path_factory.mktemp("gw-ca2")) as gw:
        assert gw.https_url
        settings = settings_for(gw, overrides=[f"{GATEWAY}={gw.https_url}"])
        with running_provider(settings, tmp_path) as provider:
            error = mount_error(provider, objects(
                f"- {{objectName: app/db-password, kmsEndpoint: {GATEWAY}}}",
            ))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "TLS verification" in error.details() and "--kms-ca-file" in error.details()
        assert "app/db-password" in error.details()
        assert gw.counters()["total"] == 0


# --- OOS -----------------------------------------------------------------------------------------

def test_oos_single_reports_the_real_parameter_version(
    provider: RunningProvider, emu: EmulatorHandle
) -> None:
    parameters = objects("- {objectName: app-token, objectType: oos}")
    first = mount(provider, parameters)
    assert files_of(first) == {"app-token": b"token-v2"}
    assert versions_of(first) == {"app-token": "2"}
    new_version = int(emu.rotate("oos", "app-token", "token-v3"))
    second = mount(provider, parameters)
    assert versions_of(second) == {"app-token": str(new_version)} and new_version == 3
    assert files_of(second) == {"app-token": b"token-v3"}
    assert api(emu, "oos.GetSecretParameter") == 2 and api(emu, "oos.GetSecretParameters") == 0


def test_oos_version_pin(provider: RunningProvider) -> None:
    response = mount(provider, objects(
        "- {objectName: app-token, objectType: oos, objectVersion: '1', objectAlias: old}",
    ))
    assert files_of(response) == {"old": b"token-v1"}
    assert versions_of(response) == {"old": "1"}


@pytest.mark.parametrize("count", [3, 10, 23])
def test_oos_batched_in_ceil_n_over_10_calls(
    provider: RunningProvider, emu: EmulatorHandle, count: int
) -> None:
    names = BATCH_PARAMS[:count]
    response = mount(provider, objects(*(f"- {{objectName: {n}, objectType: oos}}"
                                         for n in names)))
    assert files_of(response) == {n: f"value-of-{n}".encode() for n in names}
    assert versions_of(response) == {n: "1" for n in names}
    counters = emu.counters()
    assert counters["by_api"] == {"oos.GetSecretParameters": math.ceil(count / 10)}
    assert counters["by_secret"] == {f"oos/{n}": 1 for n in names}


def test_mix_of_kms_and_oos(provider: RunningProvider, emu: EmulatorHandle) -> None:
    response = mount(provider, objects(
        "- {objectName: app/db-password, objectType: kms, objectAlias: db}",
        "- {objectName: app/binary, objectAlias: bin}",
        "- {objectName: app-token, objectType: oos, objectAlias: token}",
        "- {objectName: app-smtp, objectType: oos, objectAlias: smtp}",
        "- {objectName: app-token, objectType: oos, objectVersion: '1', objectAlias: token1}",
    ))
    assert files_of(response) == {"db": b"new-password", "bin": bytes([0, 1, 2, 3, 4, 5, 0xFF]),
                                  "token": b"token-v2", "smtp": b"smtp-v1", "token1": b"token-v1"}
    assert versions_of(response) == {"db": "v2", "bin": "v1", "token": "2", "smtp": "1",
                                     "token1": "1"}
    assert emu.counters()["by_api"] == {"kms.GetSecretValue": 2, "oos.GetSecretParameters": 1,
                                        "oos.GetSecretParameter": 1}


# --- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "kind", "host"), [
    ("- {objectName: no-such-secret, objectType: kms}", "kms",
     "kms-vpc.cn-hangzhou.aliyuncs.com"),
    ("- {objectName: no-such-param, objectType: oos}", "oos",
     "oos-vpc.cn-hangzhou.aliyuncs.com"),
])
def test_not_found_names_secret_type_and_endpoint(
    provider: RunningProvider, emu: EmulatorHandle, line: str, kind: str, host: str
) -> None:
    error = mount_error(provider, objects(line))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    name = "no-such-secret" if kind == "kms" else "no-such-param"
    assert f"{kind} {name!r}" in error.details()
    assert host in error.details()
    assert emu.counters()["total"] == 1  # not found is not retried


def test_missing_version_is_not_found(provider: RunningProvider) -> None:
    error = mount_error(provider, objects("- {objectName: app/db-password, objectVersion: v99}"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "app/db-password" in error.details()


@pytest.mark.parametrize(("line", "action"), [
    ("- {objectName: other/secret, objectType: kms}", "kms:GetSecretValue"),
    ("- {objectName: other-param, objectType: oos}", "oos:GetSecretParameter"),
])
def test_permission_denied_names_the_ram_action(
    emu: EmulatorHandle, tmp_path: Any, line: str, action: str
) -> None:
    settings = settings_for(emu, key=(LIMITED_ACCESS_KEY_ID, LIMITED_ACCESS_KEY_SECRET))
    with running_provider(settings, tmp_path) as provider:
        error = mount_error(provider, objects(line))
        # the same identity may read what its policy allows
        allowed = "app/db-password" if "kms" in line else "app-token"
        kind = "kms" if "kms" in line else "oos"
        assert files_of(mount(provider, objects(f"- {{objectName: {allowed},"
                                                f" objectType: {kind}}}")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert action in error.details()
    assert ("other/secret" if "kms" in line else "other-param") in error.details()
    assert emu.counters()["by_api_result"][f"{kind}.{action.split(':')[1]}"]["OK"] == 1


def test_oos_needs_only_the_official_providers_ram_action(
    emu: EmulatorHandle, tmp_path: Any
) -> None:
    """docs/migration.md: the RAM policy stays the same (oos:GetSecretParameter for OOS). A
    batch is a GetSecretParameters call, RAM action oos:GetSecretParameters, which a policy
    written for the official provider lacks: the batch is refused once and each object read
    alone, then and at later mounts (a denied call at every mount would keep the permission
    alert firing)."""
    emu.set_policy(LIMITED_PRINCIPAL, {"oos:GetSecretParameter": ["app-*"]})
    settings = settings_for(emu, key=(LIMITED_ACCESS_KEY_ID, LIMITED_ACCESS_KEY_SECRET))
    two = ("- {objectName: app-token, objectType: oos}",
           "- {objectName: app-smtp, objectType: oos}")
    with running_provider(settings, tmp_path) as provider:
        for _ in range(2):
            assert files_of(mount(provider, objects(*two))) == {
                "app-token": b"token-v2", "app-smtp": b"smtp-v1"}
        # a denied object still fails the mount, with its own name and action
        error = mount_error(provider, objects(*two, "- {objectName: other-param, objectType: oos}"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'other-param'" in error.details() and "oos:GetSecretParameter" in error.details()
    results = emu.counters()["by_api_result"]
    assert results["oos.GetSecretParameters"] == {"Forbidden.RAM": 1}
    assert results["oos.GetSecretParameter"] == {"OK": 6, "Forbidden.RAM": 1}


def test_a_batch_refused_for_one_object_leaves_batching_on(
    emu: EmulatorHandle, tmp_path: Any
) -> None:
    """The negative case: a batch denied because one of its objects is (both actions granted)
    fails that mount naming the object; the identity's later batches are still batches."""
    emu.set_policy(LIMITED_PRINCIPAL, {"oos": ["app-*"]})
    settings = settings_for(emu, key=(LIMITED_ACCESS_KEY_ID, LIMITED_ACCESS_KEY_SECRET))
    with running_provider(settings, tmp_path) as provider:
        error = mount_error(provider, objects("- {objectName: app-token, objectType: oos}",
                                              "- {objectName: other-param, objectType: oos}"))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'other-param'" in error.details()
        assert files_of(mount(provider, objects("- {objectName: app-token, objectType: oos}",
                                                "- {objectName: app-smtp, objectType: oos}")))
    results = emu.counters()["by_api_result"]
    assert results["oos.GetSecretParameters"] == {"Forbidden.RAM": 1, "OK": 1}


@pytest.mark.parametrize("key", [
    (ACCESS_KEY_ID, "wrong-secret-value-123"),
    ("LTAI5tNoSuchKey000001", "unknown-key-secret-456"),
])
def test_bad_credentials_are_unauthenticated_and_not_retried(
    emu: EmulatorHandle, tmp_path: Any, key: tuple[str, str]
) -> None:
    with running_provider(settings_for(emu, key=key), tmp_path) as provider:
        error = mount_error(provider, objects("- {objectName: app/db-password}"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert key[1] not in error.details()
    assert emu.counters()["total"] == 1


def test_throttling_succeeds_after_retries(provider: RunningProvider, emu: EmulatorHandle) -> None:
    emu.set_faults(service="kms", throttle_next=2, retry_after_ms=20)
    response = mount(provider, objects("- {objectName: app/db-password, objectAlias: db}"))
    assert files_of(response) == {"db": b"new-password"}
    results = emu.counters()["by_api_result"]["kms.GetSecretValue"]
    assert results.pop("OK") == 1 and sum(results.values()) == 2  # two throttled attempts


def test_throttling_ratio_succeeds_after_retries(emu: EmulatorHandle, tmp_path: Any) -> None:
    emu.set_faults(service="oos", throttle_ratio=0.5, retry_after_ms=5, seed=7)
    emu.set_faults(service="kms", throttle_ratio=0.5, retry_after_ms=5, seed=7)
    retry = RetryPolicy(max_attempts=12, base_delay=0.005, max_delay=0.02, budget_tokens=100)
    with running_provider(settings_for(emu, retry=retry), tmp_path) as provider:
        response = mount(provider, objects(
            *(f"- {{objectName: {n}, objectType: oos, objectVersion: '1'}}"
              for n in BATCH_PARAMS[:6]),
            "- {objectName: app/db-password, objectAlias: db}",
            "- {objectName: app/config, objectAlias: config}",
        ))
    assert len(files_of(response)) == 8
    counters = emu.counters()
    ok = counters["by_result"].pop("OK")
    assert ok == 8 and sum(counters["by_result"].values()) >= 1  # some calls were throttled


def test_5xx_outage_is_aborted_after_retries_not_unavailable(
    provider: RunningProvider, emu: EmulatorHandle
) -> None:
    emu.set_faults(service="kms", outage_seconds=30)
    error = mount_error(provider, objects("- {objectName: app/db-password}"))
    assert error.code() == grpc.StatusCode.ABORTED  # the driver retries UNAVAILABLE itself
    assert "app/db-password" in error.details() and "4 attempts" in error.details()
    assert api(emu, "kms.GetSecretValue") == FAST_RETRY.max_attempts


def test_transient_5xx_and_dropped_connection_are_retried(
    provider: RunningProvider, emu: EmulatorHandle
) -> None:
    emu.set_faults(service="kms", error_next=1, drop_next=1)
    response = mount(provider, objects("- {objectName: app/db-password, objectAlias: db}"))
    assert files_of(response) == {"db": b"new-password"}
    assert api(emu, "kms.GetSecretValue") == 3


def test_deadline_expiring_during_retries_fails_within_the_callers_timeout(
    emu: EmulatorHandle, tmp_path: Any
) -> None:
    patient = RetryPolicy(max_attempts=1000, base_delay=0.05, max_delay=0.1,
                          budget_tokens=1000)
    timeout = 1.0
    # the value cache on: fetches go through single-flight, so a fetch still running is joined
    settings = settings_for(emu, retry=patient, cache_ttl=60.0)
    with running_provider(settings, tmp_path) as provider:
        # warmed up (SDK clients built) on other objects, so the 1 s deadline is all retries
        mount(provider, objects("- {objectName: app/config}",
                                "- {objectName: batch-00, objectType: oos}"))
        emu.reset_counters()
        kms = {"service": "kms"}
        warm_up = total(provider.metrics, f"{P}_upstream_calls_total", kms)
        emu.set_faults(service="kms", outage_seconds=30)
        error = mount_error(provider, objects(
            "- {objectName: app-token, objectType: oos, objectAlias: good}",
            "- {objectName: app/db-password, objectAlias: down}",
        ), timeout=timeout)
        # The provider answered within the caller's timeout: the error is in its own words (had
        # it answered later, the client's own "Deadline Exceeded" would be here instead).
        details = error.details()
        assert error.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert "mount" in details and "deadline" in details, details
        if error.code() == grpc.StatusCode.ABORTED:
            assert "app/db-password" in details
        assert api(emu, "kms.GetSecretValue") >= 3  # it really was retrying
        # the good object was fetched, but nothing of it is returned: no partial mount
        assert api(emu, "oos.GetSecretParameter") == 1

        # And the retry loop stopped with the deadline. Once every attempt that reached the
        # emulator is back in the provider (its last one may straddle the deadline), a loop still
        # running would hold its single-flight: the next mount of the object would join it (a
        # coalesced wait) instead of making its own call.
        # (>=, not ==: the provider also counts an attempt the deadline ended before it reached
        # the emulator, which a loaded machine makes likely; == then never came true.)
        wait_for(lambda: total(provider.metrics, f"{P}_upstream_calls_total", kms) - warm_up
                 >= api(emu, "kms.GetSecretValue"), "every attempt is back in the provider")
        # (The outage goes on, so no loop can end by succeeding and filling the cache.)
        mount_error(provider, objects("- {objectName: app/db-password}"), timeout=0.3)
        assert sample(provider.metrics, f"{P}_cache_coalesced_waits_total", kms) == 0


def test_all_or_nothing_one_bad_object_among_good_ones(
    provider: RunningProvider, emu: EmulatorHandle
) -> None:
    error = mount_error(provider, objects(
        "- {objectName: app/db-password}",
        "- {objectName: app/config}",
        "- {objectName: app/missing-one}",
        "- {objectName: app-token, objectType: oos}",
    ))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "app/missing-one" in error.details()
    assert "#3" in error.details()
    # the same mount without the bad object works: the failure really was that object
    response = mount(provider, objects("- {objectName: app/db-password}",
                                       "- {objectName: app/config}",
                                       "- {objectName: app-token, objectType: oos}"))
    assert len(response.files) == 3


def test_endpoint_placeholder_is_refused_before_any_call(
    provider: RunningProvider, emu: EmulatorHandle
) -> None:
    error = mount_error(provider, objects(
        "- {objectName: app/db-password, kmsEndpoint: 'kms-vpc.{region}.aliyuncs.com'}",
    ))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "kms-vpc.cn-hangzhou.aliyuncs.com" in error.details()
    assert emu.counters()["total"] == 0
