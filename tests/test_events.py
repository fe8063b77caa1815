"""Kubernetes Events: real mounts through the socket, POSTed to a fake API server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any

import ack_test_backend
import grpc
import pytest
from scraped import sample

from ack_secrets_provider.core.cloud.kube import KubeClient
from ack_secrets_provider.core.observability.events import (
    COMPONENT,
    MAX_TRACKED,
    EventRecorder,
    PodRef,
    RateLimiter,
    RotationTracker,
)
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.server.app import App, build_app, event_recorder
from ack_secrets_provider.core.server.driver_client import PodRef as DriverPod
from ack_secrets_provider.core.server.driver_client import ProviderClient, driver_attributes
from ack_secrets_provider.core.settings import ProviderSettings

FAKE_SA_TOKEN = "fake-provider-sa-token-123"


@dataclass
class FakeApi:
    """Records every request; `hold` blocks answers until set (a slow API server)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]


DEFAULT_POD = DriverPod()

@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    fake.hold.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            fake.requests.append({"method": "POST", "path": self.path, "body": body,
                                  "auth": self.headers.get("Authorization")})
            fake.arrived.set()
            fake.hold.wait(10)
            answer = json.dumps(body).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def settings_for(api: FakeApi, tmp_path: Path) -> ProviderSettings:
    token = tmp_path / "sa-token"
    token.write_text(FAKE_SA_TOKEN + "\n")
    return ProviderSettings(kube_api_url=api.url, kube_token_file=str(token), kube_ca_file=None,
                            environ=MappingProxyType({"NODE_NAME": "node-7"}))


@pytest.fixture
def app(api: FakeApi, tmp_path: Path) -> Iterator[App]:
    ack_test_backend.reset()
    app = build_app(settings_for(api, tmp_path), str(tmp_path / "sock"), grace_period=1.0,
                    events=True)
    app.start()
    try:
        yield app
    finally:
        app.stop()


def mount(app: App, objects: str, pod: DriverPod | None = DEFAULT_POD) -> grpc.StatusCode:
    client = ProviderClient(app.server.socket_path)
    try:
        client.mount(driver_attributes({"objects": objects}, pod=pod))
    except grpc.RpcError as exc:
        return exc.code()
    finally:
        client.close()
    return grpc.StatusCode.OK


def flush(app: App) -> None:
    """Every event queued so far is sent: stopping the sender sends what is queued first (one
    worker, in order); it is started again for the rest of the test."""
    assert app.events is not None
    app.events.stop()
    app.events.start()


def versioned(name: str, version: str) -> str:
    return f"- objectName: {name}\n  objectType: testmem\n  objectVersion: \"{version}\"\n"


def test_a_failed_mount_posts_one_warning_event_on_the_pod(app: App, api: FakeApi) -> None:
    pod = DriverPod()
    assert mount(app, "- {objectName: missing-db, objectType: testmem}\n") == (
        grpc.StatusCode.NOT_FOUND)
    flush(app)
    posts = api.posts()
    assert len(posts) == 1
    post = posts[0]
    assert post["path"] == f"/api/v1/namespaces/{pod.namespace}/events"
    assert post["auth"] == f"Bearer {FAKE_SA_TOKEN}"
    event = post["body"]
    assert event["kind"] == "Event" and event["apiVersion"] == "v1"
    assert event["metadata"]["namespace"] == pod.namespace
    assert event["metadata"]["name"].startswith(pod.name + ".")
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": pod.name,
                                       "namespace": pod.namespace, "uid": pod.uid}
    assert event["reason"] == "SecretMountFailed" and event["type"] == "Warning"
    assert event["source"] == {"component": COMPONENT, "host": "node-7"}
    assert "missing-db" in event["message"] and "app-secrets" in event["message"]

    # The same pod fails again at once: rate-limited, no second POST.
    assert mount(app, "- {objectName: missing-db, objectType: testmem}\n") == (
        grpc.StatusCode.NOT_FOUND)
    # Another pod fails: its own event.
    other = DriverPod(name="app-1", uid="6a1c5a1e-0000-4000-8000-000000000002")
    assert mount(app, "- {objectName: denied-x, objectType: testmem}\n", other) == (
        grpc.StatusCode.PERMISSION_DENIED)
    flush(app)
    posts = api.posts()
    assert [p["body"]["involvedObject"]["name"] for p in posts] == [pod.name, other.name]
    assert sample(app.metrics, "ack_secrets_provider_kube_events_total",
                  {"reason": "SecretMountFailed", "outcome": "sent"}) == 2
    assert sample(app.metrics, "ack_secrets_provider_kube_events_total",
                  {"reason": "SecretMountFailed", "outcome": "suppressed"}) == 1


