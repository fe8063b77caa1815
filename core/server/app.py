"""Wiring: settings → metrics → plugins → mount service → gRPC server (+ health, metrics, events).

The App owns everything it builds and closes it in the reverse order: the HTTP endpoints stop
first, then the gRPC server drains the mounts in flight, then the mount service (its fetch pool),
the backends (their SDK clients) and last the Event sender, which sends what is still queued.
Nothing below the App closes what it was handed.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

from ack_secrets_provider.core.cloud.kube import KubeClient
from ack_secrets_provider.core.mount.service import MountService
from ack_secrets_provider.core.observability.events import EventRecorder
from ack_secrets_provider.core.observability.health import (
    HealthServer,
    HttpEndpoints,
    grpc_health_check,
)
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.observability.observe import MountObserver
from ack_secrets_provider.core.plugins.credentials import CredentialHost, IdentityCache
from ack_secrets_provider.core.plugins.host import BackendHost
from ack_secrets_provider.core.resilience.fetcher import Fetcher
from ack_secrets_provider.core.server.grpc_server import ProviderServer
from ack_secrets_provider.core.settings import ProviderSettings

log = logging.getLogger("ack_secrets_provider")


@dataclass(frozen=True)
class HealthSettings:
    """The /healthz + /readyz listener (`port` 0: a free port); `timeout` bounds the liveness
    probe's gRPC health check."""

    address: str
    port: int
    path: str = "/healthz"
    timeout: float = 5.0


@dataclass(frozen=True)
class MetricsSettings:
    """The /metrics listener (`port` 0: a free port). The health listener's address and port
    serve /metrics already: the same address and port add no second listener."""

    address: str
    port: int


def load_plugins(
    settings: ProviderSettings, *, autoload_third_party: bool = True,
) -> tuple[BackendHost, CredentialHost]:
    """The backends and credential plugins, for listing or checking them (`plugins`, `lint`)."""
    backends = BackendHost(settings)
    backends.load(autoload_third_party=autoload_third_party)
    credentials = CredentialHost(settings)
    credentials.load(autoload_third_party=autoload_third_party)
    return backends, credentials


@dataclass
class App:
    """The provider process: what it built, started and stopped in order."""

    metrics: ProviderMetrics
    backends: BackendHost
    credentials: CredentialHost
    service: MountService
    server: ProviderServer
    events: EventRecorder | None = None
    health: HealthServer | None = None
    metrics_server: HttpEndpoints | None = None

    def start(self) -> None:
        if self.events is not None:
            self.events.start()
        self.server.start()
        for http in (self.health, self.metrics_server):
            if http is not None:
                http.start()

    def stop(self, grace: float | None = None) -> None:
        """Stop serving, let mounts in flight finish within `grace` (default: the server's
        grace period), then close what the App built."""
        self._stop_http()
        self.server.stop(grace)
        self.service.close()
        self.backends.close()
        if self.events is not None:
            self.events.stop()

    def close_unstarted(self) -> None:
        """Release what an app that will not start holds (bound HTTP ports, pools, clients)."""
        self._stop_http()
        self.service.close()
        self.backends.close()

    def _stop_http(self) -> None:
        for http in (self.health, self.metrics_server):
            if http is not None:
                http.stop()


def event_recorder(
    kube: KubeClient | None, settings: ProviderSettings, metrics: ProviderMetrics
) -> EventRecorder | None:
    """The Event sender through the provider's Kubernetes API client, if there is one."""
    if kube is None:
        log.warning("--events is on but the provider does not run in a cluster "
                    "(KUBERNETES_SERVICE_HOST is unset): no Kubernetes Events will be created")
        return None
    return EventRecorder(kube, metrics=metrics,
                         node_name=settings.environ.get("NODE_NAME") or None)


def _ready(server: ProviderServer, backends: BackendHost) -> bool:
    """Ready: the socket is bound (a socket file exists) and at least one backend loaded."""
    try:
        bound = stat.S_ISSOCK(os.stat(server.socket_path).st_mode)
    except OSError:
        return False
    return bound and bool(backends.backends)


def build_app(
    settings: ProviderSettings,
    socket_dir: str,
    *,
    autoload_third_party: bool = True,
    grace_period: float = 30.0,
    health: HealthSettings | None = None,
    metrics: MetricsSettings | None = None,
    events: bool = False,
    clock: Callable[[], float] = time.time,
) -> App:
    """Wire the provider. Binds the HTTP ports now (a taken port raises BindError at once).

    `health` / `metrics`: the HTTP listeners, None for none; `events`: send Kubernetes Events;
    `clock`: the epoch seconds credential lifetimes are measured on.
    """
    registry = ProviderMetrics()
    kube = KubeClient.from_settings(settings)  # the one client: Events and ServiceAccount reads
    backends = BackendHost(settings)
    backends.load(autoload_third_party=autoload_third_party)
    credentials = CredentialHost(settings, metrics=registry,
                                 identities=IdentityCache(clock=clock), kube=kube)
    credentials.load(autoload_third_party=autoload_third_party)
    for kind, failures in (("backend", backends.failures), ("credential", credentials.failures)):
        for failure in failures:
            registry.plugin_load_failures.labels(kind, failure.name).set(1)
            log.error("plugin %s (%s) failed to load: %s", failure.name,
                      failure.distribution or "unknown distribution", failure.reason)
    for line in settings.endpoint_overrides.describe():
        log.warning("endpoint override in effect: %s", line)
    recorder = event_recorder(kube, settings, registry) if events else None
    service = MountService(settings, backends, credentials,
                           fetcher=Fetcher(settings, metrics=registry))
    server = ProviderServer(service, socket_dir, observer=MountObserver(registry, recorder),
                            grace_period=grace_period)
    app = App(registry, backends, credentials, service, server, events=recorder)
    try:
        if health is not None:
            app.health = HealthServer(
                health.address, health.port, healthz_path=health.path,
                live=lambda: grpc_health_check(server.target, health.timeout),
                ready=lambda: _ready(server, backends),
                extra_routes={"/metrics": registry.exposition},
            )
        shared = (metrics is not None and health is not None and metrics.port != 0
                  and (metrics.address, metrics.port) == (health.address, health.port))
        if metrics is not None and not shared:
            app.metrics_server = HttpEndpoints(
                metrics.address, metrics.port, {"/metrics": registry.exposition},
                what="metrics", flag="--metrics-port",
            )
    except BaseException:
        app.close_unstarted()
        raise
    return app
