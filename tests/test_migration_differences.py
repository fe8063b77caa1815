"""docs/migration.md, "Every difference, input by input": each row is a test here.

Every row of that section's tables starts with an id (`` `driver-permission` ``); every test below
that proves a row is registered under the same id with `@row(...)`. A row without a test, or a
test without a row, fails `test_every_row_has_a_test_and_every_test_a_row`.

Each test sends the row's input as the driver would, through a real provider over its unix
socket (the test backend `testmem`, or the real KMS backend and credential plugins against the
loopback emulator of tests/auth_world.py), and asserts what the row says this provider does. What
the official Go provider v0.6.0 did is stated in the row, from its source.
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import ack_test_backend
import auth_world
import grpc
import pytest
from auth_world import AK_ENV, NO_ECS, OIDC_ENV, ROLE_CROSS, ROLE_ENV, AuthWorld
from grpc_health.v1 import health_pb2, health_pb2_grpc
from installed import SERVICES

from ack_secrets_provider.core.cli import build_parser
from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.commands.lint import (
    ERROR,
    WARNING,
    Report,
    installed_backends,
    lint_text,
)
from ack_secrets_provider.core.proto import service_pb2
from ack_secrets_provider.core.server.driver_client import (
    PodRef,
    RunningProvider,
    driver_attributes,
    files_of,
    running_provider,
    versions_of,
)
from ack_secrets_provider.core.settings import ProviderSettings

# the module-scoped auth world (KMS, STS, metadata, a fake Kubernetes API) and its reset
env, fresh = auth_world.env, auth_world.fresh

DOC = Path(__file__).resolve().parents[1] / "docs" / "migration.md"
SECTION = "## Every difference, input by input"
ROW_ID = re.compile(r"^\| `([a-z0-9-]+)` \|")

#: row id → the test proving it
ROWS: dict[str, str] = {}
F = TypeVar("F", bound=Callable[..., Any])


def row(row_id: str) -> Callable[[F], F]:
    def register(test: F) -> F:
        assert row_id not in ROWS, f"two tests claim row {row_id}"
        ROWS[row_id] = test.__name__
        return test
    return register


def documented_rows() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"docs/migration.md lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [m.group(1) for line in section.splitlines() if (m := ROW_ID.match(line))]


def test_every_row_has_a_test_and_every_test_a_row() -> None:
    documented = documented_rows()
    assert len(documented) == len(set(documented)), "a row id is used twice"
    assert sorted(set(documented) - set(ROWS)) == [], "rows without a test"
    assert sorted(set(ROWS) - set(documented)) == [], "tests without a row"


#: docs/migration.md "Defects fixed": each numbered row and the tests (file, function) proving it
DEFECT_TESTS: dict[int, tuple[tuple[str, str], ...]] = {
    1: (("test_e2e_backends.py", "test_each_object_uses_its_own_kms_endpoint"),
        ("test_e2e_backends.py", "test_arn_region_picks_the_endpoint")),
    2: (("test_e2e_backends.py", "test_throttling_succeeds_after_retries"),
        ("test_e2e_backends.py",
         "test_deadline_expiring_during_retries_fails_within_the_callers_timeout")),
    3: (("test_spec.py", "test_app_db_pass_is_fine_with_translation_false"),
        ("test_spec.py", "test_dot_dot_is_refused"),
        ("test_spec.py", "test_dot_dot_in_jmes_path_alias_is_refused")),
    4: (("test_spec_properties.py", "test_collisions_name_both_objects"),
        ("test_spec.py", "test_file_versus_directory_collides")),
    5: (("test_auth_e2e.py",
         "test_pod_identity_missing_piece_fails_without_using_another_identity"),),
    6: (("test_migration_differences.py", "test_pod_tokens_never_reach_a_file"),),
    7: (("test_server_e2e.py", "test_sigterm_style_stop_lets_in_flight_mounts_finish"),
        ("test_cli_serve.py", "test_a_taken_health_port_is_a_clear_start_up_error")),
    8: (("test_e2e_backends.py", "test_oos_single_reports_the_real_parameter_version"),
        ("test_e2e_backends.py", "test_oos_version_pin")),
    9: (("test_server_e2e.py", "test_objects_are_fetched_concurrently_but_bounded"),
        ("test_fetcher.py", "test_concurrent_identical_mounts_make_one_upstream_call"),
        ("test_e2e_backends.py", "test_oos_batched_in_ceil_n_over_10_calls")),
    10: (("test_health.py", "test_healthz_and_readyz_follow_the_grpc_server"),
         ("test_server_e2e.py", "test_version_reports_protocol_runtime_and_package_version")),
    11: (("test_network_guard.py", "test_resolving_a_cloud_host_fails_loudly"),
         ("test_auth_e2e.py", "test_pod_rrsa")),
}
DEFECTS = "## Defects fixed, and how you notice"
DEFECT_ROW = re.compile(r"^\| (\d+) \|")


def test_every_defect_row_names_tests_that_exist() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert DEFECTS in text, f"docs/migration.md lost its section {DEFECTS!r}"
    table = text.split(DEFECTS, 1)[1].split("\n## ", 1)[0]
    numbers = [int(m.group(1)) for line in table.splitlines() if (m := DEFECT_ROW.match(line))]
    assert numbers == sorted(DEFECT_TESTS)
    tests = Path(__file__).resolve().parent
    for file, function in (pair for pairs in DEFECT_TESTS.values() for pair in pairs):
        tree = ast.parse((tests / file).read_text(encoding="utf-8"))
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert function in defined, f"{file}::{function} is gone"


# --- helpers ----------------------------------------------------------------------------------

def objects(*lines: str) -> dict[str, str]:
    return {"objects": "\n".join(lines) + "\n"}


ONE = objects("- {objectName: a, objectType: testmem}")


@pytest.fixture(scope="module")
def mem(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    """A provider with the test backend only (no credentials, no network)."""
    with running_provider(ProviderSettings(fetch_concurrency=2),
                          tmp_path_factory.mktemp("mem")) as running:
        yield running


@pytest.fixture
def calls() -> Counter[str]:
    ack_test_backend.reset()
    return ack_test_backend.CALLS


def refused(provider: RunningProvider, attributes: str, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        provider.mount(attributes, **kwargs)
    return info.value


def invalid(provider: RunningProvider, attributes: str, fragment: str, **kwargs: Any) -> None:
    """The mount is refused with INVALID_ARGUMENT, and the message holds `fragment`."""
    error = refused(provider, attributes, **kwargs)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert fragment in error.details()


def lint_report(parameters: dict[str, str]) -> Report:
    """What `ack-secrets-provider lint` reports about a SecretProviderClass with `parameters`
    (with a region, so lint's warning about a region given by nothing stays out of the way)."""
    manifest = json.dumps({
        "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
        "metadata": {"name": "app"},
        "spec": {"provider": "alibabacloud", "parameters": {"region": "cn-hangzhou", **parameters}},
    })
    report = Report(problems=[])
    lint_text(manifest, "spc.yaml", installed_backends(), report)
    return report


def lint_warnings(parameters: dict[str, str]) -> list[str]:
    report = lint_report(parameters)
    assert [p.message for p in report.problems if p.severity == ERROR] == []
    return [p.message for p in report.problems if p.severity == WARNING]


def kms_parameters(name: str = "user/db", **extra: str) -> dict[str, str]:
    return {"objects": f"- {{objectName: {json.dumps(name)}, objectAlias: out}}\n", **extra}


@pytest.fixture
def kms(env: AuthWorld, tmp_path: Path) -> Iterator[RunningProvider]:
    """The real KMS backend against the emulator, as the AccessKey user (mode 5)."""
    with running_provider(env.settings({**AK_ENV, **NO_ECS}), tmp_path) as running:
        yield running


# --- what the driver sends ---------------------------------------------------------------------

@row("driver-permission")
def test_permission_forms(mem: RunningProvider) -> None:
    modes = {}
    for permission in ("420", "", '"420"', " 420 "):
        response = mem.mount(driver_attributes(ONE), permission=permission)
        modes[permission] = [item.mode for item in response.files]
    assert modes == {"420": [0o644], "": [0o644], '"420"': [0o644], " 420 ": [0o644]}
    for permission in ("null", "2541", "-1", "0644"):
        error = refused(mem, driver_attributes(ONE), permission=permission)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, permission
        assert "permission" in error.details()


@row("driver-target-path")
def test_no_target_path(mem: RunningProvider) -> None:
    response = mem.mount(driver_attributes(ONE), target_path="")
    assert files_of(response) == {"a": b"value-of-a"}


@row("driver-attribute-types")
def test_attribute_values_that_are_not_strings(mem: RunningProvider) -> None:
    attributes = json.loads(driver_attributes(ONE))
    attributes.update({"usePodServiceAccountToken": False, "region": None, "extra": 3})
    assert files_of(mem.mount(json.dumps(attributes))) == {"a": b"value-of-a"}
    # an attributes string that is empty is a mount of nothing
    assert list(mem.mount("").files) == []
    attributes["extra"] = {"nested": "map"}
    assert refused(mem, json.dumps(attributes)).code() == grpc.StatusCode.INVALID_ARGUMENT


@row("driver-secrets-json")
def test_secrets_that_are_not_json_fail_whatever_the_mode(
    env: AuthWorld, tmp_path: Path, mem: RunningProvider
) -> None:
    env.write_provider_token()
    settings = env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS})  # provider RRSA applies first
    with running_provider(settings, tmp_path) as provider:
        invalid(provider, driver_attributes(kms_parameters("provider/db")),
                "secrets field is not valid JSON", secrets="{not json")
    assert env.api("kms.GetSecretValue") == 0
    # values that are not strings are read as their JSON text
    response = mem.mount(driver_attributes(ONE), secrets=json.dumps({"other": 1, "on": True}))
    assert files_of(response) == {"a": b"value-of-a"}


