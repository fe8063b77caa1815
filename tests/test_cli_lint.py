"""`ack-secrets-provider lint`: every problem of every document, with where it is, and the exit
status CI relies on. The checks are the provider's parser and the installed backends."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ack_secrets_provider.core.cli import main

GOOD = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: b}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: app-secrets}
spec:
  provider: alibabacloud
  parameters:
    region: cn-hangzhou
    usePodServiceAccountToken: "true"
    objects: |
      - objectName: "app/db-password"
        objectVersionLabel: ACSPrevious
      - objectName: "app-token"
        objectType: oos
        objectVersion: "2"
  secretObjects:
    - secretName: db
      type: Opaque
      data:
        - {objectName: app_db-password, key: password}
---
apiVersion: secrets-store.csi.x-k8s.io/v1alpha1
kind: SecretProviderClass
metadata: {name: old-api}
spec:
  provider: alibabacloud
  parameters:
    region: cn-shanghai
    objects: |
      - objectName: "x"
        objectType: testmem
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: other-cloud}
spec: {provider: azure, parameters: {objects: "not ours"}}
"""

BAD = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: many-mistakes}
spec:
  provider: alibabacloud
  parameters:
    usePodServiceAccountToken: true
    region: cn_hangzhou
    objets: "typo"
    objects: |
      - objectName: "db-password"
        objectType: kmss
      - objectName: "api-token"
        objectType: oos
        objectVersionLabel: ACSCurrent
      - objectNme: "x"
      - objectName: "fine"
---
apiVersion: secrets-store.csi.x-k8s.io/v2
kind: SecretProviderClass
metadata: {name: collide}
spec:
  provider: alibabacloud
  parameters:
    objects: |
      - {objectName: a, objectAlias: same}
      - {objectName: b, objectAlias: same}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: sync}
spec:
  provider: alibabacloud
  parameters:
    objects: |
      - objectName: "app/db-password"
  secretObjects:
    - secretName: db
      type: Opaque
      data:
        - {objectName: app/db-password, key: password}
"""


def lint_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["lint", "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_clean_multi_document_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    assert main(["lint", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: document 1 (settings): note: skipped: kind ConfigMap" in out
    assert f"{path}: document 4 (other-cloud): note: skipped: spec.provider is 'azure'" in out
    assert "checked 2 SecretProviderClasses: 0 errors, 0 warnings" in out
    assert "\x1b[" not in out  # captured output is not a terminal: no colours
    # docs/cli.md: "-q prints only errors and warnings": not the notes, not the summary
    assert main(["lint", "-q", str(path)]) == 0
    assert capsys.readouterr().out == ""


def test_every_problem_is_listed_with_where_it_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    code, report = lint_json(capsys, str(path))
    assert code == 1
    found = [(p["document"], p["name"], p["severity"], p["object"], p["field"])
             for p in report["problems"]]
    assert found == [
        (1, "many-mistakes", "error", None, "usePodServiceAccountToken"),
        (1, "many-mistakes", "error", None, "region"),
        (1, "many-mistakes", "error", 1, "objectType"),
        (1, "many-mistakes", "error", 2, "objectVersionLabel"),
        (1, "many-mistakes", "error", 3, "objectNme"),
        (1, "many-mistakes", "warning", None, "objets"),
        (2, "collide", "error", None, None),
        (2, "collide", "error", 2, None),
        (2, "collide", "warning", None, "region"),
        (3, "sync", "error", None, "objectName"),
        (3, "sync", "warning", None, "region"),
    ]
    messages = [p["message"] for p in report["problems"]]
    assert "quote the value such as usePodServiceAccountToken: \"true\"" in messages[0]
    assert "Did you mean 'kms'?" in messages[2]
    assert messages[4].startswith("object #3: unknown field 'objectNme'")
    assert "did you mean objects?" in messages[5]
    assert messages[6].startswith("apiVersion 'secrets-store.csi.x-k8s.io/v2'")
    assert "both write the file 'same'" in messages[7]
    assert messages[8].startswith("parameter region is not set and object(s) #1, #2 name no "
                                  "endpoint or ARN, so the provider's --region")
    assert "use one of the mounted file names: app_db-password" in messages[9]
    assert (report["checked"], report["errors"], report["warnings"]) == (3, 8, 3)


def test_text_output_names_file_document_and_object(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    assert main(["lint", "--quiet", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 11
    assert lines[2].startswith(f"{path}: document 1 (many-mistakes): error: object #1 "
                               "('db-password'): field objectType 'kmss'")


def test_stdin_and_several_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    monkeypatch.setattr("sys.stdin", io.StringIO(BAD))
    code, report = lint_json(capsys, str(good), "-")
    assert code == 1
    assert {p["file"] for p in report["problems"] if p["severity"] == "error"} == {"<stdin>"}
    assert report["checked"] == 5


def test_stdin_that_is_not_utf8_is_unreadable_as_a_file_is(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that is not UTF-8 read 'not UTF-8 text'; the same bytes on stdin raised
    UnicodeDecodeError (a traceback)."""
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"kind: \xff\n"),
                                                      encoding="utf-8"))
    code, report = lint_json(capsys, "-")
    assert code == 2
    assert report["problems"][0]["file"] == "<stdin>"
    assert report["problems"][0]["message"] == "not UTF-8 text"


