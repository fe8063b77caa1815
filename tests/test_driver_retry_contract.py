"""The provider against a client configured exactly like the driver's (waitForReady, 3 attempts,
UNAVAILABLE retried): one NodePublish is at most one Mount's worth of upstream calls, and the
caller sees the provider's own message, not a bare deadline."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import grpc
import pytest
from installed import SERVICES
from scraped import sample, wait_for

from ack_secrets_provider.core.cloud.endpoints import EndpointOverrides
from ack_secrets_provider.core.emulator.testing import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    EmulatorHandle,
)
from ack_secrets_provider.core.proto import service_pb2
from ack_secrets_provider.core.server import grpc_server
from ack_secrets_provider.core.server.driver_client import (
    RunningProvider,
    driver_attributes,
    files_of,
    running_provider,
)
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

#: four provider-side attempts per object, quickly: one Mount's worth of calls is 4
RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, budget_tokens=100)
ATTRIBUTES = driver_attributes({"objects": "- {objectName: app/db-password, objectAlias: db}"})


def _settings(emu: EmulatorHandle) -> ProviderSettings:
    return ProviderSettings(
        region="cn-hangzhou",
        endpoint_overrides=EndpointOverrides.parse([f"kms={emu.http_url}"], SERVICES),
        environ=MappingProxyType({"ACCESS_KEY_ID": ACCESS_KEY_ID,
                                  "SECRET_ACCESS_KEY": ACCESS_KEY_SECRET}),
        retry=RETRY,
    )


@pytest.fixture
def provider(emu: EmulatorHandle, tmp_path: Path) -> Iterator[RunningProvider]:
    with running_provider(_settings(emu), tmp_path) as running:
        running.version()
        yield running


def _kms_calls(emu: EmulatorHandle) -> int:
    return int(emu.counters()["by_api"].get("kms.GetSecretValue", 0))


def _mount_error(provider: RunningProvider, timeout: float) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        provider.mount(ATTRIBUTES, timeout=timeout)
    return caught.value


def test_an_upstream_outage_is_one_mounts_worth_of_calls_with_the_providers_message(
    provider: RunningProvider, emu: EmulatorHandle
) -> None:
    emu.set_faults(service="kms", outage_seconds=60)
    error = _mount_error(provider, timeout=4.0)  # the deadline of the report
    # Not UNAVAILABLE (the driver would send the Mount twice more: 12 calls) and not the
    # client's own "Deadline Exceeded": the provider's explanation reaches the pod's events.
    assert error.code() == grpc.StatusCode.ABORTED
    assert "app/db-password" in error.details() and "4 attempts" in error.details()
    assert _kms_calls(emu) == RETRY.max_attempts


def test_throttling_after_retries_is_resource_exhausted_and_not_retried_by_the_driver(
    provider: RunningProvider, emu: EmulatorHandle
) -> None:
    emu.set_faults(service="kms", throttle_ratio=1.0, retry_after_ms=0)
    error = _mount_error(provider, timeout=4.0)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "app/db-password" in error.details()
    assert _kms_calls(emu) == RETRY.max_attempts


def test_a_provider_that_is_not_listening_yet_is_waited_for(emu: EmulatorHandle,
                                                           tmp_path: Path) -> None:
    """UNAVAILABLE keeps its meaning, "this provider is not ready": the driver's client waits
    for the socket (waitForReady), so a Mount sent while the provider restarts succeeds."""
    from ack_secrets_provider.core.server.driver_client import ProviderClient

    client = ProviderClient(tmp_path / "alibabacloud.sock")
    started = threading.Event()
    result: dict[str, object] = {}

    def call() -> None:
        started.set()
        try:
            result["response"] = client.mount(ATTRIBUTES, timeout=20.0)
        except grpc.RpcError as exc:  # pragma: no cover - reported by the assertion below
            result["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    started.wait()
    time.sleep(0.5)  # the call is already waiting when the provider starts
    try:
        with running_provider(_settings(emu), tmp_path):
            caller.join(timeout=20)
    finally:
        client.close()
    assert "error" not in result, result.get("error")
    assert files_of(result["response"]) == {"db": b"new-password"}  # type: ignore[arg-type]


def test_a_mount_whose_caller_gives_up_stops_calling_upstream(
    emu: EmulatorHandle, tmp_path: Path
) -> None:
    """The driver cancels a Mount (its own caller's context ended, the driver restarted) while
    the provider retries an outage: the provider stops at once instead of retrying on (up to
    its 100 s default deadline), spending the endpoint's shared retry budget for nobody.
    Before: the remaining attempts of the retry limit (6 here) were made after the cancel."""
    patient = RetryPolicy(max_attempts=8, base_delay=0.2, max_delay=0.8, budget_tokens=100)
    settings = dataclasses.replace(_settings(emu), retry=patient)
    with running_provider(settings, tmp_path) as provider:
        provider.version()
        emu.set_faults(service="kms", outage_seconds=60)
        request = service_pb2.MountRequest(attributes=ATTRIBUTES, secrets="null",
                                           permission="420", target_path="/t")
        call = provider.client.stub.Mount.future(request, wait_for_ready=True)  # no deadline
        wait_for(lambda: _kms_calls(emu) >= 2, "two attempts")
        call.cancel()
        at_cancel = _kms_calls(emu)
        # the mount's end (the in-flight gauge drops a moment before the count is recorded)
        wait_for(lambda: sample(provider.metrics, "ack_secrets_provider_mounts_total", {
            "result": "failure", "code": "DEADLINE_EXCEEDED"}) == 1, "the mount to end", 8.0)
        time.sleep(0.3)
        assert _kms_calls(emu) <= at_cancel + 1  # at most the attempt already on its way


def test_a_mount_cancelled_before_its_handler_runs_makes_no_upstream_call(
    emu: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver cancels while the Mount waits for a handler thread (a busy node): gRPC no
    longer registers the cancellation callback for a call that already ended, so the handler
    marks the mount cancelled itself. Before: it retried the outage for its whole course."""
    original = grpc_server.ProviderServicer.Mount
    reached = threading.Event()

    def late(self: grpc_server.ProviderServicer, request: service_pb2.MountRequest,
             context: grpc.ServicerContext) -> service_pb2.MountResponse:
        reached.set()
        # the handler gets to run only after the server has seen the driver's cancel
        wait_for(lambda: not context.is_active(), "the driver's cancel to arrive")
        return original(self, request, context)

    monkeypatch.setattr(grpc_server.ProviderServicer, "Mount", late)
    with running_provider(_settings(emu), tmp_path) as provider:
        provider.version()
        emu.set_faults(service="kms", outage_seconds=60)
        request = service_pb2.MountRequest(attributes=ATTRIBUTES, secrets="null",
                                           permission="420", target_path="/t")
        call = provider.client.stub.Mount.future(request, wait_for_ready=True)
        assert reached.wait(10)
        call.cancel()
        wait_for(lambda: sample(provider.metrics, "ack_secrets_provider_mounts_total", {
            "result": "failure", "code": "DEADLINE_EXCEEDED"}) == 1, "the cancelled mount")
        assert _kms_calls(emu) == 0
