"""Example tests of SecretProviderClass parsing: what the driver really sends, and every common
mistake from compat.md refused with a message naming the object, the field and the fix."""

from __future__ import annotations

import json

import pytest

from ack_secrets_provider.core.errors import InvalidArgument
from ack_secrets_provider.core.mount.paths import PathTranslation
from ack_secrets_provider.core.mount.spec import (
    MountRequest,
    ObjectSpec,
    ObjectTypes,
    parse_mount_request,
)

#: two installed backends, each declaring an endpoint field of its own, the first the default
TYPES = ObjectTypes(fields={"kms": {"kmsEndpoint"}, "oos": {"oosEndpoint"}}, default="kms")


def parse(objects: str, types: ObjectTypes = TYPES, **parameters: str) -> MountRequest:
    attributes = json.dumps({"objects": objects, **parameters})
    return parse_mount_request(attributes, "null", '"420"', types=types)


def refused(objects: str, types: ObjectTypes = TYPES, **parameters: str) -> str:
    with pytest.raises(InvalidArgument) as caught:
        parse(objects, types, **parameters)
    return str(caught.value)


# --- what driver v1.6 sends ---------------------------------------------------------------------

DRIVER_ATTRIBUTES = {
    "secretProviderClass": "app-secrets",
    "csi.storage.k8s.io/pod.name": "app-7d4b9c-xk2p",
    "csi.storage.k8s.io/pod.namespace": "shop",
    "csi.storage.k8s.io/pod.uid": "9a0c1e5e-1d2b-4f7a-8a51-0c6f2b1e9d33",
    "csi.storage.k8s.io/serviceAccount.name": "shop-api",
    "csi.storage.k8s.io/ephemeral": "false",
    "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
        {
            "sts.aliyuncs.com": {
                "token": "eyJ.fake.jwt",
                "expirationTimestamp": "2026-07-01T10:00:00Z",
            }
        }
    ),
    "region": "cn-hangzhou",
    "usePodServiceAccountToken": "true",
    "objects": (
        '- objectName: "db-password"\n'
        "  objectType: kms\n"
        '- objectName: "acs:kms:cn-hangzhou:1234567890:secret/api-key"\n'
        "  objectAlias: api-key\n"
        "- objectName: app/config\n"
        "  objectType: oos\n"
        '  objectVersion: "3"\n'
        "  jmesPath:\n"
        "    - path: db.user\n"
        "      objectAlias: db-user\n"
    ),
}


def test_the_drivers_real_request_parses() -> None:
    request = parse_mount_request(json.dumps(DRIVER_ATTRIBUTES), "null", '"420"', types=TYPES)
    assert request.default_permission == 0o644
    assert request.region == "cn-hangzhou"
    assert request.use_pod_identity is True
    assert request.pod.namespace == "shop" and request.pod.name == "app-7d4b9c-xk2p"
    assert request.pod.service_account == "shop-api"
    assert request.secret_provider_class == "app-secrets"
    assert request.secrets == {}
    assert [o.file_name for o in request.objects] == ["db-password", "api-key", "app_config"]
    assert request.objects[2].object_type == "oos" and request.objects[2].object_version == "3"
    assert request.objects[2].jmes_path[0].file_name == "db-user"
    token = request.service_account_token("sts.aliyuncs.com")
    assert token is not None and token.token == "eyJ.fake.jwt"
    assert "eyJ" not in repr(request)


def test_sync_controller_request_without_pod_parses() -> None:
    request = parse_mount_request(json.dumps({"objects": "- objectName: a"}), "", "", types=TYPES)
    assert request.pod.describe() == "(no pod)"
    assert request.default_permission == 0o644


@pytest.mark.parametrize(
    "secrets", ["null", "", " null ", '{"access_key": "AK", "access_secret": "S"}']
)
def test_secrets_forms(secrets: str) -> None:
    request = parse_mount_request(json.dumps({"objects": ""}), secrets, '"420"')
    assert request.objects == ()
    assert dict(request.secrets) in ({}, {"access_key": "AK", "access_secret": "S"})


