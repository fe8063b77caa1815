"""Wiring: settings → plugins → mount service → gRPC server (+ health, metrics, events)."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field

from ack_secrets_provider.core.cloud.kube import KubeClient
from ack_secrets_provider.core.mount.service import MountService
from ack_secrets_provider.core.observability import metrics as metrics_module
from ack_secrets_provider.core.observability.events import EventRecorder
from ack_secrets_provider.core.observability.health import (
    HealthServer,
    HttpEndpoints,
    grpc_health_check,
)
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.observability.observe import MountObserver
from ack_secrets_provider.core.plugins.credentials import CredentialHost
from ack_secrets_provider.core.plugins.host import BackendHost
from ack_secrets_provider.core.server.grpc_server import ProviderServer
from ack_secrets_provider.core.settings import ProviderSettings

log = logging.getLogger("ack_secrets_provider")


def load_plugins(
    settings: ProviderSettings, *, autoload_third_party: bool = True
) -> tuple[BackendHost, CredentialHost]:
    backends = BackendHost(settings)
    backends.load(autoload_third_party=autoload_third_party)
    credentials = CredentialHost(settings)
    credentials.load(autoload_third_party=autoload_third_party)
    return backends, credentials


@dataclass
class App:
    """The provider process: gRPC server, HTTP health/metrics endpoints and the event sender."""

    server: ProviderServer
    health: HealthServer | None = None
    metrics_server: HttpEndpoints | None = None
    events: EventRecorder | None = None
    metrics: ProviderMetrics = field(default_factory=metrics_module.current)

    def start(self) -> None:
        if self.events is not None:
            self.events.start()
        self.server.start()
        for http in (self.health, self.metrics_server):
            if http is not None:
                http.start()

    def stop(self) -> None:
        for http in (self.health, self.metrics_server):
            if http is not None:
                http.stop()
        self.server.stop()
        if self.events is not None:
            self.events.stop()

    def close_unstarted(self) -> None:
        """Release the bound HTTP ports of an app that will not start."""
        for http in (self.health, self.metrics_server):
            if http is not None:
                http.stop()


def _enabled(port: int, any_port: bool) -> bool:
    """Port 0 disables a server (the flags' contract) unless tests ask for an ephemeral port."""
    return port > 0 or (any_port and port == 0)


def event_recorder(settings: ProviderSettings) -> EventRecorder | None:
    """The Event sender for the in-cluster (or `settings.kube_api_url`) API server, if any."""
    client = KubeClient.from_settings(
        settings.kube_api_url, settings.environ,
        token_file=settings.kube_token_file, ca_file=settings.kube_ca_file,
    )
    if client is None:
        log.warning("--events is on but the provider does not run in a cluster "
                    "(KUBERNETES_SERVICE_HOST is unset): no Kubernetes Events will be created")
        return None
    return EventRecorder(client, node_name=settings.environ.get("NODE_NAME") or None)


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
    healthz: tuple[str, int, str, float] | None = None,
    metrics: tuple[str, int] | None = None,
    events: bool = False,
    provider_metrics: ProviderMetrics | None = None,
    event_sender: EventRecorder | None = None,
    any_port: bool = False,
) -> App:
    """Wire the provider. Binds the HTTP ports now (a taken port raises BindError at once).

    `provider_metrics` (default: a fresh ProviderMetrics) becomes the process's current metrics.
    `event_sender` replaces the in-cluster Event recorder when `events` is on (tests).
    `any_port`: port 0 means "an ephemeral port" instead of "disabled" (tests).
    """
    registry = provider_metrics or ProviderMetrics()
    metrics_module.install(registry)
    backends, credentials = load_plugins(settings, autoload_third_party=autoload_third_party)
    for kind, failures in (("backend", backends.failures), ("credential", credentials.failures)):
        for failure in failures:
            registry.plugin_load_failures.labels(kind, failure.name).set(1)
            log.error("plugin %s (%s) failed to load: %s", failure.name,
                      failure.distribution or "unknown distribution", failure.reason)
    for line in settings.endpoint_overrides.describe():
        log.warning("endpoint override in effect: %s", line)
    recorder = (event_sender or event_recorder(settings)) if events else None
    service = MountService(settings, backends, credentials)
    server = ProviderServer(service, socket_dir, observer=MountObserver(registry, recorder),
                            grace_period=grace_period)
    app = App(server, events=recorder, metrics=registry)
    try:
        if healthz is not None and _enabled(healthz[1], any_port):
            address, port, path, timeout = healthz
            app.health = HealthServer(
                address, port, healthz_path=path,
                live=lambda: grpc_health_check(server.target, timeout),
                ready=lambda: _ready(server, backends),
                extra_routes={"/metrics": registry.exposition},
            )
        if metrics is not None and _enabled(metrics[1], any_port):
            address, port = metrics
            # The same address and port as the health server: /metrics is already served there.
            shared = (healthz is not None and app.health is not None and port != 0
                      and port == app.health.port and address == healthz[0])
            if not shared:
                app.metrics_server = HttpEndpoints(
                    address, port, {"/metrics": registry.exposition},
                    what="metrics", flag="--metrics-port",
                )
    except BaseException:
        app.close_unstarted()
        service.close()
        backends.close()
        raise
    return app
