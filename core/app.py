"""Wiring: settings → plugins → mount service → gRPC server (+ health and metrics servers)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ack_secrets_provider.core.credentials import CredentialHost
from ack_secrets_provider.core.health import HealthServer, grpc_health_check
from ack_secrets_provider.core.mount import MountService
from ack_secrets_provider.core.observe import MountObserver
from ack_secrets_provider.core.plugins import BackendHost
from ack_secrets_provider.core.server import ProviderServer
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


def describe_plugins(settings: ProviderSettings) -> str:
    backends, credentials = load_plugins(settings)
    lines = ["backends (objectType):"]
    for name, backend in sorted(backends.backends.items()):
        lines.append(f"  {name:<12} {type(backend).__module__}  "
                     f"[{backends.distributions.get(name) or '?'}]")
    lines.append("credential plugins (in the order they are tried):")
    lines.extend(f"  {name}" for name in credentials.plugin_names())
    failures = backends.failures + credentials.failures
    if failures:
        lines.append("failed to load:")
        lines.extend(f"  {f.name} [{f.distribution or '?'}]: {f.reason}" for f in failures)
    return "\n".join(lines)


@dataclass
class App:
    server: ProviderServer
    health: HealthServer | None = None
    extra: list[HealthServer] = field(default_factory=list)

    def start(self) -> None:
        self.server.start()
        if self.health is not None:
            self.health.start()

    def stop(self) -> None:
        if self.health is not None:
            self.health.stop()
        self.server.stop()


def build_app(
    settings: ProviderSettings,
    socket_dir: str,
    *,
    autoload_third_party: bool = True,
    grace_period: float = 30.0,
    healthz: tuple[str, int, str, float] | None = None,
    metrics: tuple[str, int] | None = None,
    events: bool = False,
) -> App:
    backends, credentials = load_plugins(settings, autoload_third_party=autoload_third_party)
    for failure in backends.failures + credentials.failures:
        log.error("plugin %s (%s) failed to load: %s", failure.name,
                  failure.distribution or "unknown distribution", failure.reason)
    for line in settings.endpoint_overrides.describe():
        log.warning("endpoint override in effect: %s", line)
    service = MountService(settings, backends, credentials)
    server = ProviderServer(service, socket_dir, observer=MountObserver(),
                            grace_period=grace_period)
    health = None
    if healthz is not None and healthz[1] > 0:
        address, port, path, timeout = healthz
        health = HealthServer(
            address, port, healthz_path=path,
            live=lambda: grpc_health_check(server.target, timeout),
            ready=lambda: server.socket_path.exists() and bool(backends.backends),
        )
    return App(server, health)