def mount_with_versions(provider: RunningProvider, parameters: dict[str, str],
                        current: dict[str, str]) -> service_pb2.MountResponse:
    request = service_pb2.MountRequest(
        attributes=driver_attributes(parameters), secrets="null", permission="420",
        target_path="/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount",
        current_object_version=[service_pb2.ObjectVersion(id=k, version=v)
                                for k, v in current.items()],
    )
    response: service_pb2.MountResponse = provider.client.stub.Mount(request, timeout=30)
    return response


@row("driver-stale-versions")
def test_versions_of_removed_objects_are_not_echoed(mem: RunningProvider) -> None:
    response = mount_with_versions(mem, ONE, {"a": "v1", "removed-object": "v7"})
    assert versions_of(response) == {"a": "v1"}


@row("driver-pinned-version")
def test_a_pinned_current_version_is_fetched_again(
    mem: RunningProvider, calls: Counter[str]
) -> None:
    pinned = objects("- {objectName: a, objectType: testmem, objectVersion: '3'}")
    # the target path does not exist here: the Go provider would fail reading the file back
    response = mount_with_versions(mem, pinned, {"a": "v3"})
    assert files_of(response) == {"a": b"value-of-a"} and versions_of(response) == {"a": "v3"}
    assert calls["a"] == 1