@pytest.mark.parametrize(
    ("permission", "mode"), [('"420"', 0o644), ("420", 0o644), ('"256"', 0o400)]
)
def test_driver_permission(permission: str, mode: int) -> None:
    request = parse_mount_request("{}", "null", permission)
    assert request.default_permission == mode


def test_bad_driver_permission_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="permission .* is not a decimal file mode"):
        parse_mount_request("{}", "null", '"0644"')


def test_attributes_that_are_not_json_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="attributes field is not valid JSON"):
        parse_mount_request("{objects: x}", "null", '"420"')


# --- parameters ---------------------------------------------------------------------------------


def test_app_db_pass_is_fine_with_translation_false() -> None:
    request = parse("- objectName: app/db/pass", pathTranslation="False")
    assert request.objects[0].file_name == "app/db/pass"
    assert request.path_translation == PathTranslation(None)


def test_default_translation_is_underscore() -> None:
    assert parse("- objectName: app/db/pass").objects[0].file_name == "app_db_pass"
    assert parse("- objectName: /app/db", pathTranslation="-").objects[0].file_name == "-app-db"
    assert parse("- objectName: /app/db", pathTranslation="FALSE").objects[0].file_name == "app/db"


@pytest.mark.parametrize("value", ["__", "/", " ", "no", "\\"])
def test_bad_path_translation(value: str) -> None:
    message = refused("- objectName: a", pathTranslation=value)
    assert message.startswith("parameter pathTranslation")
    assert '"False"' in message or '"_"' in message


@pytest.mark.parametrize("region", ["cn-hangzhou", "ap-southeast-1", "cn-shanghai-finance-1"])
def test_region_forms(region: str) -> None:
    assert parse("", region=region).region == region


@pytest.mark.parametrize(
    "region", ["cn_hangzhou", "Hangzhou", "cn-hangzhou\n", "cn-hangzhou ", "-"]
)
def test_bad_region(region: str) -> None:
    message = refused("", region=region)
    assert "parameter region" in message and "cn-hangzhou" in message


def test_default_region_is_used_and_checked() -> None:
    attributes = json.dumps({"objects": ""})
    assert parse_mount_request(attributes, "null", "", default_region="cn-beijing").region == (
        "cn-beijing"
    )
    assert parse("", region="").region is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("TRUE", True), (" true ", True), ("false", False),
     ("FALSE", False), ("", False), ("  ", False)],
)
def test_use_pod_service_account_token(value: str, expected: bool) -> None:
    assert parse("", usePodServiceAccountToken=value).use_pod_identity is expected


def test_use_pod_service_account_token_absent_is_false() -> None:
    assert parse("").use_pod_identity is False


@pytest.mark.parametrize("value", ["yes", "1", "on", "ture"])
def test_bad_use_pod_service_account_token(value: str) -> None:
    message = refused("", usePodServiceAccountToken=value)
    assert "usePodServiceAccountToken" in message and '"true" or "false"' in message


# --- objects: the mistakes of compat.md -----------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("objectAlais", "objectAlias"),
        ("objectTyp", "objectType"),
        ("kmsEndpont", "kmsEndpoint"),
        ("jmesPaths", "jmesPath"),
        ("objectVersionLable", "objectVersionLabel"),
    ],
)
def test_unknown_field_suggests_the_closest(typo: str, suggestion: str) -> None:
    message = refused(f"- objectName: db\n  {typo}: x\n")
    assert f"unknown field {typo!r}" in message
    assert f"Did you mean {suggestion!r}?" in message
    assert "valid fields are objectName, objectType" in message
    assert message.startswith("object #1")


def test_field_names_in_another_letter_case_are_accepted_as_the_go_provider_does() -> None:
    # The existing provider decodes through JSON, whose field matching ignores case.
    request = parse_mount_request(
        json.dumps({"objects": "- objectname: db\n  OBJECTALIAS: x\n  jmespath:\n"
                               "  - PATH: a\n    objectalias: b\n"}), "null", '"420"', types=TYPES)
    spec = request.objects[0]
    assert (spec.object_name, spec.file_name) == ("db", "x")
    assert spec.jmes_path[0].file_name == "b"


def test_two_spellings_of_one_field_are_refused() -> None:
    message = refused("- objectName: db\n  objectname: other\n")
    assert "objectName is given twice" in message


