"""`plugins` and `version`: what is installed, from which distribution, what failed and why; and
colours only on a terminal (NO_COLOR respected)."""

from __future__ import annotations

import json
import os
import platform
import pty
from pathlib import Path

import grpc
import pytest
from stevedore import ExtensionManager

from ack_secrets_provider.core import __version__
from ack_secrets_provider.core.cli import main
from ack_secrets_provider.core.commands.output import Output, colour_enabled

MAIN_DIST = "csi-secrets-store-provider-alibabacloud"


def test_plugins_lists_backends_credentials_and_emulator_parts(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:3]) for line in out.splitlines() if line.startswith("  ")}
    assert ("testmem", "ack-test-backend", "0.0.1") in rows
    assert ("kms", MAIN_DIST, __version__) in rows
    assert ("oosparam", "ack-secrets-provider-oosparam", "0.1.0") in rows
    assert ("1", "pod-rrsa", MAIN_DIST) in rows
    assert ("-", "cross-account", MAIN_DIST) in rows  # assumes roles only: not in the chain
    assert "All plugins loaded." in out
    assert "\x1b[" not in out


def test_plugins_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    backends = {b["name"]: b for b in report["backends"]}
    assert backends["testmem"]["distribution"] == "ack-test-backend"
    assert backends["oosparam"]["module"] == "ack_oosparam.backend:OosParameterBackend"
    chain = [c["name"] for c in report["credential_plugins"] if c["in_chain"]]
    assert chain[:2] == ["pod-rrsa", "provider-rrsa"]
    assert chain.index("static-ak") < chain.index("ecs-ram-role")
    parts = {p["name"]: p["distribution"] for p in report["emulator_parts"]}
    assert parts["kms"] == MAIN_DIST
    assert parts["oosparam"] == "ack-secrets-provider-oosparam"
    assert report["failures"] == []


def test_builtins_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--format", "json", "--no-plugin-autoload"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(b["name"] for b in report["backends"]) == ["kms", "oos"]


def test_failed_plugins_are_reported_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    dist = tmp_path / "broken_plugin-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text(
        "[ack_secrets_provider.backends]\nbroken = no_such_module_xyz:Backend\n\n"
        "[ack_secrets_provider.credentials]\nbroken-cred = no_such_module_abc\n\n"
        "[ack_secrets_provider.emulators]\nbroken-part = no_such_module_def:Part\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # stevedore keeps the entry points it found per group for the life of the process
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})
    assert main(["plugins", "--format", "json"]) == 1
    failures = json.loads(capsys.readouterr().out)["failures"]
    found = {(f["kind"], f["name"], f["distribution"]) for f in failures}
    assert found == {("backend", "broken", "broken-plugin"),
                     ("credential", "broken-cred", "broken-plugin"),
                     ("emulator", "broken-part", "broken-plugin")}
    assert all("ModuleNotFoundError" in f["reason"] for f in failures)
    assert main(["plugins"]) == 1
    out = capsys.readouterr().out
    assert "Failed to load (3)" in out
    assert "3 plugins failed" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["provider"] == {"distribution": MAIN_DIST, "version": __version__}
    assert info["protocol"] == "v1alpha1"
    assert info["runtime_name"] == "secrets-store-csi-driver-provider-alibabacloud"
    assert info["libraries"]["alibabacloud-kms20160120"].startswith("3.")
    # docs/cli.md: "... Python and the versions of the Alibaba Cloud SDKs and gRPC"
    assert info["python"]["version"] == platform.python_version()
    assert info["libraries"]["grpcio"] == grpc.__version__
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"secrets-store-csi-driver-provider-alibabacloud {__version__}\n")
    assert "alibabacloud-oos20190601" in out


def _on_a_terminal(monkeypatch: pytest.MonkeyPatch, *argv: str) -> str:
    """Run a command with stdout on a pseudo-terminal; return what the terminal received."""
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        monkeypatch.setattr("sys.stdout", terminal)
        assert main(list(argv)) == 0
        terminal.flush()
    chunks = []
    try:
        while chunk := os.read(leader, 65536):
            chunks.append(chunk)
    except OSError:  # the terminal closed: everything was read
        pass
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


def test_colours_only_on_a_terminal_and_never_with_no_color(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert "\x1b[1m" in _on_a_terminal(monkeypatch, "version")
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in _on_a_terminal(monkeypatch, "version")


def test_colour_decision_and_table_alignment() -> None:
    import io

    assert not colour_enabled(io.StringIO(), {})
    assert colour_enabled(io.StringIO(), {"FORCE_COLOR": "1"})
    assert not colour_enabled(io.StringIO(), {"FORCE_COLOR": "1", "NO_COLOR": "1"})
    stream = io.StringIO()
    out = Output(stream, colour=True)
    out.table(["NAME", "SIZE"], [["a", "1"], ["longer", "100"]], right=(1,),
              styles={0: ("cyan",)})
    plain = [line.replace("\x1b[36m", "").replace("\x1b[1m", "").replace("\x1b[0m", "")
             for line in stream.getvalue().splitlines()]
    assert plain == ["NAME    SIZE", "a          1", "longer   100"]
