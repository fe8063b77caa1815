"""The provider over its real unix socket, with a backend installed through a real entry point
(the test distribution in tests/plugins/ack-test-backend), byte-for-byte as the driver calls it."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import ack_test_backend
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from scraped import sample, wait_for

from ack_secrets_provider.core import __version__
from ack_secrets_provider.core.server.driver_client import (
    PodRef,
    RunningProvider,
    driver_attributes,
    files_of,
    running_provider,
    versions_of,
)
from ack_secrets_provider.core.settings import ProviderSettings


def objects(*lines: str) -> str:
    return "\n".join(lines) + "\n"


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[RunningProvider]:
    ack_test_backend.reset()
    with running_provider(ProviderSettings(fetch_concurrency=4), tmp_path) as running:
        yield running


def test_version_reports_protocol_runtime_and_package_version(provider: RunningProvider) -> None:
    response = provider.version()
    assert response.version == "v1alpha1"
    assert response.runtime_name == "secrets-store-csi-driver-provider-alibabacloud"
    assert response.runtime_version == __version__


def test_socket_is_owner_only(provider: RunningProvider) -> None:
    mode = stat.S_IMODE(os.stat(provider.socket_path).st_mode)
    assert mode == 0o600, oct(mode)  # docs/security.md, migration.md: owner-only `0600`
    assert provider.socket_path.name == "alibabacloud.sock"


def test_health_service_on_the_same_socket(provider: RunningProvider) -> None:
    stub = health_pb2_grpc.HealthStub(provider.client.channel)
    for service in ("", "v1alpha1.CSIDriverProvider"):
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_mount_exactly_as_the_driver_sends_it(provider: RunningProvider) -> None:
    # The driver's real request: secrets "null", permission "420", no current versions.
    attributes = driver_attributes(
        {"objects": objects(
            "- objectName: db/password",
            "  objectType: testmem",
            "- objectName: json-config",
            "  objectType: testmem",
            "  objectAlias: 0755",
            "  filePermission: \"0440\"",
            "  jmesPath:",
            "    - path: username",
            "      objectAlias: no",
            "    - path: nested",
            "      objectAlias: nested.json",
        )},
        tokens={"sts.aliyuncs.com": "header.payload.sig"},
    )
    response = provider.mount(attributes, secrets="null", permission="420")
    files = files_of(response)
    assert files == {
        "db_password": b"value-of-db/password",
        "0755": json.dumps({"username": "admin", "password": "s3cr3t",
                            "nested": {"port": 5432}}).encode(),
        "no": b"admin",
        "nested.json": b'{"port":5432}',
    }
    modes = {item.path: item.mode for item in response.files}
    assert modes == {"db_password": 0o644, "0755": 0o440, "no": 0o440, "nested.json": 0o440}
    assert versions_of(response) == {
        "db_password": "v1", "0755": "v1", "no": "v1", "nested.json": "v1"
    }


def test_sync_controller_without_pod_or_target_path(provider: RunningProvider) -> None:
    attributes = driver_attributes(
        {"objects": objects("- objectName: a", "  objectType: testmem")}, pod=None
    )
    response = provider.mount(attributes, target_path="")
    assert files_of(response) == {"a": b"value-of-a"}


def test_empty_objects_is_an_empty_mount_with_a_version(provider: RunningProvider) -> None:
    response = provider.mount(driver_attributes({"objects": ""}))
    assert list(response.files) == []
    assert len(response.object_version) == 1  # the driver fails a mount with no versions


def test_all_or_nothing_one_missing_object_fails_the_mount(provider: RunningProvider) -> None:
    attributes = driver_attributes({"objects": objects(
        "- {objectName: good, objectType: testmem}",
        "- {objectName: missing-one, objectType: testmem}",
    )})
    with pytest.raises(grpc.RpcError) as info:
        provider.mount(attributes)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "missing-one" in info.value.details()


@pytest.mark.parametrize(
    ("yaml_text", "code", "fragment"),
    [
        ("- {objectName: x, objectType: nosuch}", grpc.StatusCode.INVALID_ARGUMENT,
         "installed types: kms, oos"),
        ("- {objectName: x, objectTyp: testmem}", grpc.StatusCode.INVALID_ARGUMENT,
         "Did you mean 'objectType'"),
        ("- {objectName: denied-x, objectType: testmem}", grpc.StatusCode.PERMISSION_DENIED,
         "denied-x"),
        ("- {objectName: '..', objectType: testmem, objectAlias: '..'}",
         grpc.StatusCode.INVALID_ARGUMENT, "objectAlias"),
        ("- {objectName: big-x, objectType: testmem}", grpc.StatusCode.RESOURCE_EXHAUSTED,
         "max-call-recv-msg-size"),
    ],
)
def test_failures_map_to_one_status_with_a_helpful_message(
    provider: RunningProvider, yaml_text: str, code: grpc.StatusCode, fragment: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        provider.mount(driver_attributes({"objects": yaml_text + "\n"}))
    assert info.value.code() == code
    assert fragment in info.value.details()


def test_unexpected_backend_exception_is_internal_and_leaks_nothing(
    provider: RunningProvider,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        provider.mount(
            driver_attributes({"objects": "- {objectName: crash-1, objectType: testmem}\n"})
        )
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "secret-material-must-not-leak" not in info.value.details()
    # and the server is still alive
    assert provider.version().version == "v1alpha1"


def test_an_answer_that_cannot_be_encoded_is_internal_not_unknown(
    provider: RunningProvider,
) -> None:
    """A backend returning a version that is no text (a plugin breaking its contract) fails the
    Mount as any unexpected error does: INTERNAL through the one error mapping, nothing of the
    exception's text, no file. It was gRPC's own UNKNOWN ('Exception calling application: ...'
    with the encoder's message), and the Mount was logged and counted as a success."""
    with pytest.raises(grpc.RpcError) as info:
        provider.mount(
            driver_attributes({"objects": "- {objectName: badversion-1, objectType: testmem}\n"})
        )
    assert info.value.code() == grpc.StatusCode.INTERNAL, info.value.details()
    assert info.value.details() == (
        "the provider failed unexpectedly (UnicodeEncodeError); see the provider's logs")
    assert provider.version().version == "v1alpha1"


def test_objects_are_fetched_concurrently_but_bounded(provider: RunningProvider) -> None:
    names = [f"slow-{i}" for i in range(8)]
    attributes = driver_attributes({"objects": "".join(
        f"- {{objectName: {name}, objectType: testmem}}\n" for name in names
    )})
    response = provider.mount(attributes)
    assert files_of(response) == {name: f"value-of-{name}".encode() for name in names}
    # concurrent (more than one at a time) but bounded: fetch_concurrency=4 in the fixture
    assert ack_test_backend.IN_FLIGHT["max"] == 4


def test_deadline_of_the_caller_is_honoured(provider: RunningProvider) -> None:
    attributes = driver_attributes({"objects": "".join(
        f"- {{objectName: slow-{i}, objectType: testmem}}\n" for i in range(12)
    )})
    with pytest.raises(grpc.RpcError) as info:
        provider.mount(attributes, timeout=0.8)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_sigterm_style_stop_lets_in_flight_mounts_finish(tmp_path: Path) -> None:
    ack_test_backend.reset()
    results: list[object] = []
    with running_provider(ProviderSettings(), tmp_path) as running:
        attributes = driver_attributes({"objects": "- {objectName: slow-a, objectType: testmem}\n"})

        def call() -> None:
            try:
                results.append(files_of(running.mount(attributes)))
            except grpc.RpcError as exc:  # pragma: no cover - the failure we test against
                results.append(exc.code())

        thread = threading.Thread(target=call)
        thread.start()
        # until this provider serves the mount (its own gauge: slow fetches another test left
        # running in another provider do not count); generously: a loaded CI machine
        wait_for(lambda: sample(running.metrics, "ack_secrets_provider_mounts_in_flight") == 1,
                 "the mount reaches the provider", timeout=30)
        running.server.stop(grace=5.0)
        thread.join(timeout=10)
        assert results == [{"slow-a": b"value-of-slow-a"}]
        assert not running.socket_path.exists()


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    import socket as socket_module

    stale = tmp_path / "alibabacloud.sock"
    sock = socket_module.socket(socket_module.AF_UNIX)
    sock.bind(str(stale))
    sock.close()  # bound but nobody listens: stale
    assert stale.exists()
    with running_provider(ProviderSettings(), tmp_path) as running:
        assert running.version().version == "v1alpha1"


def test_pod_volume_attributes_cannot_smuggle_non_string_values(
    provider: RunningProvider,
) -> None:
    attributes = json.dumps({"objects": ["not", "a", "string"]})
    with pytest.raises(grpc.RpcError) as info:
        provider.mount(attributes)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_pod_is_named_in_nothing_secret(provider: RunningProvider) -> None:
    attributes = driver_attributes(
        {"objects": "- {objectName: a, objectType: testmem}\n"},
        pod=PodRef(name="web-1", namespace="shop"),
    )
    assert files_of(provider.mount(attributes)) == {"a": b"value-of-a"}


def test_jmespath_files_inherit_the_objects_file_permission(provider: RunningProvider) -> None:
    attributes = driver_attributes({"objects": objects(
        "- objectName: json-a",
        "  objectType: testmem",
        "  filePermission: \"0400\"",
        "  jmesPath:",
        "    - {path: username, objectAlias: user}",
        "    - {path: password, objectAlias: pass, filePermission: \"0440\"}",
    )})
    modes = {item.path: item.mode for item in provider.mount(attributes).files}
    assert modes == {"json-a": 0o400, "user": 0o400, "pass": 0o440}