def test_unknown_jmes_path_field_suggests_the_closest() -> None:
    message = refused("- objectName: db\n  jmesPath:\n  - path: a\n    objectAlas: b\n")
    assert message.startswith("object #1 ('db'), jmesPath entry #1: unknown field 'objectAlas'")
    assert "Did you mean 'objectAlias'?" in message


def test_unknown_object_type_lists_installed_types() -> None:
    message = refused("- objectName: db\n- objectName: x\n  objectType: secretsmanager\n")
    assert message.startswith("object #2 ('x'): field objectType 'secretsmanager'")
    assert "installed types: kms, oos" in message


def test_object_type_case_suggests_the_installed_one() -> None:
    assert "Did you mean 'kms'?" in refused("- objectName: db\n  objectType: KMS\n")


def test_unknown_object_type_passes_when_types_are_not_checked() -> None:
    attributes = json.dumps({"objects": "- objectName: db\n  objectType: vault"})
    assert parse_mount_request(attributes, "null", "").objects[0].object_type == "vault"


def test_the_default_object_type_is_an_input_not_a_constant() -> None:
    vault = ObjectTypes(fields={"vault": set(), "kms": set()}, default="vault")
    assert parse("- objectName: db\n", vault).objects[0].object_type == "vault"
    no_default = ObjectTypes(fields={"kms": set()})
    message = str(pytest.raises(InvalidArgument, parse, "- objectName: db\n", no_default).value)
    assert message.startswith("object #1 ('db'): field objectType is required")
    assert "installed types: kms" in message


def test_a_backend_declares_fields_of_its_own() -> None:
    vault = ObjectTypes(fields={"vault": {"vaultMount", "vaultRole"}}, default="vault")
    spec = parse("- objectName: db\n  vaultMount: secret/\n  vaultrole: app\n", vault).objects[0]
    assert spec.fields == {"vaultMount": "secret/", "vaultRole": "app"}  # any letter case
    assert spec.warnings == ()
    message = str(pytest.raises(InvalidArgument, parse, "- objectName: db\n  vaultMont: x\n",
                                vault).value)
    assert "unknown field 'vaultMont'" in message and "Did you mean 'vaultMount'?" in message


def test_a_field_of_another_installed_backend_is_ignored_with_a_warning() -> None:
    spec = parse("- objectName: p\n  objectType: oos\n  kmsEndpoint: kms.example.com\n"
                 "  oosEndpoint: oos.cn-hangzhou.aliyuncs.com\n").objects[0]
    assert spec.fields == {"oosEndpoint": "oos.cn-hangzhou.aliyuncs.com"}
    assert spec.warnings == (
        "object #1 ('p'): field kmsEndpoint belongs to objectType kms and is ignored for oos "
        "objects; remove it (or set objectType: kms)",
    )


def test_a_field_no_installed_backend_declares_is_refused() -> None:
    message = refused("- objectName: p\n  objectType: oos\n  vaultRole: app\n")
    assert message.startswith("object #1 ('p'): unknown field 'vaultRole'")
    assert "oosEndpoint (objectType oos)" in message
    # the same field is refused when the backend that declared it is not installed
    message = refused("- objectName: db\n  oosEndpoint: oos.cn-hangzhou.aliyuncs.com\n",
                      ObjectTypes(fields={"kms": {"kmsEndpoint"}}, default="kms"))
    assert "unknown field 'oosEndpoint'" in message


def test_missing_object_name() -> None:
    message = refused("- objectAlias: db\n")
    assert message.startswith("object #1: field objectName is required")
    assert 'objectName: "db-password"' in message


def test_object_name_with_spaces() -> None:
    message = refused('- objectName: " db"\n')
    assert "object #1 (' db'): field objectName" in message and "remove them" in message


@pytest.mark.parametrize(
    ("objects", "field"),
    [
        ("- objectName: ..\n", "objectName"),
        ("- objectName: db\n  objectAlias: ../etc/passwd\n", "objectAlias"),
        ("- objectName: db\n  objectAlias: ..data\n", "objectAlias"),
        ("- objectName: db\n  objectAlias: .\n", "objectAlias"),
    ],
)
@pytest.mark.parametrize("translation", ["", "False"])
def test_dot_dot_is_refused(objects: str, field: str, translation: str) -> None:
    message = refused(objects, pathTranslation=translation)
    assert message.startswith("object #1 (")
    assert f"field {field}" in message and "driver would refuse" in message
    assert "set objectAlias to a plain file name" in message


