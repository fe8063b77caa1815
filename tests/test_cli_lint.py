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
        (3, "sync", "error", None, "objectName"),
    ]
    messages = [p["message"] for p in report["problems"]]
    assert "quote the value such as usePodServiceAccountToken: \"true\"" in messages[0]
    assert "Did you mean 'kms'?" in messages[2]
    assert messages[4].startswith("object #3: unknown field 'objectNme'")
    assert "did you mean objects?" in messages[5]
    assert messages[6].startswith("apiVersion 'secrets-store.csi.x-k8s.io/v2'")
    assert "both write the file 'same'" in messages[7]
    assert "use one of the mounted file names: app_db-password" in messages[8]
    assert (report["checked"], report["errors"], report["warnings"]) == (3, 8, 1)


def test_text_output_names_file_document_and_object(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    assert main(["lint", "--quiet", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9
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
        "    parameters:\n      objects: |\n        - objectName: db\n"
        "- apiVersion: secrets-store.csi.x-k8s.io/v1\n  kind: SecretProviderClass\n"
        "  metadata: {name: bad}\n  spec:\n    provider: alibabacloud\n"
        "    parameters:\n      objects: |\n        - objectName: db\n          objectAlais: x\n"
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
