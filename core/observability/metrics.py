"""Prometheus metrics of the provider, in a dedicated registry.

One `ProviderMetrics` object owns a private `CollectorRegistry` (never prometheus-client's global
one, so tests and embedders get isolated values) with every metric the provider exports, plus the
process, platform and GC collectors. There is no process-wide instance: the app (core/server/
app.py) creates one and hands it to what records (the fetcher, the mount observer, the Event
sender, the credential host, which passes it to credential plugins as `context.metrics`); tests
create their own and read values with `sample(...)`.

Cardinality rule: labels only take values from small fixed sets (results, gRPC code names,
reasons) or from what the operator installed (backend services, plugin names, credential modes).
Never a secret name, pod, namespace, ServiceAccount, role ARN or AccessKey id.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from ack_secrets_provider.core import __version__
from ack_secrets_provider.core.errors import (
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Throttled,
    Unauthenticated,
    Unavailable,
)

if TYPE_CHECKING:
    import grpc

PREFIX = "ack_secrets_provider"


class Recorded(Protocol):
    """What the metrics read of a core.plugins.backend.Backend (which imports this module's
    users: naming Backend here would close an import cycle)."""

    @property
    def service(self) -> str: ...
    @property
    def api(self) -> str: ...
    @property
    def batch_api(self) -> str: ...

# `*_created` timestamp series double the series count for no use on a node agent.
disable_created_metrics()

#: mount latency buckets (seconds): a cached mount takes milliseconds, kubelet gives up at ~2 min
MOUNT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OBJECT_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500)

#: error class → `result` label; order matters: Throttled is an Unavailable
_RESULT_OF_ERROR: tuple[tuple[type[BaseException], str], ...] = (
    (Throttled, "throttled"), (NotFound, "not_found"), (PermissionDenied, "denied"),
    (Unauthenticated, "unauthenticated"), (InvalidArgument, "invalid"),
    (DeadlineExceeded, "timeout"), (Unavailable, "unavailable"),
)


def result_of(error: BaseException | None) -> str:
    """The `result` label for an upstream call that raised `error` (None: success)."""
    if error is None:
        return "ok"
    for cls, name in _RESULT_OF_ERROR:
        if isinstance(error, cls):
            return name
    if isinstance(error, TimeoutError):
        return "timeout"
    return "error"


class ProviderMetrics:
    """Every metric of the provider, registered in one private registry."""

    def __init__(self, *, process_collectors: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}
        reg = self.registry
        if process_collectors:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)

        self.build_info = Info(f"{PREFIX}_build", "Version of the running provider.",
                               registry=reg)
        self.build_info.info({"version": __version__,
                              "python_version": platform.python_version()})

        # -- mounts -------------------------------------------------------------------------
        self.mounts = Counter(
            f"{PREFIX}_mounts", "Mount calls by result (success/failure) and gRPC status code.",
            ["result", "code"], registry=reg)
        self.mount_duration = Histogram(
            f"{PREFIX}_mount_duration_seconds", "Time to answer one Mount call.",
            ["result"], buckets=MOUNT_BUCKETS, registry=reg)
        self.mount_objects = Histogram(
            f"{PREFIX}_mount_objects", "Objects requested per successful Mount.",
            buckets=OBJECT_BUCKETS, registry=reg)
        self.mounts_in_flight = Gauge(
            f"{PREFIX}_mounts_in_flight", "Mount calls being served right now.", registry=reg)

        # -- upstream (backend) calls -------------------------------------------------------
        self.upstream_calls = Counter(
            f"{PREFIX}_upstream_calls",
            "Upstream attempts (one SDK call each) by service, API and result.",
            ["service", "api", "result"], registry=reg)
        self.upstream_duration = Histogram(
            f"{PREFIX}_upstream_call_duration_seconds", "Duration of one upstream attempt.",
            ["service", "api"], buckets=UPSTREAM_BUCKETS, registry=reg)
        self.retries = Counter(
            f"{PREFIX}_upstream_retries",
            "Upstream attempts that were retries of a failed attempt, by the failed result.",
            ["service", "reason"], registry=reg)
        self.throttles = Counter(
            f"{PREFIX}_upstream_throttled",
            "Upstream attempts the service answered with throttling.",
            ["service"], registry=reg)

        # -- value cache (recorded by the fetcher's cache) -----------------------------------
        self.cache_hits = Counter(
            f"{PREFIX}_cache_hits", "Objects served from the value cache.", ["service"],
            registry=reg)
        self.cache_misses = Counter(
            f"{PREFIX}_cache_misses", "Objects not in the value cache (fetched upstream).",
            ["service"], registry=reg)
        self.cache_coalesced = Counter(
            f"{PREFIX}_cache_coalesced_waits",
            "Fetches that waited for an identical fetch already in flight instead of calling.",
            ["service"], registry=reg)

        # -- credentials ---------------------------------------------------------------------
        self.sts_calls = Counter(
            f"{PREFIX}_sts_calls", "STS calls (AssumeRole, AssumeRoleWithOIDC) by result.",
            ["api", "result"], registry=reg)
        self.credential_refreshes = Counter(
            f"{PREFIX}_credential_refreshes",
            "Credential refreshes (a new temporary credential fetched) by mode and result.",
            ["mode", "result"], registry=reg)

        # -- plugins and events ---------------------------------------------------------------
        self.plugin_load_failures = Gauge(
            f"{PREFIX}_plugin_load_failures",
            "Plugins that failed to load at start-up (1 per failed plugin).",
            ["kind", "plugin"], registry=reg)
        self.events = Counter(
            f"{PREFIX}_kube_events",
            "Kubernetes Events by reason and outcome (sent, failed, suppressed, dropped).",
            ["reason", "outcome"], registry=reg)

    # -- exposition -------------------------------------------------------------------------

    def exposition(self) -> tuple[int, str, bytes]:
        """An HTTP answer (status, content type, body) with the current values."""
        return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)

    # -- recording --------------------------------------------------------------------------

    def _series(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once per label set: labels() checks its
        arguments and takes a lock on every call, and every mount records the same few series.
        Bounded like the series themselves (the cardinality rule above)."""
        series = self._children.get((metric, labels))
        if series is None:
            series = self._children[(metric, labels)] = metric.labels(*labels)
        return series

    def record_mount(self, code: grpc.StatusCode | None, seconds: float,
                     objects: int | None) -> None:
        result = "success" if code is None else "failure"
        self._series(self.mounts, result, "OK" if code is None else code.name).inc()
        self._series(self.mount_duration, result).observe(seconds)
        if objects is not None:
            self.mount_objects.observe(objects)

    def record_upstream(self, service: str, api: str, result: str, seconds: float) -> None:
        self.upstream_calls.labels(service, api, result).inc()
        self.upstream_duration.labels(service, api).observe(seconds)
        if result == "throttled":
            self.throttles.labels(service).inc()

    def upstream_recorder(self, backend: Recorded, *, batch: bool = False) -> UpstreamCalls:
        """The recorder of one fetch by `backend`: its `service` label, and its `api` (or
        `batch_api` for `fetch_batch`) as the `api` label (Backend gives the defaults)."""
        return UpstreamCalls(self, backend.service, backend.batch_api if batch else backend.api)

    def record_cache_hit(self, service: str, count: int = 1) -> None:
        self._series(self.cache_hits, service).inc(count)

    def record_cache_miss(self, service: str, count: int = 1) -> None:
        self._series(self.cache_misses, service).inc(count)

    def record_coalesced_wait(self, service: str, count: int = 1) -> None:
        self.cache_coalesced.labels(service).inc(count)

    def record_sts_call(self, api: str, error: BaseException | None = None) -> None:
        """One STS call (`api` e.g. "AssumeRoleWithOIDC"); `error` is what it raised, if any."""
        self.sts_calls.labels(api, result_of(error)).inc()

    def record_credential_refresh(self, mode: str, error: BaseException | None = None) -> None:
        """A refresh of a temporary credential for credential `mode` (e.g. "pod-rrsa")."""
        self.credential_refreshes.labels(mode, result_of(error)).inc()

    def record_event(self, reason: str, outcome: str) -> None:
        self.events.labels(reason, outcome).inc()


# -- recording the attempts of one fetch ------------------------------------------------------


class UpstreamCalls:
    """Records every attempt of one fetch: calls, durations, throttles and retries.

    The fetcher creates one per fetch unit (`ProviderMetrics.upstream_recorder`) and wraps each
    attempt in `attempt()`; an attempt after a failed one counts as a retry labelled with the
    failure's result.
    """

    def __init__(self, metrics: ProviderMetrics, service: str, api: str) -> None:
        self.metrics = metrics
        self.service = service
        self.api = api
        self._last: str | None = None

    @contextlib.contextmanager
    def attempt(self) -> Iterator[None]:
        metrics = self.metrics
        if self._last is not None and self._last != "ok":
            metrics.retries.labels(self.service, self._last).inc()
        started = time.monotonic()
        try:
            yield
        except BaseException as exc:
            self._last = result_of(exc)
            metrics.record_upstream(self.service, self.api, self._last,
                                    time.monotonic() - started)
            raise
        self._last = "ok"
        metrics.record_upstream(self.service, self.api, "ok", time.monotonic() - started)