def test_dot_dot_inside_a_path_is_refused_only_when_it_stays_a_directory() -> None:
    assert parse("- objectName: a/../b\n").objects[0].file_name == "a_.._b"
    message = refused("- objectName: a/../b\n", pathTranslation="False")
    assert "must not contain a '..' element" in message


def test_dot_dot_in_jmes_path_alias_is_refused() -> None:
    message = refused(
        "- objectName: db\n  jmesPath:\n  - path: a\n    objectAlias: ../x\n",
        pathTranslation="False",
    )
    assert message.startswith("object #1 ('db'), jmesPath entry #1: field objectAlias '../x'")


def test_long_multibyte_alias_is_refused_in_bytes() -> None:
    message = refused(f"- objectName: db\n  objectAlias: {'密' * 90}\n")
    assert "longer than 255 bytes" in message


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ("- objectAlias: user", "path"),
        ("- path: user", "objectAlias"),
        ('- path: ""\n    objectAlias: user', "path"),
    ],
)
def test_jmes_path_needs_path_and_alias(entry: str, field: str) -> None:
    message = refused(f"- objectName: db\n  jmesPath:\n  {entry}\n")
    assert message.startswith(f"object #1 ('db'), jmesPath entry #1: field {field} is required")
    assert "for example" in message


def test_jmes_path_must_be_a_list() -> None:
    message = refused("- objectName: db\n  jmesPath: user\n")
    assert "object #1 ('db'): field jmesPath must be a list" in message


@pytest.mark.parametrize("expression", ["user[", "a..b", "foo bar", "`{", "[?a==]"])
def test_invalid_jmes_path_syntax_is_refused(expression: str) -> None:
    message = refused(
        f"- objectName: db\n  jmesPath:\n  - path: {json.dumps(expression)}\n    objectAlias: u\n"
    )
    assert message.startswith(f"object #1 ('db'), jmesPath entry #1: field path {expression!r}")
    assert "is not a valid JMESPath expression" in message and "jmespath.org" in message


def test_valid_jmes_path_expressions() -> None:
    request = parse(
        "- objectName: db\n  jmesPath:\n"
        '  - {path: "credentials.username", objectAlias: user}\n'
        '  - {path: "hosts[0]", objectAlias: host, filePermission: "0400"}\n'
    )
    entries = request.objects[0].jmes_path
    assert [(e.path, e.file_name, e.file_permission) for e in entries] == [
        ("credentials.username", "user", None),
        ("hosts[0]", "host", 0o400),
    ]


def test_same_name_in_kms_and_oos_collides() -> None:
    message = refused("- objectName: db\n- objectName: db\n  objectType: oos\n")
    assert "object #2 (oos 'db')" in message and "object #1 (kms 'db')" in message
    assert "both write the file 'db'" in message and "objectAlias" in message


def test_alias_collides_with_translated_name() -> None:
    message = refused("- objectName: app/db\n- objectName: x\n  objectAlias: app_db\n")
    assert "object #2 (kms 'x')" in message and "object #1 (kms 'app/db')" in message


def test_jmes_path_alias_collides_with_another_objects_name() -> None:
    message = refused(
        "- objectName: user\n  objectType: oos\n"
        "- objectName: db\n  jmesPath:\n  - path: u\n    objectAlias: user\n"
    )
    assert "object #2 (kms 'db') jmesPath entry #1 ('u')" in message
    assert "object #1 (oos 'user')" in message


def test_file_versus_directory_collides() -> None:
    message = refused("- objectName: app\n- objectName: app/db\n", pathTranslation="False")
    assert "object #1 (kms 'app') writes the file 'app'" in message
    assert "object #2 (kms 'app/db') needs 'app' to be a directory" in message