def test_an_event_message_is_redacted_like_a_log_line(app: App, api: FakeApi) -> None:
    """A token pasted where a name belongs reaches the error message; the Event, readable by
    anyone who can list the namespace's events, carries it redacted."""
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXBhcnQ"
    assert mount(app, f"- {{objectName: missing-{token}, objectType: testmem}}\n") == (
        grpc.StatusCode.NOT_FOUND)
    flush(app)
    message = api.posts()[0]["body"]["message"]
    assert "<redacted-jwt>" in message
    assert token not in message and "c2lnbmF0dXJlLXBhcnQ" not in message


def test_a_version_change_posts_one_rotation_event(app: App, api: FakeApi) -> None:
    assert mount(app, versioned("db/password", "1") + versioned("other", "1")) == (
        grpc.StatusCode.OK)
    assert mount(app, versioned("db/password", "1") + versioned("other", "1")) == (
        grpc.StatusCode.OK)
    flush(app)
    assert api.posts() == []  # first mount and unchanged remount: nothing to say

    assert mount(app, versioned("db/password", "2") + versioned("other", "1")) == (
        grpc.StatusCode.OK)
    flush(app)
    posts = api.posts()
    assert len(posts) == 1
    event = posts[0]["body"]
    assert event["reason"] == "SecretRotated" and event["type"] == "Normal"
    assert event["involvedObject"]["uid"] == DriverPod().uid
    assert "db_password v1 -> v2" in event["message"]
    assert "other" not in event["message"]
    assert "value-of-" not in json.dumps(event)  # versions only, never values

    # Another change within the interval: rate-limited.
    assert mount(app, versioned("db/password", "3") + versioned("other", "1")) == (
        grpc.StatusCode.OK)
    flush(app)
    assert len(api.posts()) == 1


def test_a_rotation_event_lists_at_most_ten_files(app: App, api: FakeApi) -> None:
    """operations.md: SecretRotated "lists `file old -> new`, at most 10 files"."""
    names = [f"s{n:02}" for n in range(12)]
    for version in ("1", "2"):
        objects = "".join(versioned(name, version) for name in names)
        assert mount(app, objects) == grpc.StatusCode.OK
    flush(app)
    (post,) = api.posts()
    message = post["body"]["message"]
    assert message.count(" -> ") == 10 and "s00 v1 -> v2" in message
    assert message.endswith(" and 2 more") and "12 object(s) changed version" in message


def test_mounts_without_a_pod_post_nothing(app: App, api: FakeApi) -> None:
    assert mount(app, "- {objectName: missing-db, objectType: testmem}\n", pod=None) == (
        grpc.StatusCode.NOT_FOUND)
    flush(app)
    assert api.posts() == []


def test_a_slow_api_server_never_holds_a_mount(app: App, api: FakeApi) -> None:
    api.hold.clear()  # the API server accepts the POST but does not answer
    assert mount(app, "- {objectName: missing-a, objectType: testmem}\n") == (
        grpc.StatusCode.NOT_FOUND)
    assert api.arrived.wait(5)
    # The POST is still unanswered, yet a second mount is served normally.
    other = DriverPod(name="app-2", uid="6a1c5a1e-0000-4000-8000-000000000003")
    assert mount(app, "- {objectName: fine, objectType: testmem}\n", other) == grpc.StatusCode.OK
    assert not api.hold.is_set()
    api.hold.set()
    flush(app)


def test_events_off_posts_nothing(api: FakeApi, tmp_path: Path) -> None:
    app = build_app(settings_for(api, tmp_path), str(tmp_path / "sock"), grace_period=1.0,
                    events=False)
    assert app.events is None
    app.start()
    try:
        assert mount(app, "- {objectName: missing-db, objectType: testmem}\n") == (
            grpc.StatusCode.NOT_FOUND)
    finally:
        app.stop()
    assert api.posts() == []


