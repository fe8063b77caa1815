"""`ack-secrets-provider mount --target DIR` against a user's directory and a rogue socket: it
writes only what the driver would accept and never deletes what it did not write (issue 10, last
row). The command runs as a real process; the rogue provider is a real gRPC server on a socket.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from hostile_provider import file_tree

from ack_secrets_provider.core.proto import service_pb2, service_pb2_grpc

SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: app}
spec:
  provider: alibabacloud
  parameters:
    objects: |
      - objectName: app/src
        objectAlias: src
"""


class RogueProvider(service_pb2_grpc.CSIDriverProviderServicer):
    """Answers every Mount with the files it is told to, whatever they are."""

    def __init__(self) -> None:
        self.paths: list[str] = ["src"]

    def Mount(self, request: service_pb2.MountRequest,  # noqa: N802 - gRPC method name
              context: grpc.ServicerContext) -> service_pb2.MountResponse:
        return service_pb2.MountResponse(
            object_version=[service_pb2.ObjectVersion(id=path, version="v1")
                            for path in self.paths],
            files=[service_pb2.File(path=path, mode=0o644, contents=b"from the provider")
                   for path in self.paths],
        )


@pytest.fixture
def rogue(tmp_path: Path) -> Iterator[tuple[RogueProvider, Path]]:
    servicer = RogueProvider()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    service_pb2_grpc.add_CSIDriverProviderServicer_to_server(servicer, server)
    socket_path = tmp_path / "rogue.sock"
    server.add_insecure_port(f"unix:{socket_path}")
    server.start()
    try:
        yield servicer, socket_path
    finally:
        server.stop(0)


def run_mount(socket_path: Path, target: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    spc = socket_path.parent / "spc.yaml"
    spc.write_text(SPC)
    return subprocess.run(
        [sys.executable, "-m", "ack_secrets_provider.core.cli", "mount", "--socket",
         str(socket_path), "--spc", str(spc), "--target", str(target), *flags],
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """Files outside the target that a rogue answer would reach."""
    victim = tmp_path / "victim"
    (victim / "x").mkdir(parents=True)
    (victim / "x" / "keep").write_text("precious")
    return victim


@pytest.mark.parametrize("rogue_path", ["../victim/x", "{victim}/x", "ok/../../victim/x"])
def test_a_rogue_path_writes_and_deletes_nothing(
    rogue: tuple[RogueProvider, Path], victim: Path, tmp_path: Path, rogue_path: str,
) -> None:
    servicer, socket_path = rogue
    servicer.paths = ["src", rogue_path.format(victim=victim)]
    target = tmp_path / "target"
    before = file_tree(tmp_path)
    result = run_mount(socket_path, target)
    assert result.returncode == 1, result.stderr
    assert "which the driver would refuse" in result.stderr and "nothing was written" in (
        result.stderr)
    after = file_tree(tmp_path)
    after.pop("spc.yaml", None), before.pop("spc.yaml", None)
    assert after == before  # the victim is untouched and the target was not even created


def test_a_users_directory_is_refused_and_force_never_replaces_their_files(
    rogue: tuple[RogueProvider, Path], tmp_path: Path,
) -> None:
    _, socket_path = rogue
    target = tmp_path / "project"
    (target / "src").mkdir(parents=True)
    (target / "src" / "main.py").write_text("print('hello')")
    (target / "docs").symlink_to(tmp_path)
    before = file_tree(target)
    refused = run_mount(socket_path, target)
    assert refused.returncode == 2 and "not empty" in refused.stderr and "--force" in (
        refused.stderr)
    forced = run_mount(socket_path, target, "--force")
    assert forced.returncode == 1 and "src exists and was not written by this tool" in (
        forced.stderr)
    assert file_tree(target) == before


def test_forced_files_live_beside_the_users_and_later_mounts_only_touch_their_own(
    rogue: tuple[RogueProvider, Path], tmp_path: Path,
) -> None:
    servicer, socket_path = rogue
    target = tmp_path / "project"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    (target / "stale").symlink_to("..data/stale")  # looks like the tool's, but is the user's
    servicer.paths = ["db"]
    assert run_mount(socket_path, target, "--force").returncode == 0
    servicer.paths = ["cache"]
    assert run_mount(socket_path, target).returncode == 0  # now the tool's own directory
    files = file_tree(target)
    assert files["notes.txt"] == "mine" and files["stale"] == "-> ..data/stale"
    assert files["cache"] == "-> ..data/cache" and "db" not in files


def test_a_planted_data_link_is_never_followed(
    rogue: tuple[RogueProvider, Path], victim: Path, tmp_path: Path,
) -> None:
    _, socket_path = rogue
    target = tmp_path / "target"
    target.mkdir()
    (target / "..data").symlink_to(victim / "x")
    for flags in ((), ("--force",)):
        result = run_mount(socket_path, target, *flags)
        assert result.returncode == 2 and "not to a data directory this tool wrote" in (
            result.stderr)
    assert file_tree(victim) == {"x": "dir", "x/keep": "precious"}