def test_duplicate_field_is_refused() -> None:
    message = refused("- objectName: db\n  objectName: api\n")
    assert "field 'objectName' appears twice" in message and "'- '" in message


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        ("objectName: db", "must be a YAML list"),
        ("- db-password", "object #1 in parameter objects"),
        ("- objectName: db\n objectType: oos", "not valid YAML at line 2"),
        ("- objectName: db\n  objectVersionLabel: [ACSCurrent]", "must be a single value"),
    ],
)
def test_shape_mistakes(objects: str, expected: str) -> None:
    message = refused(objects)
    assert expected in message
    assert "for example" in message or "such as" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("644", 'out of range: a mode is between 0000 and 0777 (did you mean "0644"?)'),
        ("rw-r--r--", "is not a file mode"),
        ("0o1000", "out of range"),
        ("-1", "not a file mode"),
    ],
)
def test_bad_file_permission(value: str, expected: str) -> None:
    message = refused(f"- objectName: db\n  filePermission: {json.dumps(value)}\n")
    assert message.startswith(f"object #1 ('db'): field filePermission {value!r}")
    assert expected in message


@pytest.mark.parametrize(
    ("value", "mode"), [("0440", 0o440), ("0o440", 0o440), ("288", 0o440), ("0", 0), ("511", 0o777)]
)
def test_file_permission_forms(value: str, mode: int) -> None:
    # written plain, as users do: YAML 1.1 would read 0440 as the number 288
    assert (
        parse(f"- objectName: db\n  filePermission: {value}\n").objects[0].file_permission == mode
    )


@pytest.mark.parametrize(
    "text", ["0755", "no", "yes", "on", "off", "1e3", "0x1F", "'~'", '"null"', "2024-01-01",
             "true"]
)
def test_yaml_look_alikes_stay_text(text: str) -> None:
    request = parse(
        f"- objectName: {text}\n  objectVersion: {text}\n  objectVersionLabel: {text}\n"
    )
    spec = request.objects[0]
    text = text.strip("'\"")  # a quoted null is the text null, as in YAML
    assert (spec.object_name, spec.object_version, spec.object_version_label) == (text,) * 3
    assert spec.file_name == text


def test_empty_objects_mean_an_empty_mount() -> None:
    assert parse("").objects == ()
    assert parse("   \n").objects == ()
    assert parse("[]").objects == ()
    assert parse_mount_request("{}", "null", '"420"').objects == ()  # the parameter absent


def test_all_fields_are_kept() -> None:
    spec = parse(
        "- objectName: db\n  objectType: kms\n  objectAlias: pw\n  objectVersion: v1\n"
        "  objectVersionLabel: ACSPrevious\n  kmsEndpoint: kms.cn-hangzhou.aliyuncs.com\n"
        '  crossAccountRoleArn: acs:ram::123:role/reader\n  filePermission: "0400"\n'
        "- objectName: p\n  objectType: oos\n  oosEndpoint: oos.cn-hangzhou.aliyuncs.com\n"
    ).objects
    assert (spec[0].object_alias, spec[0].object_version, spec[0].object_version_label) == (
        "pw",
        "v1",
        "ACSPrevious",
    )
    assert spec[0].fields == {"kmsEndpoint": "kms.cn-hangzhou.aliyuncs.com"}
    assert spec[0].cross_account_role_arn == "acs:ram::123:role/reader"
    assert spec[0].file_permission == 0o400
    assert spec[1].fields == {"oosEndpoint": "oos.cn-hangzhou.aliyuncs.com"}
    assert spec[0].describe() == "object #1 (kms 'db')"


def test_backend_validators_run_per_type() -> None:
    seen = []

    def validator(spec: ObjectSpec) -> None:
        seen.append(spec)
        raise InvalidArgument("object #2 (oos 'p'): field oosEndpoint is bad; fix it")

    types = ObjectTypes(fields=TYPES.fields, validators={"oos": validator}, default="kms")
    with pytest.raises(InvalidArgument, match="oosEndpoint is bad"):
        parse("- objectName: db\n- objectName: p\n  objectType: oos", types)
    assert len(seen) == 1


# --- YAML as the official provider reads it: null, merge keys ----------------------------------


