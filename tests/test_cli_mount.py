"""`ack-secrets-provider mount`: the driver's Mount call against a real provider on its real unix
socket (the testmem backend from tests/plugins), files written the driver's way, a table of what
was written, and clear failures."""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ack_secrets_provider.core.cli import build_parser, main
from ack_secrets_provider.core.commands.mount import UsageError, build_request
from ack_secrets_provider.core.server.driver_client import RunningProvider, running_provider
from ack_secrets_provider.core.settings import ProviderSettings

SPC = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: app-secrets}
spec:
  provider: alibabacloud
  parameters:
    objects: |
      - objectName: "db-password"
        objectType: testmem
        objectVersion: "3"
      - objectName: "conf/app"
        objectType: testmem
        filePermission: "0440"
"""


@pytest.fixture(scope="module")
def provider() -> Iterator[RunningProvider]:
    with running_provider(ProviderSettings()) as running:
        yield running


def write_spc(tmp_path: Path, text: str = SPC) -> str:
    path = tmp_path / "spc.yaml"
    path.write_text(text)
    return str(path)


def test_mount_writes_files_atomically_and_prints_a_table(
        provider: RunningProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mnt"
    args = ["mount", "--socket", str(provider.socket_path), "--spc", write_spc(tmp_path),
            "--target", str(target), "--permission", "0600"]
    assert main(args) == 0
    out = capsys.readouterr().out
    # the driver's layout: a ..data symlink to a timestamped directory, files linked through it
    assert (target / "..data").is_symlink()
    assert os.readlink(target / "db-password") == "..data/db-password"
    assert (target / "db-password").read_bytes() == b"value-of-db-password"
    assert (target / "conf_app").read_bytes() == b"value-of-conf/app"
    assert (target / "db-password").stat().st_mode & 0o777 == 0o600
    assert (target / "conf_app").stat().st_mode & 0o777 == 0o440
    lines = out.splitlines()
    assert lines[0].split() == ["FILE", "SIZE", "MODE", "VERSION"]
    assert lines[1].split() == ["db-password", "20", "B", "0600", "v3"]
    assert lines[2].split() == ["conf_app", "17", "B", "0440", "v1"]
    assert lines[3] == f"2 files written to {target}"
    assert "value-of" not in out  # contents are never printed
    assert "\x1b[" not in out
    first = os.readlink(target / "..data")
    assert main(args) == 0  # nothing changed: nothing rewritten, as the driver does
    assert capsys.readouterr().out.splitlines()[-1] == f"2 files unchanged in {target}"
    assert os.readlink(target / "..data") == first


def test_socket_directory_and_json_output(
        provider: RunningProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mnt"
    assert main(["mount", "--socket", str(provider.socket_path.parent), "--spc",
                 write_spc(tmp_path), "--target", str(target), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] is True
    assert report["files"] == [
        {"path": "db-password", "size": 20, "mode": "0644", "version": "v3"},
        {"path": "conf_app", "size": 17, "mode": "0440", "version": "v1"},
    ]


def test_provider_errors_give_the_grpc_code_and_a_non_zero_exit(
        provider: RunningProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spc = write_spc(tmp_path, SPC.replace('"conf/app"', '"missing-thing"'))
    target = tmp_path / "mnt"
    code = main(["mount", "--socket", str(provider.socket_path), "--spc", spc,
                 "--target", str(target)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("mount failed: NOT_FOUND: ")
    assert "missing-thing" in captured.err
    assert captured.out == ""
    assert not (target / "..data").exists()  # all or nothing: no file was written
    bad = write_spc(tmp_path, SPC.replace("objectType: testmem\n        filePermission",
                                          "objectType: nope\n        filePermission"))
    assert main(["mount", "--socket", str(provider.socket_path), "--spc", bad,
                 "--target", str(target)]) == 1
    assert "INVALID_ARGUMENT: " in capsys.readouterr().err


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spc = write_spc(tmp_path)
    common = ["--spc", spc, "--target", str(tmp_path / "t")]
    assert main(["mount", "--socket", str(tmp_path / "none.sock"), *common]) == 2
    assert "no provider socket at" in capsys.readouterr().err
    regular = tmp_path / "file"
    regular.write_text("x")
    assert main(["mount", "--socket", str(regular), *common]) == 2
    assert "is not a unix socket" in capsys.readouterr().err


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["mount", "--socket", "/nonexistent", "--target", "/t",
                                      *argv])


def test_request_is_built_as_the_driver_builds_it(tmp_path: Path) -> None:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 4102444800}).encode()).decode()
    token = f"e30.{claims.rstrip('=')}.sig"
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "secrets.yaml").write_text("access_key: LTAI5tExample\naccess_secret: s3\n")
    request = build_request(parse(
        "--spc", write_spc(tmp_path), "--pod-name", "web-0", "--pod-namespace", "shop",
        "--pod-uid", "uid-1", "--service-account", "web", "--token-file",
        str(tmp_path / "token"), "--secrets-file", str(tmp_path / "secrets.yaml"),
        "--volume-attribute", "objects=- objectName: override", "--volume-attribute",
        "usePodServiceAccountToken=true", "--permission", "0440", "--timeout", "1m30s"))
    attributes = json.loads(request["attributes"])
    assert attributes["objects"] == "- objectName: override"  # volume attributes win
    assert attributes["usePodServiceAccountToken"] == "true"
    assert attributes["secretProviderClass"] == "app-secrets"
    assert attributes["csi.storage.k8s.io/pod.name"] == "web-0"
    assert attributes["csi.storage.k8s.io/pod.namespace"] == "shop"
    assert attributes["csi.storage.k8s.io/pod.uid"] == "uid-1"
    assert attributes["csi.storage.k8s.io/serviceAccount.name"] == "web"
    tokens = json.loads(attributes["csi.storage.k8s.io/serviceAccount.tokens"])
    assert tokens == {"sts.aliyuncs.com": {"token": token,
                                           "expirationTimestamp": "2100-01-01T00:00:00Z"}}
    assert json.loads(request["secrets"]) == {"access_key": "LTAI5tExample",
                                              "access_secret": "s3"}
    assert request["permission"] == '"288"'  # 0440 as the driver sends it
    assert request["timeout"] == 90.0


def test_the_documented_defaults_spc_name_and_token_audience(tmp_path: Path) -> None:
    """docs/cli.md, mount: `--permission` (default `0644`) and `--timeout` (default `30s`),
    `--spc-name` picks one SecretProviderClass of a multi-document file, the token's audience is
    `sts.aliyuncs.com` unless `--token-audience` changes it."""
    request = build_request(parse("--spc", write_spc(tmp_path)))
    assert (request["permission"], request["timeout"]) == ('"420"', 30.0)
    other = SPC.split("---")[1].replace("app-secrets", "other-secrets")
    several = write_spc(tmp_path, SPC + "---" + other.replace("db-password", "api-key"))
    with pytest.raises(UsageError, match="choose one with --spc-name"):
        build_request(parse("--spc", several))
    attributes = json.loads(build_request(parse("--spc", several, "--spc-name",
                                                "other-secrets"))["attributes"])
    assert attributes["secretProviderClass"] == "other-secrets"
    assert '"api-key"' in attributes["objects"]
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 4102444800}).encode()).decode()
    (tmp_path / "token").write_text(f"e30.{claims.rstrip('=')}.sig")
    for extra, audience in (((), "sts.aliyuncs.com"), (("--token-audience", "vault"), "vault")):
        attributes = json.loads(build_request(parse(
            "--spc", several, "--spc-name", "app-secrets", "--token-file",
            str(tmp_path / "token"), *extra))["attributes"])
        assert list(json.loads(attributes["csi.storage.k8s.io/serviceAccount.tokens"])) == [
            audience]


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--permission", "999", "octal file mode"),
    ("--volume-attribute", "novalue", "KEY=VALUE"),
    ("--timeout", "soon", "--timeout: duration 'soon' is not like 30s"),
    ("--timeout", "0", "--timeout: '0' must be longer than 0s"),
])
def test_bad_flags_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str,
                             value: str, message: str) -> None:
    sock = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(sock))
        assert main(["mount", "--socket", str(sock), "--spc", write_spc(tmp_path),
                     "--target", str(tmp_path / "t"), flag, value]) == 2
    assert message in capsys.readouterr().err


def test_spc_problems_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no SecretProviderClass"):
        build_request(parse("--spc", write_spc(tmp_path, SPC.split("---")[0])))
    with pytest.raises(UsageError, match="are not strings"):
        build_request(parse("--spc", write_spc(
            tmp_path, SPC.replace("    objects:", "    usePodServiceAccountToken: true\n"
                                                 "    objects:"))))


def test_a_secrets_file_yaml_cannot_read_is_a_usage_error(tmp_path: Path) -> None:
    """An unquoted impossible date (PyYAML raises ValueError, not YAMLError) and nesting too
    deep to read (RecursionError) ended `mount` with a traceback."""
    spc = write_spc(tmp_path)
    secrets = tmp_path / "secrets.yaml"
    for text, reason in (
        ("access_key: LTAI5tExample\nrotated: 2024-02-30\n",
         "not valid YAML: a value written as a date or time is not one; quote it to keep it "
         "text"),
        ("[" * 100_000, "not valid YAML or JSON: nested too deeply to be read"),
        ("access_key: [unclosed\n", "not valid YAML or JSON"),
    ):
        secrets.write_text(text)
        with pytest.raises(UsageError) as refused:
            build_request(parse("--spc", spc, "--secrets-file", str(secrets)))
        assert str(refused.value) == f"--secrets-file {secrets}: {reason}"


def test_a_socket_or_target_in_a_directory_this_user_may_not_enter_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        provider: RunningProvider) -> None:
    """Run by a user who may not enter the directory (the provider volume is root's), --socket
    and --target raised a raw PermissionError: a traceback. Root enters any directory, so the
    look-ups are made to fail as they would."""
    locked = tmp_path / "locked"
    real_stat = Path.stat

    def stat(self: Path, *, follow_symlinks: bool = True) -> os.stat_result:
        if locked in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(Path, "stat", stat)
    spc = write_spc(tmp_path)
    assert main(["mount", "--socket", str(locked / "alibabacloud.sock"), "--spc", spc,
                 "--target", str(tmp_path / "t")]) == 2
    assert capsys.readouterr().err == (
        f"error: --socket: permission denied looking up {locked}/alibabacloud.sock: run mount "
        "as the user that runs `serve` (the driver runs as root), for example with sudo\n")
    assert main(["mount", "--socket", str(provider.socket_path), "--spc", spc,
                 "--target", str(locked / "t")]) == 2
    assert capsys.readouterr().err == (
        f"error: --target: cannot use {locked}/t (Permission denied); choose a directory this "
        "user may write, or run mount as its owner\n")


def test_a_socket_nobody_listens_on_fails_at_once_with_the_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A provider that died leaves its socket file: say so now, not after the 30 s timeout."""
    import time

    sock = tmp_path / "alibabacloud.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(sock))  # bound, never listening: connecting is refused
    started = time.monotonic()
    code = main(["mount", "--socket", str(tmp_path), "--spc", write_spc(tmp_path),
                 "--target", str(tmp_path / "t")])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1
    assert elapsed < 5, f"took {elapsed:.1f}s"  # the deadline would have been 30 s
    assert (f"no provider is listening on {sock} (connection refused) - is `serve` running?"
            in err)
    assert "DEADLINE_EXCEEDED" not in err
    assert not (tmp_path / "t").exists()


def test_a_forbidden_socket_gets_a_permission_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root passes any file permission, so the refusal of connect(2) is played by a stand-in."""
    from ack_secrets_provider.core.commands import mount as mount_command

    class Refusing(socket.socket):
        def connect(self, address: object) -> None:
            raise PermissionError(13, "Permission denied")

    fake = argparse.Namespace(socket=Refusing, AF_UNIX=socket.AF_UNIX,
                              SOCK_STREAM=socket.SOCK_STREAM)
    monkeypatch.setattr(mount_command, "socket", fake)
    message = mount_command.unreachable(tmp_path / "alibabacloud.sock")
    assert message is not None
    assert message.startswith(f"permission denied connecting to {tmp_path}/alibabacloud.sock")
    assert "run mount as the user that runs `serve`" in message


def test_every_failing_object_is_reported(
        provider: RunningProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One attempt names everything to fix: every object that failed to fetch, and every
    problem of the SecretProviderClass, not only the first."""
    target = tmp_path / "mnt"
    spc = write_spc(tmp_path, SPC.replace('"db-password"', '"missing-one"')
                    .replace('"conf/app"', '"missing-two"'))
    assert main(["mount", "--socket", str(provider.socket_path), "--spc", spc,
                 "--target", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mount failed: NOT_FOUND: 2 problems: [1] object #1 ")
    assert "missing-one" in err and "[2] object #2 " in err and "missing-two" in err
    assert not target.exists()

    bad = write_spc(tmp_path, SPC.replace("objectType: testmem\n        objectVersion",
                                          "objectType: nope\n        objectVersion")
                    .replace('filePermission: "0440"', 'filePermission: "999"'))
    assert main(["mount", "--socket", str(provider.socket_path), "--spc", bad,
                 "--target", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mount failed: INVALID_ARGUMENT: 2 problems: [1] object #1 "
                          "('db-password'): field objectType 'nope'")
    assert "[2] object #2 ('conf/app'): field filePermission '999'" in err


def test_the_problems_and_the_code_follow_object_order(
        provider: RunningProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/troubleshooting.md: the problems are listed, and the gRPC code chosen, in object
    order, whatever order the concurrent fetches fail in (#1 is denied, #2 to #8 are missing)."""
    names = ["denied-1", *(f"missing-{number}" for number in range(2, 9))]
    objects = "".join(f"      - {{objectName: {name}, objectType: testmem}}\n" for name in names)
    spc = write_spc(tmp_path, SPC.split("      - objectName")[0] + objects)
    assert main(["mount", "--socket", str(provider.socket_path), "--spc", spc,
                 "--target", str(tmp_path / "mnt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mount failed: PERMISSION_DENIED: 8 problems: [1] object #1 "
                          "(testmem 'denied-1')"), err
    listed = [(int(n), int(i)) for n, i in re.findall(r"\[(\d+)\] object #(\d+) ", err)]
    assert listed == [(number, number) for number in range(1, 9)]
