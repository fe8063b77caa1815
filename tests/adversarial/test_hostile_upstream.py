"""A hostile upstream against a provider run as a real process (issue 10, the upstream rows).

KMS is replaced by tests/hostile_upstream.py's server (`--endpoint-override kms=...`): a 100 MB
answer, fields of the wrong type, HTML. Each is refused as an unexpected answer from that endpoint
(INTERNAL, reason UnexpectedAnswer), made once, never written to a file; the 100 MB answer within
a few seconds and a few MB of the provider's memory (measured with psutil from outside; reading
it whole costs the provider 200 MB or more). An answer dripped a byte at a time is given up at
the Mount's deadline. The in-process tests of every service and field are in
tests/test_upstream_answers.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hostile_provider import MiB, PeakRss, ProviderProcess, cpu_after, provider_process
from hostile_upstream import Answer, HostileServer, hostile_server

from ack_secrets_provider.core.server.driver_client import driver_attributes

MOUNT = driver_attributes({"objects": "- objectName: app/db-password\n  objectType: kms\n"})


@pytest.fixture(scope="module")
def upstream() -> Iterator[HostileServer]:
    with hostile_server() as server:
        yield server


@pytest.fixture(scope="module")
def target(upstream: HostileServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ProviderProcess]:
    with provider_process(tmp_path_factory.mktemp("hostile-upstream"),
                          "--endpoint-override", f"kms={upstream.url}") as provider:
        # one good mount first: the SDK stack is imported on first use (~35 MB), not measured
        upstream.answer = Answer(body=b'{"SecretData": "s", "VersionId": "v1"}')
        provider.client.mount(MOUNT, timeout=30)
        yield provider


def _refused(provider: ProviderProcess) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        provider.client.mount(MOUNT, timeout=30)
    return info.value.code(), info.value.details() or ""


def test_a_hundred_megabyte_answer_is_refused_while_reading(
    upstream: HostileServer, target: ProviderProcess
) -> None:
    upstream.answer = Answer(huge=100 * MiB, declare_length=False)
    before = upstream.requests
    started = time.monotonic()
    with PeakRss(target.process) as memory:
        code, message = _refused(target)
    assert time.monotonic() - started < 5
    assert memory.growth < 30 * MiB, memory.growth
    assert code == grpc.StatusCode.INTERNAL
    assert f"endpoint {upstream.url} answered with a body larger than 1,048,576 bytes" in message
    assert "--max-upstream-response-bytes" in message
    assert upstream.requests == before + 1


def test_a_dripping_answer_is_given_up_at_the_mounts_deadline(
    upstream: HostileServer, target: ProviderProcess
) -> None:
    """Each byte comes well within any socket read timeout, the whole answer in ~11 s: the
    provider hangs up on the upstream at the Mount's 2 s deadline (the server's writes fail then,
    not ~11 s later), and nothing keeps running after the answer."""
    upstream.answer = Answer(body=b'{"SecretData": "' + b"s" * 200 + b'", "VersionId": "v1"}',
                             drip=0.05)
    upstream.drip_ended.clear()
    upstream.drip_done.clear()
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        target.client.mount(MOUNT, timeout=2)
    # the provider's answer (ABORTED, naming what held it) or, when it comes a read later than
    # its 50 ms of room to answer, the client's own DEADLINE_EXCEEDED: either way not a value
    assert info.value.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert upstream.drip_done.wait(10), "the server is still dripping: nobody closed the answer"
    assert upstream.drip_ended[0] - started < 3.0
    assert cpu_after(target) < 0.2
    assert "still sending its answer" in target.log()


@pytest.mark.parametrize(("answer", "expected"), [
    (Answer(body=b'{"SecretData": 12345, "VersionId": ["x"]}'),
     "the answer's field SecretData is int, not a string"),
    (Answer(content_type="text/html", body=b"<html>Sign in to the Wi-Fi</html>"),
     "answered HTTP 200 with a text/html that is not a JSON object"),
    (Answer(body=b'{"SecretData": "s", "VersionId": '),
     "answered HTTP 200 with a application/json that is not a JSON object"),
])
def test_an_answer_that_is_not_the_services_is_unexpected_not_retried(
    upstream: HostileServer, target: ProviderProcess, answer: Answer, expected: str
) -> None:
    upstream.answer = answer
    before, internal = upstream.requests, target.mounts("INTERNAL")
    code, message = _refused(target)
    assert code == grpc.StatusCode.INTERNAL
    assert expected in message and "could not reach" not in message
    assert upstream.requests == before + 1  # not retried as a network failure
    assert target.mounts("INTERNAL") == internal + 1
    assert "UnexpectedAnswer" in target.log()


def test_the_bound_is_the_flag(upstream: HostileServer, tmp_path: Path) -> None:
    upstream.answer = Answer(body=b'{"SecretData": "' + b"s" * 5000 + b'", "VersionId": "v1"}')
    with provider_process(tmp_path, "--endpoint-override", f"kms={upstream.url}",
                          "--max-upstream-response-bytes", "4096") as provider:
        code, message = _refused(provider)
    assert code == grpc.StatusCode.INTERNAL and "larger than 4,096 bytes" in message