@pytest.mark.parametrize("value", ["null", "~", "Null", "NULL", ""])
def test_a_null_object_name_is_refused_like_the_official_provider(value: str) -> None:
    message = refused(f"- objectName: db\n- objectName: {value}\n  objectAlias: x\n")
    assert message.startswith("object #2: field objectName is empty or null: the object name "
                              "must be specified")


def test_null_optional_fields_mean_unset() -> None:
    spec = parse("- objectName: db\n  objectAlias: ~\n  objectVersion: null\n"
                 "  jmesPath: ~\n").objects[0]
    assert (spec.file_name, spec.object_version, spec.jmes_path) == ("db", None, ())


def test_merge_keys_copy_the_named_map_and_written_fields_win() -> None:
    objects = parse(
        "- &base {objectName: db, objectAlias: one, filePermission: '0440'}\n"
        "- <<: *base\n  objectAlias: two\n"
    ).objects
    assert [(o.object_name, o.file_name, o.file_permission) for o in objects] == [
        ("db", "one", 0o440), ("db", "two", 0o440)]


def test_merge_keys_take_a_list_of_maps_earlier_maps_winning() -> None:
    objects = parse(
        "- &a {objectName: db, objectAlias: one}\n"
        "- &b {objectName: other, objectVersion: v2, objectAlias: b}\n"
        "- <<: [*a, *b]\n  objectAlias: three\n"
    ).objects
    last = objects[2]
    assert (last.object_name, last.object_version, last.file_name) == ("db", "v2", "three")


def test_a_quoted_merge_key_is_an_ordinary_field_name() -> None:
    assert "unknown field '<<'" in refused("- objectName: db\n  '<<': {objectAlias: x}\n")


@pytest.mark.parametrize(("text", "problem"), [
    ("- objectName: db\n  <<: plain\n", "a merge key '<<' must name a map or a list of maps"),
    ("- &a [*a]\n", "alias *a names no anchor defined before it"),
    ("- objectName: db\n---\n- objectName: db\n", "expected a single YAML document"),
])
def test_yaml_that_is_not_plain_data_is_refused_with_its_line(text: str, problem: str) -> None:
    message = refused(text)
    assert message.startswith("parameter objects, line ") and problem in message


# --- request limits: each refused with its flag ------------------------------------------------


def limited(text: str, **limits: int) -> str:
    from ack_secrets_provider.core.mount.limits import RequestLimits

    with pytest.raises(InvalidArgument) as caught:
        parse_mount_request(json.dumps({"objects": text}), "null", '"420"',
                            types=TYPES, limits=RequestLimits(**limits))
    return str(caught.value)


def test_every_limit_is_refused_naming_its_flag() -> None:
    two = "- objectName: a\n- objectName: b\n"
    assert "lists 2 objects, above the provider's limit of 1 (--max-objects)" in limited(
        two, objects=1)
    assert "is 32 bytes, above the provider's limit of 10 (--max-objects-bytes)" in limited(
        two, objects_bytes=10)
    entries = "- objectName: a\n  jmesPath:\n  - {path: x, objectAlias: x}\n" \
              "  - {path: y, objectAlias: y}\n"
    assert ("object #1: field jmesPath has 2 entries, above the provider's limit of 1 "
            "(--max-jmespath-entries)") in limited(entries, jmespath_entries=1)
    assert "more than 4 nodes" in limited(two, yaml_nodes=4)
    assert "(--max-objects-yaml-nodes)" in limited(two, yaml_nodes=4)
    assert ("object #1, jmesPath entry #1: field path is 1 characters, above the provider's "
            "limit of 0 (--max-jmespath-length)") in limited(entries, jmespath_length=0)
    assert "more than 2 deep" in limited(entries, yaml_depth=2)
    assert "(--max-objects-yaml-depth)" in limited(entries, yaml_depth=2)


