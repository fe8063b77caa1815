"""Prometheus metrics: scraped over HTTP after real mounts through the real socket.

The provider is wired by `build_app` exactly as `serve` wires it (test backend `testmem` from
tests/plugins/ack-test-backend), with HTTP servers on 127.0.0.1 ephemeral ports.
"""

from __future__ import annotations

import logging
import re
import socket
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import grpc
import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from scraped import sample
from stevedore import ExtensionManager

from ack_secrets_provider.core import __version__
from ack_secrets_provider.core.cloud.endpoints import Endpoint
from ack_secrets_provider.core.errors import (
    DeadlineExceeded,
    NotFound,
    PermissionDenied,
    RejectedByUpstream,
    Throttled,
    Unauthenticated,
    Unavailable,
    UnexpectedAnswer,
    UpstreamDataError,
)
from ack_secrets_provider.core.mount.spec import ObjectSpec, ObjectTypes, parse_mount_request
from ack_secrets_provider.core.observability.health import BindError
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins.backend import Backend, FetchContext, SecretValue
from ack_secrets_provider.core.plugins.credentials import Identity, IdentityKey
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.fetcher import Fetcher, FetchUnit
from ack_secrets_provider.core.server.app import App, HealthSettings, MetricsSettings, build_app
from ack_secrets_provider.core.server.driver_client import PodRef, ProviderClient, driver_attributes
from ack_secrets_provider.core.settings import ProviderSettings, RetryPolicy

P = "ack_secrets_provider"


DEFAULT_POD = PodRef()

@pytest.fixture
def app(served_provider: App) -> App:
    return served_provider