@row("empty-objects")
def test_empty_objects_mount_nothing_with_a_placeholder_version(mem: RunningProvider) -> None:
    for parameters in ({"objects": ""}, {}, {"objects": "[]"}, {"objects": "~"}):
        response = mem.mount(driver_attributes(parameters))
        assert list(response.files) == []
        assert versions_of(response) == {"secretproviderclass": "empty"}
    assert lint_warnings({"objects": ""}) == [
        "parameter objects is empty: this SecretProviderClass mounts nothing"]


@row("error-codes")
def test_failures_carry_a_grpc_code(mem: RunningProvider) -> None:
    codes = {
        name: refused(mem, driver_attributes(
            objects(f"- {{objectName: {name}, objectType: testmem}}"))).code()
        for name in ("missing-x", "denied-x")
    }
    codes["bad-yaml"] = refused(mem, driver_attributes({"objects": "- ["})).code()
    assert codes == {"missing-x": grpc.StatusCode.NOT_FOUND,
                     "denied-x": grpc.StatusCode.PERMISSION_DENIED,
                     "bad-yaml": grpc.StatusCode.INVALID_ARGUMENT}


@row("health-service-names")
def test_health_check_knows_its_service_names(mem: RunningProvider) -> None:
    stub = health_pb2_grpc.HealthStub(mem.client.channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    for name in ("", "v1alpha1.CSIDriverProvider"):
        assert stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status == serving
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(health_pb2.HealthCheckRequest(service="some.Other"), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # Watch works (the official provider left it unimplemented): the first answer is the status
    watch = stub.Watch(health_pb2.HealthCheckRequest(service="v1alpha1.CSIDriverProvider"),
                       timeout=5)
    assert next(watch).status == serving
    watch.cancel()


# --- the objects YAML --------------------------------------------------------------------------

@row("yaml-duplicate-field")
def test_a_field_written_twice_is_refused(mem: RunningProvider) -> None:
    for second in ("objectName: b", "objectname: b"):
        invalid(mem, driver_attributes(
            objects("- objectName: a", f"  {second}", "  objectType: testmem")), "twice")


@row("yaml-null-entry")
def test_an_empty_list_entry_is_refused(mem: RunningProvider) -> None:
    for text in ("- ~\n", "-\n- {objectName: a, objectType: testmem}\n"):
        invalid(mem, driver_attributes({"objects": text}),
                "object #1 in parameter objects must be a map")
    assert mem.version().runtime_version  # still serving


@row("yaml-multi-document")
def test_a_second_yaml_document_is_refused(mem: RunningProvider) -> None:
    invalid(mem, driver_attributes(objects(
        "- {objectName: a, objectType: testmem}", "---", "- {objectName: b, objectType: testmem}",
    )), "second '---'")


@row("yaml-scalars")
def test_scalars_keep_their_text(mem: RunningProvider) -> None:
    response = mem.mount(driver_attributes(objects(
        "- {objectName: a, objectType: testmem, objectAlias: 0755}",
        "- {objectName: b, objectType: testmem, objectAlias: no}",
        "- {objectName: c, objectType: testmem, objectVersion: 1.10}",
    )))
    assert versions_of(response) == {"0755": "v1", "no": "v1", "c": "v1.10"}
    warnings = lint_warnings(objects(
        "- {objectName: a, objectAlias: 0755, jmesPath: [{path: u, objectAlias: no}]}",
        "- {objectName: c, objectVersion: 1.10, objectAlias: '0644'}",
    ))
    assert [re.sub(r", which.*", "", w) for w in warnings] == [
        "object #1: field objectAlias is the unquoted '0755'",
        "object #1, jmesPath entry #1: field objectAlias is the unquoted 'no'",
        "object #2: field objectVersion is the unquoted '1.10'",
    ]
    assert "read as '493'" in warnings[0] and "read as '1.1'" in warnings[2]


def test_the_unknown_field_message_the_page_shows_is_the_real_one() -> None:
    """The page quotes the whole message for a KMS object (the default type): the valid fields
    it lists are the ones the parser lists."""
    shown = re.search(r"```text\n(object #1 \('db-password'\): unknown field .*?)\n```",
                      DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert shown, "docs/migration.md no longer shows the unknown-field message"
    report = lint_report({"objects": '- objectName: "db-password"\n  objectVerison: "2"\n'})
    (problem,) = report.problems
    assert " ".join(shown.group(1).split()) == problem.message


@row("unknown-field")
def test_an_unknown_field_is_refused(mem: RunningProvider) -> None:
    error = refused(mem, driver_attributes(
        objects("- objectName: a", "  objectType: testmem", "  objectVerison: '2'")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown field 'objectVerison'; valid fields are objectName," in error.details()
    assert error.details().endswith("Did you mean 'objectVersion'?")
    # a field another installed backend declares (kms's kmsEndpoint) is ignored, as there
    response = mem.mount(driver_attributes(
        objects("- {objectName: a, objectType: testmem, kmsEndpoint: kms.example}")))
    assert files_of(response) == {"a": b"value-of-a"}


def test_field_names_ignore_case_as_in_the_official_provider(mem: RunningProvider) -> None:
    """Not a difference: the Go provider decodes through encoding/json, which ignores case."""
    response = mem.mount(driver_attributes(objects(
        "- objectname: a", "  OBJECTTYPE: testmem", "  objectalias: out")))
    assert files_of(response) == {"out": b"value-of-a"}


@row("jmespath-empty-string")
def test_jmespath_empty_string_means_no_entries(mem: RunningProvider) -> None:
    response = mem.mount(driver_attributes(
        objects("- objectName: a", "  objectType: testmem", "  jmesPath: ''")))
    assert files_of(response) == {"a": b"value-of-a"}


@row("jmespath-non-string")
def test_jmespath_results_that_are_not_strings_are_written_as_json(mem: RunningProvider) -> None:
    response = mem.mount(driver_attributes(objects(
        "- objectName: json-a", "  objectType: testmem", "  jmesPath:",
        "  - {path: nested.port, objectAlias: port}",
        "  - {path: nested, objectAlias: nested}",
        "  - {path: 'length(username) > `3`', objectAlias: long}",
    )))
    files = files_of(response)
    assert (files["port"], files["nested"], files["long"]) == (b"5432", b'{"port":5432}', b"true")


@row("jmespath-syntax")
def test_a_bad_jmespath_expression_is_refused_before_any_fetch(
    mem: RunningProvider, calls: Counter[str]
) -> None:
    invalid(mem, driver_attributes(objects(
        "- objectName: json-a", "  objectType: testmem", "  jmesPath:",
        "  - {path: 'a.[', objectAlias: x}")), "not a valid JMESPath expression")
    assert calls["json-a"] == 0


@row("path-translation-characters")
def test_path_translation_characters(mem: RunningProvider) -> None:
    nested = objects("- {objectName: a/b, objectType: testmem}")
    response = mem.mount(driver_attributes({**nested, "pathTranslation": "\u2014"}))
    assert files_of(response) == {"a\u2014b": b"value-of-a/b"}
    for character in ("/", " ", "\\"):
        invalid(mem, driver_attributes({**nested, "pathTranslation": character}), "pathTranslation")


@row("use-pod-token-values")
def test_use_pod_token_values(kms: RunningProvider, env: AuthWorld) -> None:
    # "True" means the pod's identity here: no pod token, so the mount fails instead of using
    # the provider's identity as the official provider did
    error = refused(kms, driver_attributes(kms_parameters(usePodServiceAccountToken="True")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    for value in ("yes", "1"):
        invalid(kms, driver_attributes(kms_parameters(usePodServiceAccountToken=value)),
                'set it to "true" or "false"')
    assert env.api("kms.GetSecretValue") == 0
    assert lint_warnings(kms_parameters(usePodServiceAccountToken="True"))[0].startswith(
        "parameter usePodServiceAccountToken is 'True': this provider uses the pod's own identity")
    assert lint_warnings(kms_parameters(usePodServiceAccountToken="true")) == []


@row("region-form")
def test_a_region_that_is_not_a_region_id_is_refused(kms: RunningProvider) -> None:
    invalid(kms, driver_attributes(kms_parameters(region="cn_hangzhou")), "is not a region id")


@row("object-name-spaces")
def test_an_object_name_with_spaces_is_refused(kms: RunningProvider) -> None:
    invalid(kms, driver_attributes(kms_parameters(" user/db")), "leading or trailing spaces")


@row("kms-endpoint-form")
def test_a_kms_endpoint_with_a_scheme_is_refused(kms: RunningProvider) -> None:
    invalid(kms, driver_attributes(objects(
        "- {objectName: user/db, kmsEndpoint: 'https://kms-vpc.cn-hangzhou.aliyuncs.com'}")),
        "must be a host name without a scheme; write 'kms-vpc.cn-hangzhou.aliyuncs.com'")


@row("endpoint-allow-list")
def test_an_endpoint_outside_the_allowed_domains_is_refused(tmp_path: Path) -> None:
    # no endpoint override: the host is what the pod wrote, and nothing may be dialled
    settings = ProviderSettings(region="cn-hangzhou", environ={**AK_ENV, **NO_ECS})
    with running_provider(settings, tmp_path) as provider:
        invalid(provider, driver_attributes(objects(
            "- {objectName: user/db, kmsEndpoint: kms.attacker.example}")),
            "is not an allowed endpoint")


@row("oos-version-label")
def test_object_version_label_on_oos_is_refused(kms: RunningProvider) -> None:
    invalid(kms, driver_attributes(objects(
        "- {objectName: app-token, objectType: oos, objectVersionLabel: ACSCurrent}")),
        "objectVersionLabel")


@row("arn-forms")
def test_arns_must_name_a_secret_in_a_region(kms: RunningProvider, env: AuthWorld) -> None:
    for arn in ("acs:kms:cn-hangzhou:123456789012:key/k-1",
                "acs:kms::123456789012:secret/user/db",
                "acs:kms:cn-hangzhou:123456789012:user/db"):
        invalid(kms, driver_attributes(kms_parameters(arn)), "field objectName")
    assert env.api("kms.GetSecretValue") == 0


# --- credentials -------------------------------------------------------------------------------

@row("credentials-half-configured")
def test_half_configured_credentials_fail_instead_of_falling_through(
    env: AuthWorld, tmp_path: Path
) -> None:
    halves = [
        ({"ACCESS_KEY_ID": AK_ENV["ACCESS_KEY_ID"]}, "SECRET_ACCESS_KEY", None),
        ({"ALICLOUD_ACCOUNT_ID": "1234567890", **ROLE_ENV}, "ALICLOUD_CLUSTER_ID", None),
        ({}, "access_secret", {"access_key": "LTAIonlyhalf00001"}),
    ]
    for environ, missing, secrets in halves:
        with running_provider(env.settings(environ), tmp_path / missing) as provider:
            error = refused(provider, driver_attributes(kms_parameters("node/db")),
                            secrets=json.dumps(secrets) if secrets else "null")
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, missing
        assert missing in error.details()
    # the node's RAM role (what the official provider fell through to) was never asked
    assert env.counters()["by_api"] == {}


@row("credentials-session-expiration")
def test_a_session_expiration_that_is_not_a_number_is_refused(
    env: AuthWorld, tmp_path: Path
) -> None:
    environ = {**AK_ENV, **ROLE_ENV, **NO_ECS, "ALICLOUD_ROLE_SESSION_EXPIRATION": "1h"}
    with running_provider(env.settings(environ), tmp_path) as provider:
        error = refused(provider, driver_attributes(kms_parameters("provider/db")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ALICLOUD_ROLE_SESSION_EXPIRATION" in error.details()


@row("credentials-session-names")
def test_role_session_names(env: AuthWorld, tmp_path: Path) -> None:
    env.write_provider_token()
    # ALICLOUD_ROLE_SESSION_NAME names the provider's own sessions only
    for named in (None, "ops-provider"):
        environ = {**ROLE_ENV, **OIDC_ENV, **NO_ECS}
        if named:
            environ["ALICLOUD_ROLE_SESSION_NAME"] = named
        env.sts.issued.clear()
        with running_provider(env.settings(environ), tmp_path / str(named)) as provider:
            provider.mount(driver_attributes(objects(
                "- {objectName: provider/db, objectAlias: own}",
                f"- {{objectName: cross/db, objectAlias: cross, crossAccountRoleArn: "
                f"'{ROLE_CROSS}'}}",
            )))
            pod = PodRef(name="app-a-0", namespace="team-a", service_account="app-a")
            token = env.token("team-a", "app-a")
            provider.mount(driver_attributes(
                kms_parameters("app-a/db", usePodServiceAccountToken="true"), pod=pod,
                tokens={"sts.aliyuncs.com": token}))
        sessions = {role: session for _call, role, session in env.sts.issued}
        assert sessions == {
            auth_world.ROLE_PROVIDER: named or "csi-secrets-store-provider-alibaba",
            ROLE_CROSS: "csi-secrets-store-cross-account",
            auth_world.ROLE_A: "ack-team-a-app-a",
        }, named


def test_pod_tokens_never_reach_a_file(
    env: AuthWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 6: the Go provider wrote each pod's token to a temp file it never deleted."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    pod = PodRef(name="app-a-0", namespace="team-a", service_account="app-a")
    with running_provider(env.settings({**OIDC_ENV, **NO_ECS}), tmp_path / "sock") as provider:
        response = provider.mount(driver_attributes(
            kms_parameters("app-a/db", usePodServiceAccountToken="true"), pod=pod,
            tokens={"sts.aliyuncs.com": env.token("team-a", "app-a")}))
    assert files_of(response) == {"out": b"pw-a"}
    assert list(scratch.iterdir()) == []


@row("credentials-whitespace")
def test_credentials_with_surrounding_whitespace_are_trimmed(
    env: AuthWorld, tmp_path: Path
) -> None:
    # a Secret made with `kubectl create secret --from-file` keeps the file's final newline
    secrets = {"access_key": f"{auth_world.NPS_KEY}\n",
               "access_secret": f"{auth_world.NPS_SECRET}\n"}
    environ = {"ACCESS_KEY_ID": f" {auth_world.USER_KEY}",
               "SECRET_ACCESS_KEY": f"{auth_world.USER_SECRET}\n",
               **ROLE_ENV, **NO_ECS, "ALICLOUD_ROLE_SESSION_NAME": "team a/app"}
    with running_provider(env.settings(environ), tmp_path) as provider:
        response = provider.mount(driver_attributes(kms_parameters("provider/db")))
    assert files_of(response) == {"out": b"pw-provider"}
    assert env.sts.issued[-1][2] == "team-a-app"  # STS refuses spaces and slashes
    with running_provider(env.settings(NO_ECS), tmp_path / "nps") as provider:
        response = provider.mount(driver_attributes(kms_parameters("shared/db")),
                                  secrets=json.dumps(secrets))
    assert files_of(response) == {"out": b"pw-shared"}


@row("credentials-sts-endpoint")
def test_sts_calls_go_to_the_regional_vpc_endpoint(env: AuthWorld, tmp_path: Path) -> None:
    env.write_provider_token()
    sts_url = env.base.endpoint_overrides.by_service["sts"]
    kms_url = env.base.endpoint_overrides.by_service["kms"]
    only_vpc = EndpointOverrides.parse([f"kms={kms_url}",
                                        f"sts-vpc.cn-hangzhou.aliyuncs.com={sts_url}"], SERVICES)
    settings = env.settings({**ROLE_ENV, **OIDC_ENV, **NO_ECS}, endpoint_overrides=only_vpc)
    with running_provider(settings, tmp_path) as provider:
        files = files_of(provider.mount(driver_attributes(kms_parameters("provider/db"))))
    assert files == {"out": b"pw-provider"}
    assert env.api("sts.AssumeRoleWithOIDC") == 1


# --- the process -------------------------------------------------------------------------------

@row("flag-provider-volume")
def test_default_provider_volume_is_the_drivers() -> None:
    args = build_parser("serve").parse_args(["serve"])
    assert args.provider_volume == "/var/run/secrets-store-csi-providers"


@row("flag-klog")
def test_klog_flags_other_than_v_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser("serve")
    assert parser.parse_args(["serve", "-v", "4"]).verbosity == 4
    for flag in ("--logtostderr=true", "--vmodule=server=5"):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(["serve", flag])
        assert info.value.code == 2
        assert "unrecognized arguments" in capsys.readouterr().err


@row("socket-in-use")
def test_a_socket_another_provider_serves_is_not_stolen(tmp_path: Path) -> None:
    with running_provider(ProviderSettings(), tmp_path) as first:
        with (pytest.raises(RuntimeError, match="already serving"),
              running_provider(ProviderSettings(), tmp_path)):
            pass  # pragma: no cover - the second provider must not start
        assert first.version().runtime_version  # the first still serves its socket
    (tmp_path / "alibabacloud.sock").write_text("not a socket")
    with (pytest.raises(RuntimeError, match="is not a socket"),
          running_provider(ProviderSettings(), tmp_path)):
        pass  # pragma: no cover


# --- lint ---------------------------------------------------------------------------------------

REFUSED_BY_LINT = {
    "yaml-duplicate-field": objects("- objectName: a", "  objectname: b"),
    "yaml-null-entry": {"objects": "- ~\n"},
    "yaml-multi-document": objects("- objectName: a", "---", "- objectName: b"),
    "unknown-field": objects("- {objectName: a, objectVerison: '2'}"),
    "jmespath-syntax": objects("- {objectName: a, jmesPath: [{path: 'a.[', objectAlias: x}]}"),
    "path-translation-characters": {**objects("- objectName: a/b"), "pathTranslation": "/"},
    "use-pod-token-values": {**objects("- objectName: a"), "usePodServiceAccountToken": "yes"},
    "region-form": {**objects("- objectName: a"), "region": "cn_hangzhou"},
    "object-name-spaces": objects("- {objectName: ' a'}"),
    "kms-endpoint-form": objects("- {objectName: a, kmsEndpoint: 'https://kms.aliyuncs.com'}"),
    "oos-version-label": objects("- {objectName: a, objectType: oos, objectVersionLabel: x}"),
    "arn-forms": objects("- {objectName: 'acs:kms:cn-hangzhou:123456789012:key/k-1'}"),
}


@pytest.mark.parametrize("row_id", sorted(REFUSED_BY_LINT))
def test_lint_reports_what_the_provider_refuses(row_id: str) -> None:
    """docs/migration.md: `lint` reports each refused input of the objects table as an error."""
    assert row_id in ROWS
    report = lint_report(REFUSED_BY_LINT[row_id])
    assert report.count(ERROR) >= 1, report.problems