def test_outside_a_cluster_events_are_disabled_not_fatal() -> None:
    metrics = ProviderMetrics(process_collectors=False)
    outside = ProviderSettings(environ=MappingProxyType({}))
    assert event_recorder(KubeClient.from_settings(outside), outside, metrics) is None
    inside = ProviderSettings(environ=MappingProxyType(
        {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}))
    recorder = event_recorder(KubeClient.from_settings(inside), inside, metrics)
    assert recorder is not None and recorder.client.base_url == "https://10.0.0.1:6443"


def test_a_full_queue_drops_and_counts() -> None:
    client = KubeClient("http://127.0.0.1:9", token_file=None, ca_file=None)
    m = ProviderMetrics(process_collectors=False)
    recorder = EventRecorder(client, metrics=m, queue_size=1)  # no worker: the queue fills
    recorder.mount_failed(PodRef("a", "ns", "uid-a"), "spc", "boom")
    recorder.mount_failed(PodRef("b", "ns", "uid-b"), "spc", "boom")
    assert sample(m, "ack_secrets_provider_kube_events_total",
                    {"reason": "SecretMountFailed", "outcome": "dropped"}) == 1


def test_rate_limiter_per_pod_interval_and_global_cap() -> None:
    now = [1000.0]
    limiter = RateLimiter(per_key_interval=300, global_per_minute=2, clock=lambda: now[0])
    assert limiter.allow(("pod-1", "R"))
    assert not limiter.allow(("pod-1", "R"))  # same pod and reason within the interval
    assert limiter.allow(("pod-2", "R"))
    assert not limiter.allow(("pod-3", "R"))  # global cap: 2 per minute
    now[0] += 30  # one token back
    assert limiter.allow(("pod-3", "R"))
    now[0] += 300
    assert limiter.allow(("pod-1", "R"))  # the interval passed


def test_rotation_tracker_is_bounded() -> None:
    assert MAX_TRACKED == 20_000  # docs/operations.md: "bounded at 20,000 entries"
    tracker = RotationTracker()
    for i in range(MAX_TRACKED + 10):
        assert tracker.update(f"uid-{i}", "spc", {"f": "v1"}) == []
    assert len(tracker) == MAX_TRACKED
    last = f"uid-{MAX_TRACKED + 9}"
    assert tracker.update(last, "spc", {"f": "v2"}) == [("f", "v1", "v2")]
    assert tracker.update("uid-0", "spc", {"f": "v2"}) == []  # evicted: seen as new


def test_the_default_limits_operations_md_states() -> None:
    """docs/operations.md, Events: at most one per pod and reason every 5 minutes, at most 60 per
    minute per provider, and a queue of 256 (then dropped), with the recorder's own defaults."""
    client = KubeClient("http://127.0.0.1:9", token_file=None, ca_file=None)
    m = ProviderMetrics(process_collectors=False)
    recorder = EventRecorder(client, metrics=m)  # no worker: the queue keeps what passes
    start, elapsed = time.monotonic(), [0.0]
    recorder.limiter.clock = lambda: start + elapsed[0]

    def fail(uid: str) -> None:
        recorder.mount_failed(PodRef(f"pod-{uid}", "ns", uid), "spc", "boom")

    def count(outcome: str) -> float:
        return sample(m, "ack_secrets_provider_kube_events_total",
                      {"reason": "SecretMountFailed", "outcome": outcome})

    for n in range(61):  # a burst of 60 distinct pods passes, the 61st does not
        fail(f"burst-{n}")
    assert count("suppressed") == 1
    elapsed[0] += 1.0  # one event per second comes back
    fail("late-1")
    fail("late-2")
    assert count("suppressed") == 2
    elapsed[0] = 299.0  # the bucket is full again; the first pod's 5 minutes are not over
    fail("burst-0")
    assert count("suppressed") == 3
    elapsed[0] = 300.0
    fail("burst-0")
    assert count("suppressed") == 3
    queued = 60 + 1 + 1
    while queued < 256:  # one distinct pod per second: the rate limit lets each one through
        elapsed[0] += 1.0
        fail(f"fill-{queued}")
        queued += 1
    assert count("dropped") == 0
    elapsed[0] += 1.0
    fail("one-too-many")
    assert count("dropped") == 1 and count("suppressed") == 3