def one(name: str, **extra: str) -> str:
    lines = [f"- objectName: {name}", "  objectType: testmem"]
    lines += [f"  {key}: {value!r}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            samples[(found.name, tuple(sorted(found.labels.items())))] = found.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def mount(client: ProviderClient, objects: str, pod: PodRef = DEFAULT_POD) -> grpc.StatusCode:
    try:
        client.mount(driver_attributes({"objects": objects}, pod=pod))
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_mount_and_upstream_counters_move_after_mounts(app: App) -> None:
    assert app.metrics_server is not None
    client = ProviderClient(app.server.socket_path)
    try:
        assert mount(client, one("db/password") + one("api-key")) == grpc.StatusCode.OK
        assert mount(client, one("missing-thing")) == grpc.StatusCode.NOT_FOUND
        assert mount(client, one("denied-thing")) == grpc.StatusCode.PERMISSION_DENIED
        assert mount(client, "- objectName: x\n  objectType: nosuchtype\n") == (
            grpc.StatusCode.INVALID_ARGUMENT)
    finally:
        client.close()
    s = scrape(app.metrics_server.port)

    assert value(s, f"{P}_mounts_total", result="success", code="OK") == 1
    assert value(s, f"{P}_mounts_total", result="failure", code="NOT_FOUND") == 1
    assert value(s, f"{P}_mounts_total", result="failure", code="PERMISSION_DENIED") == 1
    assert value(s, f"{P}_mounts_total", result="failure", code="INVALID_ARGUMENT") == 1
    assert value(s, f"{P}_mount_duration_seconds_count", result="success") == 1
    assert value(s, f"{P}_mount_duration_seconds_count", result="failure") == 3
    assert value(s, f"{P}_mount_duration_seconds_bucket", result="failure", le="+Inf") == 3
    assert value(s, f"{P}_mount_objects_count") == 1
    assert value(s, f"{P}_mount_objects_sum") == 2
    assert value(s, f"{P}_mounts_in_flight") == 0

    calls = f"{P}_upstream_calls_total"
    assert value(s, calls, service="testmem", api="Fetch", result="ok") == 2
    assert value(s, calls, service="testmem", api="Fetch", result="not_found") == 1
    assert value(s, calls, service="testmem", api="Fetch", result="denied") == 1
    assert value(s, f"{P}_upstream_call_duration_seconds_count", service="testmem",
                 api="Fetch") == 4

    assert value(s, f"{P}_build_info", version=__version__,
                 python_version=__import__("platform").python_version()) == 1
    assert any(name == "process_cpu_seconds_total" for name, _ in s)  # process collector
    assert any(name == "python_info" for name, _ in s)  # platform collector
    assert any(name.startswith("python_gc_") for name, _ in s)  # gc collector


def test_metrics_are_also_served_on_the_health_port(app: App) -> None:
    assert app.health is not None
    client = ProviderClient(app.server.socket_path)
    try:
        mount(client, one("a"))
    finally:
        client.close()
    s = scrape(app.health.port)
    assert value(s, f"{P}_mounts_total", result="success", code="OK") == 1
    # docs/operations.md: "`*_created` series are disabled" (they double the series count)
    assert not [name for name, _ in s if name.endswith("_created")]


def test_no_pod_namespace_or_secret_name_in_any_label(app: App) -> None:
    assert app.metrics_server is not None
    pod = PodRef(name="very-unique-pod-name", namespace="very-unique-namespace")
    client = ProviderClient(app.server.socket_path)
    try:
        mount(client, one("very-unique-secret-name"), pod)
        mount(client, one("missing-very-unique-secret"), pod)
    finally:
        client.close()
    with urllib.request.urlopen(
        f"http://127.0.0.1:{app.metrics_server.port}/metrics", timeout=5
    ) as response:
        text = response.read().decode()
    assert f"{P}_mounts_total" in text
    for needle in ("very-unique", "app-secrets", PodRef().uid, "value-of-"):
        assert needle not in text


def test_each_app_records_into_its_own_registry(tmp_path: Path) -> None:
    """No process-wide registry: two apps never share values (tests and embedders are
    isolated), and an app's collaborators all record into the app's own."""
    first = build_app(ProviderSettings(), str(tmp_path / "one"))
    second = build_app(ProviderSettings(), str(tmp_path / "two"))
    try:
        assert first.metrics is not second.metrics
        assert first.credentials.metrics is first.metrics
        assert first.service.fetcher.metrics is first.metrics
        first.credentials.metrics.record_sts_call("AssumeRoleWithOIDC")
        second.credentials.metrics.record_sts_call("AssumeRoleWithOIDC", Throttled("throttled"))
    finally:
        first.close_unstarted()
        second.close_unstarted()
    labels = {"api": "AssumeRoleWithOIDC"}
    assert sample(first.metrics, f"{P}_sts_calls_total", {**labels, "result": "ok"}) == 1
    assert sample(second.metrics, f"{P}_sts_calls_total", {**labels, "result": "ok"}) == 0
    assert sample(second.metrics, f"{P}_sts_calls_total", {**labels, "result": "throttled"}) == 1


def test_recording_for_cache_and_credential_plugins() -> None:
    m = ProviderMetrics(process_collectors=False)
    m.record_cache_hit("kms", 3)
    m.record_cache_miss("kms")
    m.record_coalesced_wait("oos", 2)
    m.record_credential_refresh("pod-rrsa")
    m.record_credential_refresh("pod-rrsa", NotFound("no such role"))
    assert sample(m, f"{P}_cache_hits_total", {"service": "kms"}) == 3
    assert sample(m, f"{P}_cache_misses_total", {"service": "kms"}) == 1
    assert sample(m, f"{P}_cache_coalesced_waits_total", {"service": "oos"}) == 2
    assert sample(m, f"{P}_credential_refreshes_total",
                    {"mode": "pod-rrsa", "result": "ok"}) == 1
    assert sample(m, f"{P}_credential_refreshes_total",
                    {"mode": "pod-rrsa", "result": "not_found"}) == 1


class FlakyBackend(Backend):
    """Throttles the first `failures` attempts, then answers."""

    object_type: ClassVar[str] = "flaky"
    service: ClassVar[str] = "flakysvc"
    api: ClassVar[str] = "GetFlaky"

    def __init__(self, settings: ProviderSettings, failures: int) -> None:
        super().__init__(settings)
        self.failures = failures
        self.calls = 0

    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        return Endpoint(service=self.service, host="flaky.local", address="flaky.local")

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        self.calls += 1
        if self.calls <= self.failures:
            raise Throttled(f"{spec.describe()}: throttled by the test backend")
        return SecretValue(b"value-of-flaky", "v1")


def specs_for(names: Sequence[str]) -> tuple[ObjectSpec, ...]:
    objects = "".join(f"- objectName: {name}\n  objectType: flaky\n" for name in names)
    request = parse_mount_request(
        driver_attributes({"objects": objects}), "null", '"420"',
        default_region=None, types=ObjectTypes(fields={"flaky": ()}),
    )
    return tuple(request.objects)


def test_retries_and_throttles_are_counted_through_the_fetch_path() -> None:
    settings = ProviderSettings(retry=RetryPolicy(max_attempts=5, base_delay=0.001,
                                                  max_delay=0.002))
    backend = FlakyBackend(settings, failures=2)
    context = FetchContext(
        Identity(IdentityKey(mode="anonymous"), None, provider_level=False),
        Deadline.after(10), backend.endpoint(specs_for(["f"])[0], None), settings,
    )
    m = ProviderMetrics(process_collectors=False)
    values = Fetcher(settings, metrics=m).fetch(FetchUnit(backend, specs_for(["f"]), context))
    assert [v.data for v in values] == [b"value-of-flaky"]
    labels = {"service": "flakysvc", "api": "GetFlaky"}
    assert sample(m, f"{P}_upstream_calls_total", {**labels, "result": "throttled"}) == 2
    assert sample(m, f"{P}_upstream_calls_total", {**labels, "result": "ok"}) == 1
    assert sample(m, f"{P}_upstream_throttled_total", {"service": "flakysvc"}) == 2
    assert sample(m, f"{P}_upstream_retries_total",
                    {"service": "flakysvc", "reason": "throttled"}) == 2


def test_a_taken_metrics_port_fails_start_up_with_a_clear_error(
    tmp_path: Path, taken_port: int
) -> None:
    port = taken_port
    with pytest.raises(BindError) as info:
        build_app(ProviderSettings(), str(tmp_path),
                  health=HealthSettings("127.0.0.1", 0, "/healthz", 1.0),
                  metrics=MetricsSettings("127.0.0.1", port))
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "metrics" in message and "--metrics-port" in message


def test_metrics_on_the_health_listeners_port_add_no_second_listener(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = build_app(ProviderSettings(), str(tmp_path),
                    health=HealthSettings("127.0.0.1", port, "/healthz", 1.0),
                    metrics=MetricsSettings("127.0.0.1", port))
    try:
        assert app.metrics_server is None and app.health is not None
        app.health.start()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert f"{P}_build_info" in response.read().decode()
    finally:
        app.close_unstarted()


def test_a_plugin_that_fails_to_load_is_a_metric_and_a_log_line_and_the_rest_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """plugin-authors.md / operations.md: a backend or credential plugin that fails to import is
    reported (log line, `ack_secrets_provider_plugin_load_failures{kind, plugin}` = 1) and the
    others keep working; an object of the broken backend's type is INVALID_ARGUMENT listing
    the installed types."""
    dist = tmp_path / "broken_vault-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-vault\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text(
        "[ack_secrets_provider.backends]\nvault = no_such_vault_module:Backend\n\n"
        "[ack_secrets_provider.credentials]\nvault-auth = no_such_vault_auth_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})  # stevedore's, per process
    with caplog.at_level(logging.ERROR, logger="ack_secrets_provider"):
        app = build_app(ProviderSettings(), str(tmp_path / "provider"),
                        metrics=MetricsSettings("127.0.0.1", 0))
    app.start()
    client = ProviderClient(app.server.socket_path)
    try:
        assert mount(client, one("db/password")) == grpc.StatusCode.OK
        with pytest.raises(grpc.RpcError) as refused:
            client.mount(driver_attributes({"objects": "- {objectName: x, objectType: vault}\n"}))
        assert app.metrics_server is not None
        s = scrape(app.metrics_server.port)
    finally:
        client.close()
        app.stop()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "testmem" in str(refused.value.details())
    assert value(s, f"{P}_plugin_load_failures", kind="backend", plugin="vault") == 1
    assert value(s, f"{P}_plugin_load_failures", kind="credential", plugin="vault-auth") == 1
    assert len([key for key in s if key[0] == f"{P}_plugin_load_failures"]) == 2
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "plugin vault (broken-vault) failed to load" in logged
    assert "plugin vault-auth (broken-vault) failed to load" in logged


class BatchingBackend(FlakyBackend):
    """A third party's batching backend naming its batch API."""

    max_batch: ClassVar[int] = 10
    batch_api: ClassVar[str] = "BatchGetFlaky"


class UnnamedBatchBackend(FlakyBackend):
    """A batching backend that names no batch API."""

    max_batch: ClassVar[int] = 10


@pytest.mark.parametrize(("backend_class", "api"), [
    (BatchingBackend, "BatchGetFlaky"), (UnnamedBatchBackend, "FetchBatch")])
def test_a_batch_call_is_labelled_with_the_backends_batch_api(
    backend_class: type[FlakyBackend], api: str,
) -> None:
    """operations.md: the `api` label is the backend's `batch_api` for a batch call
    (`FetchBatch` when it declares none); a single object's call keeps its `api`."""
    settings = ProviderSettings()
    backend = backend_class(settings, failures=0)
    specs = specs_for(["a", "b"])
    context = FetchContext(
        Identity(IdentityKey(mode="anonymous"), None, provider_level=False),
        Deadline.after(10), backend.endpoint(specs[0], None), settings,
    )
    m = ProviderMetrics(process_collectors=False)
    fetcher = Fetcher(settings, metrics=m)
    fetcher.fetch(FetchUnit(backend, specs, context))
    fetcher.fetch(FetchUnit(backend, specs_for(["c"]), context))
    calls = f"{P}_upstream_calls_total"
    assert sample(m, calls, {"service": "flakysvc", "api": api, "result": "ok"}) == 1
    assert sample(m, calls, {"service": "flakysvc", "api": "GetFlaky", "result": "ok"}) == 1


class AnsweringBackend(FlakyBackend):
    """A third party's backend whose every attempt raises `error`."""

    def __init__(self, settings: ProviderSettings, error: BaseException) -> None:
        super().__init__(settings, failures=0)
        self.error = error

    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        raise self.error


@pytest.mark.parametrize(("error", "result"), [
    (NotFound("x"), "not_found"), (PermissionDenied("x"), "denied"),
    (Unauthenticated("x"), "unauthenticated"), (RejectedByUpstream("x"), "invalid"),
    (Throttled("x"), "throttled"), (Unavailable("x"), "unavailable"),
    (DeadlineExceeded("x"), "timeout"), (TimeoutError("x"), "timeout"),
    (UnexpectedAnswer("x"), "error"), (UpstreamDataError("x"), "error"),
    (RuntimeError("x"), "error"),
], ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value)
def test_the_upstream_result_label_of_each_error_a_backend_raises(
    error: BaseException, result: str,
) -> None:
    """operations.md's fixed `result` set, which the alerts select on (denied and
    unauthenticated: SecretsProviderPermissionDenied), for the errors plugin-authors.md lists."""
    settings = ProviderSettings(retry=RetryPolicy(max_attempts=1))
    backend = AnsweringBackend(settings, error)
    context = FetchContext(
        Identity(IdentityKey(mode="anonymous"), None, provider_level=False),
        Deadline.after(10), backend.endpoint(specs_for(["f"])[0], None), settings,
    )
    m = ProviderMetrics(process_collectors=False)
    with pytest.raises(Exception):  # noqa: B017,PT011 - the class is the parameter's
        Fetcher(settings, metrics=m).fetch(FetchUnit(backend, specs_for(["f"]), context))
    assert sample(m, f"{P}_upstream_calls_total",
                  {"service": "flakysvc", "api": "GetFlaky", "result": result}) == 1


def _top_level_names(cell: str) -> list[str]:
    """The backquoted names of a table cell outside parentheses (`result` (`ok`, ...) → result)."""
    depth, kept = 0, []
    for char in cell:
        depth += (char == "(") - (char == ")")
        if depth == 0 and char != ")":
            kept.append(char)
    return re.findall(r"`(\w+)`", "".join(kept))


def test_the_metric_tables_types_and_labels_are_the_registrys() -> None:
    """Every row of operations.md's metric tables: its type and its labels are the exported
    metric's (a dashboard or alert written from the page selects on them)."""
    page = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    rows = re.findall(r"^\| `(ack_secrets_provider_\w+)` \| ([^|]+) \| ([^|]*) \|", page,
                      re.MULTILINE)
    kinds = {"counter": "counter", "histogram": "histogram", "gauge": "gauge",
             "info": "gauge"}  # an Info is exported as a gauge of value 1
    registry = ProviderMetrics(process_collectors=False)
    exported = {}
    for metric in vars(registry).values():
        if isinstance(metric, MetricWrapperBase):
            family = next(iter(metric.collect()))
            name = family.name + ("_total" if family.type == "counter" else "")
            labels = list(metric._labelnames)  # declared label names: no public accessor
            if family.type == "info":  # its labels are its value's keys
                name += "_info"
                labels = list(family.samples[0].labels)
            exported[name] = (kinds[family.type], sorted(labels))
    assert len(rows) == len(exported)
    for name, kind, labels in rows:
        assert exported[name] == (kind.split()[0], sorted(_top_level_names(labels))), name


def test_cache_hits_and_misses_are_counted_for_a_third_party_backend() -> None:
    """operations.md: cache hits and misses "are recorded by the core for every backend",
    labelled with the backend's service: an object fetched is a miss, the same object again
    within the TTL a hit (and no upstream call), in a batch too."""
    settings = ProviderSettings(cache_ttl=60.0)
    backend = BatchingBackend(settings, failures=0)
    context = FetchContext(
        Identity(IdentityKey(mode="anonymous"), None, provider_level=False),
        Deadline.after(10), backend.endpoint(specs_for(["a"])[0], None), settings,
    )
    m = ProviderMetrics(process_collectors=False)
    fetcher = Fetcher(settings, metrics=m)
    for names in (["a", "b"], ["a", "b"], ["a", "b", "c", "d"]):
        fetcher.fetch(FetchUnit(backend, specs_for(names), context))
    labels = {"service": "flakysvc"}
    assert sample(m, f"{P}_cache_misses_total", labels) == 4  # a, b, then c, d
    assert sample(m, f"{P}_cache_hits_total", labels) == 4  # a, b twice
    assert backend.calls == 4
