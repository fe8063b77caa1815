"""Adversarial upstreams: what an endpoint answering nonsense can make the provider do.

Every KMS, OOS and STS call reads its answer through core/cloud/transport.py: bounded in size
(refused while reading), in time, required to be a JSON object, and each field a backend uses
checked for its type. A refused answer is an UnexpectedAnswer naming the endpoint, made once
(never retried as a network failure). The same answers against a provider run as a real process,
with its memory and time measured from outside: tests/adversarial/test_hostile_upstream.py.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import grpc
import pytest
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.provider.static_ak import StaticAKCredentialsProvider
from hostile_upstream import Answer, HostileServer, hostile_server
from installed import SERVICES

from ack_secrets_provider.auth import _sts
from ack_secrets_provider.backends.kms.backend import KmsBackend
from ack_secrets_provider.backends.oos.backend import OosBackend
from ack_secrets_provider.core.cloud.endpoints import Endpoint, EndpointOverrides
from ack_secrets_provider.core.cloud.kube import KubeClient
from ack_secrets_provider.core.cloud.transport import WATCHDOG_TICK, ExchangeWatchdog
from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    PermissionDenied,
    ProviderError,
    Unavailable,
    UnexpectedAnswer,
    UpstreamDataError,
)
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins.backend import Backend, FetchContext
from ack_secrets_provider.core.plugins.credentials import Identity, IdentityKey
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.fetcher import Fetcher, FetchUnit
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

HUNDRED_MB = 100 * 1024 * 1024
FAST_RETRIES = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02)
#: the content type under which the SDK parses an error document as XML itself
SDK_XML = "text/xml;charset=utf-8"
XML_ERROR = b"<Error><Code>Forbidden.RAM</Code><RequestId>r-1</RequestId></Error>"


@pytest.fixture()
def server() -> Iterator[HostileServer]:
    with hostile_server() as running:
        yield running


def _identity() -> Identity:
    provider = StaticAKCredentialsProvider(access_key_id="LTAIhostile", access_key_secret="s")
    return Identity(key=IdentityKey(mode="static-ak", access_key_id="LTAIhostile"),
                    credential=CredentialClient(provider=provider))


def _settings(server: HostileServer, **changes: object) -> ProviderSettings:
    overrides = EndpointOverrides.parse([f"kms={server.url}", f"oos={server.url}"], SERVICES)
    return ProviderSettings(endpoint_overrides=overrides, retry=FAST_RETRIES,
                            **changes)  # type: ignore[arg-type]


def _fetch(server: HostileServer, object_type: str = "kms", **changes: object) -> bytes:
    """One object through the Fetcher (guards and retries included), as a mount does."""
    settings = _settings(server, **changes)
    backend: Backend = KmsBackend(settings) if object_type == "kms" else OosBackend(settings)
    spec = ObjectSpec(index=0, object_name="app-secret", object_type=object_type,
                      file_name="f")
    endpoint = backend.endpoint(spec, "cn-hangzhou")
    ctx = FetchContext(_identity(), Deadline.after(10), endpoint, settings, region="cn-hangzhou")
    fetcher = Fetcher(settings, metrics=ProviderMetrics(process_collectors=False))
    return fetcher.fetch(FetchUnit(backend, (spec,), ctx))[0].data


def _sts_call(server: HostileServer) -> None:
    port = server.server_address[1]
    endpoint = Endpoint(service="sts", host="sts.aliyuncs.com", address=f"127.0.0.1:{port}",
                        protocol="http", overridden=True)
    client = _sts.make_client(ProviderSettings(), endpoint)
    _sts.assume_role_with_oidc(
        client, role_arn="acs:ram::123456789012:role/r", oidc_provider_arn="acs:ram::1:oidc/p",
        token="token", session="s", duration=3600, timeout=5, what="sts call", hint="hint",
        metrics=ProviderMetrics(process_collectors=False),
    )


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "streamed"])
@pytest.mark.parametrize("service", ["kms", "oos", "sts"])
def test_an_oversized_answer_is_refused_while_reading(
    server: HostileServer, service: str, declare_length: bool
) -> None:
    server.answer = Answer(huge=HUNDRED_MB, declare_length=declare_length)
    with pytest.raises(UnexpectedAnswer) as info:
        _sts_call(server) if service == "sts" else _fetch(server, service)
    # refused while reading: the server could not write most of the answer (socket buffers
    # and the 1 MiB bound at most), it was not downloaded and then measured
    assert server.huge_done.wait(30), "the server is still writing: nobody closed the answer"
    assert server.huge_sent == [server.huge_sent[0]] and server.huge_sent[0] < HUNDRED_MB // 4
    message = info.value.message
    assert f"endpoint {server.url}" in message
    assert "larger than 1,048,576 bytes" in message and "--max-upstream-response-bytes" in message
    assert server.requests == 1  # refused, not retried


def test_a_larger_content_length_is_refused_before_reading(server: HostileServer) -> None:
    """docs/security.md: the announced length is refused before any of the body is read (this
    answer announces 2 MB and sends 2 bytes: a reader would meet the end of the body instead)."""
    server.answer = Answer(raw=b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                               b"content-length: 2000000\r\n\r\n{}")
    with pytest.raises(UnexpectedAnswer, match="larger than 1,048,576 bytes .announced 2,000,000"):
        _fetch(server)
    assert server.requests == 1


def test_the_bound_is_a_setting(server: HostileServer) -> None:
    body = json.dumps({"SecretData": "x" * 5000, "VersionId": "v1"}).encode()
    server.answer = Answer(body=body)
    assert _fetch(server) == b"x" * 5000
    with pytest.raises(UnexpectedAnswer, match="larger than 4,096 bytes"):
        _fetch(server, max_upstream_response_bytes=4096)


def test_a_dripping_answer_cannot_hold_a_mount_past_its_deadline(server: HostileServer) -> None:
    """Each byte comes well within the socket read timeout; the whole answer never does."""
    body = json.dumps({"SecretData": "s" * 200, "VersionId": "v1"}).encode()
    server.answer = Answer(body=body, drip=0.05)  # about 11 s for the whole answer
    _fetch_within_its_deadline(server)


def _fetch_within_its_deadline(server: HostileServer) -> float:
    """A KMS fetch with a 1.5 s deadline fails as too slow within 3.5 s; its start time."""
    settings = _settings(server)
    backend = KmsBackend(settings)
    spec = ObjectSpec(index=0, object_name="s", object_type="kms", file_name="f")
    ctx = FetchContext(_identity(), Deadline.after(1.5), backend.endpoint(spec, "cn-hangzhou"),
                       settings, region="cn-hangzhou")
    started = time.monotonic()
    with pytest.raises(Unavailable, match="still sending its answer"):
        backend.fetch(spec, ctx)
    assert time.monotonic() - started < 3.5
    return started


def test_dripped_headers_cannot_hold_a_mount_past_its_deadline(server: HostileServer) -> None:
    """The status line and headers are read inside http.client, a byte at a time here, each
    well within the socket read timeout: the watchdog ends the exchange at its read timeout
    (before it, a 1.5 s fetch was held ~36 s by such a server)."""
    body = json.dumps({"SecretData": "s", "VersionId": "v1"}).encode()
    server.answer = Answer(body=body, drip_head=0.05)  # ~1,200 bytes of head: about 60 s
    started = _fetch_within_its_deadline(server)
    # the provider hung up: the server's writing ended, right after the fetch gave up
    assert server.drip_done.wait(5)
    assert server.drip_ended[0] - started < 4.0


@pytest.mark.parametrize(("object_type", "body", "problem"), [
    ("kms", b'{"SecretData": 12345, "VersionId": ["x"]}', "field SecretData is int, not a string"),
    ("kms", b'{"SecretData": "s", "VersionId": ["x"]}', "field VersionId is list, not a string"),
    ("kms", b'{"SecretData": "s", "VersionId": "v", "SecretDataType": 7}', "DataType is int"),
    ("kms", b'{"VersionId": "v1"}', "field SecretData is missing"),
    ("oos", b'{"Parameter": {"Value": 5, "ParameterVersion": 1}}', "Parameter.Value is int"),
    ("oos", b'{"Parameter": {"Value": "v", "ParameterVersion": "1"}}', "ParameterVersion is str"),
    ("oos", b'{"Parameter": {"Value": "v", "ParameterVersion": true}}', "Version is bool"),
    ("oos", b'{"RequestId": "r"}', "without Parameter"),
    # a lone UTF-16 surrogate is no text: it raised UnicodeEncodeError, an internal error
    ("kms", b'{"SecretData": "s\\ud800", "VersionId": "v1"}', "field SecretData is not text"),
    ("kms", b'{"SecretData": "s", "VersionId": "v\\udfff"}', "field VersionId is not text"),
    ("oos", b'{"Parameter": {"Value": "\\ud800", "ParameterVersion": 1}}', "Value is not text"),
])
def test_fields_of_the_wrong_type_are_refused(
    server: HostileServer, object_type: str, body: bytes, problem: str
) -> None:
    server.answer = Answer(body=body)
    with pytest.raises(UnexpectedAnswer, match=problem) as info:
        _fetch(server, object_type)
    assert f"endpoint {object_type}-vpc.cn-hangzhou.aliyuncs.com" in info.value.message
    assert server.requests == 1


def test_a_content_length_of_other_digits_is_not_an_internal_error(server: HostileServer) -> None:
    """'²' (latin-1 0xb2) passes str.isdigit() and fails int(): the ValueError was reported as
    'a bug in the provider' (INTERNAL). Like urllib3, the bound reads such a length as not
    given; the answer is then judged on what it holds."""
    server.answer = Answer(raw=b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                               b"content-length: \xb2\r\n\r\n{\"VersionId\": \"v1\"}")
    with pytest.raises(UnexpectedAnswer, match="the answer's field SecretData is missing"):
        _fetch(server)
    assert server.requests == 1


def test_a_binary_secret_that_is_not_base64_is_the_secrets_data_problem(
    server: HostileServer,
) -> None:
    """Well-formed answer, unusable stored value: DATA_LOSS naming the object and the fix (the
    secret's owner must store a new version), not a provider bug, and not asked again."""
    server.answer = Answer(
        body=b'{"SecretData": "%%% not base64", "VersionId": "v", "SecretDataType": "binary"}')
    with pytest.raises(UpstreamDataError, match="not valid base64") as info:
        _fetch(server, "kms")
    assert info.value.code == grpc.StatusCode.DATA_LOSS
    assert "store a new version" in info.value.message and "%%%" not in info.value.message
    assert server.requests == 1


@pytest.mark.parametrize(("body", "problem"), [
    (b'{"Credentials": {"AccessKeyId": 1, "AccessKeySecret": "s"}}', "AccessKeyId is int"),
    (b'{"Credentials": {"AccessKeyId": "a", "AccessKeySecret": "s", "Expiration": "soon"}}',
     "Expiration is not a time"),
])
def test_sts_fields_of_the_wrong_type_are_refused(
    server: HostileServer, body: bytes, problem: str
) -> None:
    server.answer = Answer(body=body)
    with pytest.raises(UnexpectedAnswer, match=problem):
        _sts_call(server)


@pytest.mark.parametrize(("answer", "shape"), [
    (Answer(content_type="text/html", body=b"<html><body>Welcome</body></html>"),
     "a text/html that is not a JSON object"),
    (Answer(body=b'{"SecretData": "s", "VersionId": '), "application/json that is not a JSON"),
    (Answer(body=b'["SecretData"]'), "that is not a JSON object"),
    (Answer(body=b"[" * 100_000), "that is not a JSON object"),
    (Answer(body=b""), "an empty body"),
    (Answer(status=404, content_type="text/html", body=b"<h1>Not Found</h1>"), "HTTP 404"),
    # XML errors the SDK does not parse (it reads XML only under exactly its content type, and
    # as UTF-8): they were 'the KMS call failed inside the provider ... a bug' (INTERNAL)
    (Answer(status=403, content_type="application/xml", body=XML_ERROR),
     "HTTP 403 with a application/xml that is not a JSON object"),
    (Answer(status=403, content_type="text/xml; charset=utf-8", body=XML_ERROR),
     "HTTP 403 with a text/xml that is not a JSON object"),
    (Answer(status=403, content_type=SDK_XML, body=b"<Error>\xff</Error>"),
     "HTTP 403 with a text/xml that is not a JSON object"),
])
def test_an_answer_that_is_not_json_is_unexpected_not_a_network_failure(
    server: HostileServer, answer: Answer, shape: str
) -> None:
    server.answer = answer
    with pytest.raises(UnexpectedAnswer) as info:
        _fetch(server)
    assert shape in info.value.message
    assert "could not reach" not in info.value.message
    assert not info.value.retryable
    assert server.requests == 1


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/html", b"<h1>Bad Gateway</h1>"),
    ("application/xml", XML_ERROR),  # an XML error page: was an internal error
])
def test_a_load_balancer_error_page_stays_a_retryable_outage(
    server: HostileServer, content_type: str, body: bytes,
) -> None:
    server.answer = Answer(status=502, content_type=content_type, body=body)
    with pytest.raises(Unavailable, match=f"HTTP 502 with a {content_type}") as info:
        _fetch(server)
    assert info.value.retryable
    assert server.requests == FAST_RETRIES.max_attempts


