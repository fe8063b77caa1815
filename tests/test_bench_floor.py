"""bench/floor.py, the two servers bench/run.py measures the provider against (issue 13).

The floor answers a fixed file without any upstream; the SDK floor answers the value one plain
official KMS SDK call returns. docs/performance.md reads the provider's cold mount against the
SDK floor, so the SDK floor must make that one call per Mount, no more, and serve its answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loopback_guard import child_environment
from scraped import wait_for

from ack_secrets_provider.core.emulator.testing import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from ack_secrets_provider.core.server.driver_client import ProviderClient, driver_attributes

FLOOR = Path(__file__).resolve().parents[1] / "bench" / "floor.py"
OBJECTS = "- objectName: app/db-password\n  objectType: kms\n"


@contextmanager
def floor(tmp_path: Path, *args: str) -> Iterator[ProviderClient]:
    environ = {**os.environ, "ACCESS_KEY_ID": ACCESS_KEY_ID, "SECRET_ACCESS_KEY": ACCESS_KEY_SECRET}
    proc = subprocess.Popen([sys.executable, str(FLOOR), str(tmp_path), *args],
                            env=child_environment(environ, tmp_path / "refused.log"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        socket_path = tmp_path / "alibabacloud.sock"
        wait_for(lambda: socket_path.exists() or proc.poll() is not None, "the floor starts",
                 timeout=30)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        client = ProviderClient(socket_path)
        try:
            yield client
        finally:
            client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        assert not (tmp_path / "refused.log").exists()


def test_the_floor_answers_a_fixed_file_without_an_upstream(tmp_path: Path, emulator) -> None:
    with floor(tmp_path) as client:
        answer = client.mount(driver_attributes({"objects": OBJECTS}))
    assert [(f.path, f.contents) for f in answer.files] == [("app/db-password", b"value")]
    assert emulator.counters()["by_api"] == {}


def test_the_sdk_floor_makes_one_official_sdk_call_per_mount(tmp_path: Path, emulator) -> None:
    with floor(tmp_path, "--sdk-endpoint", emulator.address) as client:
        answers = [client.mount(driver_attributes({"objects": OBJECTS})) for _ in range(3)]
    for answer in answers:
        assert [(f.path, f.contents) for f in answer.files] == [("app/db-password",
                                                                 b"new-password")]
        assert [(v.id, v.version) for v in answer.object_version] == [("app/db-password", "v2")]
    assert emulator.counters()["by_api"] == {"kms.GetSecretValue": 3}


def test_the_floor_refuses_other_arguments(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(FLOOR), str(tmp_path), "--sdk", "x"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "usage: floor.py SOCKET_DIR [--sdk-endpoint HOST[:PORT]]" in result.stderr