def test_yaml_errors_and_unreadable_files(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(GOOD.split("---")[1] + "---\nkind: [unclosed\n")
    code, report = lint_json(capsys, str(broken))
    assert code == 1
    assert report["problems"][-1]["document"] == 2
    assert report["problems"][-1]["message"].startswith("not valid YAML at line")
    code, report = lint_json(capsys, str(tmp_path / "missing.yaml"))
    assert code == 2
    assert report["problems"][0]["message"] == "no such file"


def test_a_date_that_does_not_exist_is_not_a_crash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """PyYAML reads an unquoted 2024-02-30 as a date and raises ValueError (not a YAMLError);
    lint crashed with a traceback. In objects it is text, for this provider as for the official
    one (go-yaml keeps a timestamp it cannot read as text): no problem. Elsewhere in the manifest
    it is an error naming the document and the fix."""
    in_objects = tmp_path / "alias.yaml"
    alias = 'objectName: "x"\n        objectAlias: 2024-02-30'
    in_objects.write_text(GOOD.split("---")[2].replace('objectName: "x"', alias))
    code, report = lint_json(capsys, str(in_objects))
    assert (code, report["errors"], report["warnings"]) == (0, 0, 0)
    elsewhere = tmp_path / "annotation.yaml"
    elsewhere.write_text(GOOD.split("---")[2].replace("metadata: {name: old-api}",
                                                      "metadata: {name: old-api, annotations: "
                                                      "{rotated: 2024-02-30}}"))
    code, report = lint_json(capsys, str(elsewhere))
    assert code == 1
    assert report["problems"] == [{
        "file": str(elsewhere), "document": 1, "name": None, "severity": "error",
        "message": "not valid YAML: a value written as a date or time is not one (day is out of "
                   "range for month); quote it to keep it text",
        "object": None, "field": None, "item": None}]


def test_yaml_nested_past_the_parsers_stack_is_an_error_not_a_crash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """PyYAML recurses once per level: a manifest nested thousands of levels deep, or such an
    objects list read leniently after a field given twice, raised RecursionError (a
    traceback)."""
    deep = "[" * 3000 + "]" * 3000
    manifest = tmp_path / "deep.yaml"
    manifest.write_text(GOOD.split("---")[2].replace(
        "metadata: {name: old-api}", f"metadata: {{name: old-api, annotations: {{a: {deep}}}}}"))
    code, report = lint_json(capsys, str(manifest))
    assert code == 1
    assert [p["message"] for p in report["problems"]] == [
        "not valid YAML: nested too deeply to be read; check what wrote this file"]
    objects = tmp_path / "deep-objects.yaml"
    duplicated = f'objectType: testmem\n        objectType: testmem\n        objectAlias: {deep}'
    objects.write_text(GOOD.split("---")[2].replace("objectType: testmem", duplicated))
    code, report = lint_json(capsys, str(objects))
    assert code == 1
    assert "appears twice in the same object" in report["problems"][0]["message"]


def test_objects_yaml_errors_come_from_the_parser(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dup.yaml"
    duplicated = ('objectType: testmem\n        objectName: "y"\n'
                  '      - {objectName: z, objectType: nope}')
    path.write_text(GOOD.split("---")[2].replace("objectType: testmem", duplicated))
    code, report = lint_json(capsys, str(path))
    assert code == 1
    messages = [p["message"] for p in report["problems"]]
    assert "appears twice in the same object" in messages[0]
    assert messages[1].startswith("object #2 ('z'): field objectType 'nope'")


def test_kubectl_list_output_is_linted_item_by_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kubectl get secretproviderclass -o yaml` prints a `kind: List`; each item is checked."""
    manifest = tmp_path / "list.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: secrets-store.csi.x-k8s.io/v1\n  kind: SecretProviderClass\n"
        "  metadata: {name: good}\n  spec:\n    provider: alibabacloud\n"
        "    parameters:\n      region: cn-hangzhou\n      objects: |\n        - objectName: db\n"
        "- apiVersion: secrets-store.csi.x-k8s.io/v1\n  kind: SecretProviderClass\n"
        "  metadata: {name: bad}\n  spec:\n    provider: alibabacloud\n"
        "    parameters:\n      region: cn-hangzhou\n      objects: |\n"
        "        - objectName: db\n          objectAlais: x\n"
    )
    assert main(["lint", str(manifest)]) == 1
    out = capsys.readouterr().out
    assert "document 1, item 2 (bad): error: object #1 ('db'): unknown field 'objectAlais'" in out
    assert "item 1" not in out  # the good item has no problem to report
    assert "checked 2 SecretProviderClasses: 1 error" in out


def test_merge_keys_and_null_names_are_read_as_the_provider_reads_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("""\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: merged}
spec:
  provider: alibabacloud
  parameters:
    region: cn-hangzhou
    objects: |
      - &base {objectName: app/db, objectAlias: one}
      - <<: *base
        objectAlias: two
      - objectName: ~
        objectAlias: three
      - objectName: app/x
        objectTyp: kms
""")
    code, report = lint_json(capsys, str(path))
    assert code == 1
    # one message per broken object; the merged object is fine
    assert [(p["object"], p["field"]) for p in report["problems"]] == [
        (3, "objectName"), (4, "objectTyp")]
    assert "the object name must be specified" in report["problems"][0]["message"]

SPC_TEMPLATE = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: {kind}
metadata: {{name: app}}
spec:
  provider: {provider}
  parameters:
    region: cn-hangzhou
    objects: |
      - objectName: db
"""


@pytest.mark.parametrize(("kind", "provider", "message"), [
    ("SecretProviderClass", "alibaba", "spec.provider 'alibaba' is not a provider name; did you "
                                       "mean alibabacloud?"),
    ("SecretProviderClass", "alicloud", "spec.provider 'alicloud' is not a provider name; did "
                                        "you mean alibabacloud?"),
    ("SecretProviderClass", "aliyun", "spec.provider 'aliyun'"),
    ("SecretProviderClass", "AlibabaCloud", "spec.provider 'AlibabaCloud'"),
    ("SecretProviderClas", "alibabacloud", "kind 'SecretProviderClas' is not a Kubernetes kind; "
                                           "did you mean SecretProviderClass?"),
    ("secretproviderclass", "alibabacloud", "kind 'secretproviderclass'"),
])
def test_near_misses_are_errors_with_a_suggestion(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, provider: str,
        message: str) -> None:
    """Skipping these as 'not ours' would pass a manifest the driver never sends here."""
    path = tmp_path / "spc.yaml"
    path.write_text(SPC_TEMPLATE.format(kind=kind, provider=provider))
    code, report = lint_json(capsys, str(path))
    assert code == 1
    assert [p["message"] for p in report["problems"]][0].startswith(message)
    assert report["checked"] == 1  # and the rest of it is checked as well


def test_other_providers_and_kinds_are_still_skipped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spc.yaml"
    path.write_text(SPC_TEMPLATE.format(kind="SecretProviderClass", provider="azure") + "---\n"
                    + SPC_TEMPLATE.format(kind="SecretProviderClass", provider="alibabacloud")
                    + "---\n" + SPC_TEMPLATE.format(kind="ConfigMap", provider="x"))
    code, report = lint_json(capsys, str(path))
    assert code == 0
    assert [p["severity"] for p in report["problems"]] == ["note", "note"]


@pytest.mark.parametrize(("text", "reason"), [
    ("", "(the input is empty)"),
    ("# only a comment\n---\n", "(the input is empty)"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "(only 1 other document)"),
])
def test_nothing_to_check_is_not_success(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, reason: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    assert main(["lint", str(path)]) == 1
    out = capsys.readouterr().out
    assert (f"{path}: error: nothing to check: no SecretProviderClass with spec.provider "
            f"alibabacloud {reason}") in out
    assert "checked 0 SecretProviderClasses: 1 error" in out


def test_every_problem_of_every_object_and_the_collisions_are_all_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spc.yaml"
    path.write_text(SPC_TEMPLATE.format(kind="SecretProviderClass", provider="alibabacloud")
                    .replace("      - objectName: db\n", """\
      - objectName: db
        objectType: kmss
        filePermission: "999"
        objectVerison: "1"
      - {objectName: a, objectAlias: same}
      - {objectName: b, objectAlias: same}
      - objectNme: c
"""))
    code, report = lint_json(capsys, str(path))
    assert code == 1
    found = [(p["object"], p["field"]) for p in report["problems"]]
    assert found == [
        (1, "objectType"),       # an unknown backend ...
        (1, "objectVerison"),    # ... and an unknown field (with its suggestion) ...
        (1, "filePermission"),   # ... and a bad mode, all of object #1
        (4, "objectNme"),        # a misspelt objectName is not also "objectName is required"
        (3, None),               # the collision of #2 and #3, though other objects are invalid
    ]
    assert "both write the file 'same'" in report["problems"][-1]["message"]


def test_a_region_given_by_nothing_is_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spc.yaml"
    spc = SPC_TEMPLATE.format(kind="SecretProviderClass", provider="alibabacloud")
    spc = spc.replace("    region: cn-hangzhou\n", "")
    path.write_text(spc.replace("      - objectName: db\n", """\
      - objectName: db
      - objectName: acs:kms:cn-shanghai:123456789012:secret/pinned
      - {objectName: gw, kmsEndpoint: kst-hzz-1.cryptoservice.kms.aliyuncs.com}
"""))
    code, report = lint_json(capsys, str(path))
    assert code == 0  # a warning: the provider's --region is a valid way to give it
    (problem,) = report["problems"]
    assert problem["severity"] == "warning" and problem["field"] == "region"
    assert problem["message"].startswith("parameter region is not set and object(s) #1 name no "
                                         "endpoint or ARN")  # not #2 (an ARN), not #3
    assert "--region (Helm value regionId)" in problem["message"]
    assert "region discovery" in problem["message"]