def test_each_limit_refuses_before_the_work_it_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/security.md, Limits: the objects text is measured before it is parsed, objects and
    jmesPath entries are counted before any object is read, a path is measured before any
    expression is compiled."""
    import jmespath

    from ack_secrets_provider.core.mount.limits import RequestLimits

    read: list[ObjectSpec] = []
    compiled: list[str] = []
    monkeypatch.setattr(jmespath, "compile", compiled.append)
    types = ObjectTypes(fields=TYPES.fields, validators={"kms": read.append}, default="kms")

    def refused_by(text: str, problem: str, **limits: int) -> None:
        with pytest.raises(InvalidArgument) as caught:
            parse_mount_request(json.dumps({"objects": text}), "null", '"420"', types=types,
                                limits=RequestLimits(**limits))
        assert str(caught.value).startswith(problem), str(caught.value)

    # not YAML: parsing it would be refused for that instead
    refused_by("- {objectName: a\n", "parameter objects is 17 bytes, above", objects_bytes=10)
    entries = "- objectName: a\n  jmesPath:\n  - {path: x, objectAlias: x}\n" \
              "  - {path: y, objectAlias: y}\n- objectName: b\n"
    refused_by(entries, "parameter objects lists 2 objects, above", objects=1)
    refused_by(entries, "object #1: field jmesPath has 2 entries, above", jmespath_entries=1)
    refused_by(entries, "object #1, jmesPath entry #1: field path is 1 characters, above",
               jmespath_length=0)
    assert read == [] and compiled == []
    parse_mount_request(json.dumps({"objects": entries}), "null", '"420"', types=types)
    assert len(read) == 2 and compiled == ["x", "y"]  # the control: within the limits


def test_aliases_count_every_node_they_name_each_time() -> None:
    # the list, then a map of 2 scalars (3 nodes) behind the anchor; the alias counts 3 again
    text = "- &o {objectName: a}\n- *o\n"
    assert "more than 6 nodes" in limited(text, yaml_nodes=6)
    # (the two objects then collide on one file: only the count matters here)
    assert "more than" not in limited(text, yaml_nodes=7)


def test_flow_nesting_past_libyamls_own_bound_names_the_depth_flag() -> None:
    assert "(--max-objects-yaml-depth)" in refused("[" * 100_000)


# --- every problem, not only the first ----------------------------------------------------------


def test_problems_of_parameters_and_objects_are_reported_together() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse("- objectName: a\n  objectVerison: '1'\n- objectName: ' b'\n",
              region="cn_hangzhou", usePodServiceAccountToken="yes")
    problems = caught.value.problems
    assert problems[0].startswith("parameter region 'cn_hangzhou' is not a region id")
    assert problems[1].startswith("parameter usePodServiceAccountToken is 'yes'")
    assert problems[2].startswith("object #1 ('a'): unknown field 'objectVerison'")
    assert problems[3].startswith("object #2 (' b'): field objectName ' b' has leading")
    assert len(problems) == 4
    assert str(caught.value).startswith("4 problems: [1] parameter region 'cn_hangzhou'")


def test_a_combined_message_stays_bounded() -> None:
    """Forty bad objects: every problem is kept for lint, ten are spelt out for the driver."""
    objects = "".join(f"- {{objectName: o{n}, objectType: nope}}\n" for n in range(40))
    with pytest.raises(InvalidArgument) as caught:
        parse(objects)
    assert len(caught.value.problems) == 40
    message = str(caught.value)
    assert message.startswith("40 problems: [1] object #1 ('o0'): field objectType 'nope'")
    assert "[10] object #10 " in message and "[11]" not in message
    assert message.endswith("; and 30 more")
    assert len(message) < 40 * len(caught.value.problems[0]) / 3


@pytest.mark.parametrize(("objects", "field"), [
    ("- objectName: [a, b]\n  objectType: kms\n", "objectName"),
    ("- objectName: a\n  objectType: [kms]\n", "objectType"),
    ("- objectName: a\n  objectType: kms\n  jmesPath:\n    - {path: [u], objectAlias: user}\n",
     "path"),
    ("- objectName: a\n  objectType: kms\n  jmesPath:\n    - {path: u, objectAlias: {x: 1}}\n",
     "objectAlias"),
])
def test_a_required_field_refused_for_its_form_is_not_also_reported_missing(
    objects: str, field: str
) -> None:
    """One mistake, one problem: a list where a required field needs one value is reported as
    such, not a second time as a missing field."""
    with pytest.raises(InvalidArgument) as caught:
        parse(objects)
    (problem,) = caught.value.problems
    assert f"field {field} must be a single value" in problem