def test_an_xml_error_the_sdk_parses_is_still_mapped_by_its_code(server: HostileServer) -> None:
    """The one XML form the SDK reads itself keeps its meaning (the control of the cases
    above)."""
    server.answer = Answer(status=403, content_type=SDK_XML, body=XML_ERROR)
    with pytest.raises(PermissionDenied, match="code Forbidden.RAM"):
        _fetch(server)


def test_a_programming_error_in_the_sdk_call_is_internal_and_not_retried(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A TypeError inside the SDK call is a bug: INTERNAL, one attempt, no outage accounting."""
    from darabonba.core import DaraCore

    value = "my-" + "secret-value"  # what a bug's message may quote; built so the source
    # line shown in the traceback does not contain it

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError(f"unsupported operand: 'NoneType' and {value!r}")

    monkeypatch.setattr(DaraCore, "compose_url", staticmethod(broken))
    settings = _settings(server)
    fetcher = Fetcher(settings, metrics=ProviderMetrics(process_collectors=False))
    backend = KmsBackend(settings)
    spec = ObjectSpec(index=0, object_name="s", object_type="kms", file_name="f")
    ctx = FetchContext(_identity(), Deadline.after(10), backend.endpoint(spec, "cn-hangzhou"),
                       settings, region="cn-hangzhou")
    for _ in range(30):  # far past the retry budget: a bug must never open the outage gate
        with pytest.raises(ProviderError) as info:
            fetcher.fetch(FetchUnit(backend, (spec,), ctx))
        assert info.value.code.name == "INTERNAL" and not info.value.retryable
        assert "TypeError" in info.value.message and "bug" in info.value.message
        assert value not in info.value.message  # nor is it answered to the driver
    # the budget is untouched (so the outage gate, which needs it empty, stays open)
    guard = fetcher._guard(FetchUnit(backend, (spec,), ctx))
    assert guard.budget.tokens == settings.retry.budget_tokens
    assert server.requests == 0
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Traceback" in logged or "traceback" in logged
    assert "in broken" in logged  # the frame that raised
    assert "my-secret-value" not in logged  # the exception's message is not logged


def test_metadata_and_kubernetes_api_answers_are_bounded_and_checked(
    server: HostileServer,
) -> None:
    """The upstreams read without the SDK (instance metadata, the Kubernetes API) too."""
    from ack_secrets_provider.auth import ecs_ram_role, kube

    metadata = ecs_ram_role.MetadataClient(server.url, v1_fallback=True, ca_file=None)
    server.answer = Answer(huge=HUNDRED_MB)
    with pytest.raises(UnexpectedAnswer, match="larger than 65,536 bytes"):
        ecs_ram_role._fetch_credentials(metadata, "node-role", 5)
    server.answer = Answer(body=b'{"AccessKeyId": 7, "AccessKeySecret": "s"}')
    with pytest.raises(UnexpectedAnswer, match="field AccessKeyId is int"):
        ecs_ram_role._fetch_credentials(metadata, "node-role", 5)

    server.answer = Answer(huge=HUNDRED_MB)
    client = KubeClient.from_settings(ProviderSettings(kube_api_url=server.url,
                                                       kube_token_file=None, kube_ca_file=None))
    with pytest.raises(UnexpectedAnswer, match="larger than 4,194,304 bytes"):
        kube.role_arn(client, "ns", "sa", Deadline.after(10))
    server.answer = Answer(body=b'{"metadata": ["not", "an", "object"]}')
    assert kube.role_arn(client, "ns", "other", Deadline.after(10)) is None


#: answers no HTTP client can read: not HTTP at all, and a chunked body cut in the middle
BROKEN_HTTP = {"not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n",
               "cut": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n40\r\n{\"a\""}


@pytest.mark.parametrize("broken", BROKEN_HTTP)
def test_a_broken_http_answer_of_metadata_or_the_kubernetes_api_is_a_failed_request(
    server: HostileServer, broken: str,
) -> None:
    """http.client's own errors (BadStatusLine, IncompleteRead) are not OSErrors: they escaped
    the ECS role plugin ('a credential plugin failed unexpectedly'), pod-level RRSA's
    ServiceAccount read and start-up region discovery (a traceback). They are a request that
    failed, as a refused connection is."""
    from ack_secrets_provider.auth import ecs_ram_role, kube
    from ack_secrets_provider.core.cloud.region import RegionUnknown, discover_region

    server.answer = Answer(raw=BROKEN_HTTP[broken])
    metadata = ecs_ram_role.MetadataClient(server.url, v1_fallback=True, ca_file=None)
    for call in (lambda: ecs_ram_role._fetch_credentials(metadata, "node-role", 5),
                 lambda: ecs_ram_role._discover_role(metadata, 5)):
        with pytest.raises(FailedPrecondition, match=r"cannot be reached \(URLError\)"):
            call()
    client = KubeClient.from_settings(ProviderSettings(kube_api_url=server.url,
                                                       kube_token_file=None, kube_ca_file=None))
    with pytest.raises(Unavailable, match=f"Kubernetes API at {server.url} could not be reached"):
        kube.role_arn(client, "ns", "sa", Deadline.after(10))
    settings = ProviderSettings(
        endpoint_overrides=EndpointOverrides.parse([f"metadata={server.url}"], SERVICES),
        kube_api_url=server.url, kube_token_file=None, kube_ca_file=None,
        environ=MappingProxyType({"NODE_NAME": "node-1"}))
    with pytest.raises(RegionUnknown) as caught:
        discover_region(settings)
    assert f"metadata service at {server.url} gave no region-id (URLError)" in str(caught.value)
    assert f"node node-1's labels could not be read: GET /api/v1/nodes/node-1: the " \
        f"Kubernetes API at {server.url} could not be reached" in str(caught.value)


def test_a_metadata_or_kubernetes_api_answer_nested_too_deeply_is_not_a_crash(
    server: HostileServer,
) -> None:
    """The JSON decoder's RecursionError is no ValueError: it escaped the ECS role plugin and
    pod-level RRSA's ServiceAccount read. Such an answer is read as any other that is not
    JSON."""
    from ack_secrets_provider.auth import ecs_ram_role, kube

    server.answer = Answer(body=b"[" * 5000 + b"]" * 5000)
    metadata = ecs_ram_role.MetadataClient(server.url, v1_fallback=True, ca_file=None)
    with pytest.raises(FailedPrecondition, match=f"metadata service at {server.url}"):
        ecs_ram_role._fetch_credentials(metadata, "node-role", 5)
    client = KubeClient.from_settings(ProviderSettings(kube_api_url=server.url,
                                                       kube_token_file=None, kube_ca_file=None))
    assert kube.role_arn(client, "ns", "sa", Deadline.after(10)) is None


def test_a_metadata_answer_that_is_not_utf8_is_unexpected_not_a_crash(
    server: HostileServer,
) -> None:
    """The role listing and the region-id were decoded without a check: a UnicodeDecodeError
    escaped the ECS role plugin and start-up region discovery."""
    from ack_secrets_provider.auth import ecs_ram_role
    from ack_secrets_provider.core.cloud.region import RegionUnknown, discover_region

    server.answer = Answer(content_type="text/plain", body=b"node-role\xff\n")
    metadata = ecs_ram_role.MetadataClient(server.url, v1_fallback=True, ca_file=None)
    message = (f"the instance metadata service at {server.url}: the answer is not UTF-8 text; "
               "check the endpoint (an override or proxy pointing elsewhere?)")
    with pytest.raises(UnexpectedAnswer) as info:
        ecs_ram_role._discover_role(metadata, 5)
    assert info.value.message == message
    settings = ProviderSettings(
        endpoint_overrides=EndpointOverrides.parse([f"metadata={server.url}"], SERVICES),
        environ=MappingProxyType({}))
    with pytest.raises(RegionUnknown) as caught:
        discover_region(settings)
    assert f"gave no region-id: {message}" in str(caught.value)


def _switches(native_id: int) -> int:
    """How many times a thread of this process went to sleep (Linux /proc)."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def test_back_to_back_exchanges_do_not_wake_the_watchdog_each_time() -> None:
    """One client's SDK calls follow each other with none in flight between them: the watchdog
    ticks while they run instead of being woken by each (a thread switch per call)."""
    watchdog = ExchangeWatchdog()
    watchdog.finish(watchdog.start(time.monotonic() + 5))  # starts the thread
    thread = watchdog._thread
    assert thread is not None and thread.native_id is not None
    time.sleep(0.05)
    before = _switches(thread.native_id)
    started = time.monotonic()
    for _ in range(200):
        exchange = watchdog.start(time.monotonic() + 5)
        time.sleep(0.001)  # the request and its answer
        watchdog.finish(exchange)
    ticks = (time.monotonic() - started) / WATCHDOG_TICK
    # a few per tick (its timed wait, the GIL), not one per call (200 when each call woke it)
    assert _switches(thread.native_id) - before <= 4 * ticks + 10


def test_the_watchdog_ends_a_blocked_read_at_the_deadline_and_leaves_finished_ones_alone(
) -> None:
    assert WATCHDOG_TICK == 0.1  # docs/security.md: cut off "within 0.1 s" of the deadline
    watchdog = ExchangeWatchdog()
    ours, theirs = socket.socketpair()
    with ours, theirs:
        finished = watchdog.start(time.monotonic() + 0.2)
        watchdog.finish(finished)  # answered in time
        exchange = watchdog.start(time.monotonic() + 0.2)
        exchange.attach(ours)
        started = time.monotonic()
        assert ours.recv(1) == b""  # blocked until the watchdog shut the socket down
        assert 0.15 < time.monotonic() - started < 1.0
        assert exchange.expired
        time.sleep(0.3)
        assert not finished.expired
        # attached after its time was up: shut down at once
        late = watchdog.start(time.monotonic() - 1)
        time.sleep(0.3)
        other, peer = socket.socketpair()
        with other, peer:
            late.attach(other)
            assert other.recv(1) == b""
