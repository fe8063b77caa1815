"""The backend plugin host: stevedore finds backends by objectType through entry points.

The built-in backends are those of the provider's own distribution; the host tells them apart
by distribution, never by name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ack_secrets_provider.core import DISTRIBUTION
from ack_secrets_provider.core.cloud.endpoints import CREDENTIAL_SERVICES
from ack_secrets_provider.core.errors import InvalidArgument, PluginError
from ack_secrets_provider.core.mount.spec import ObjectTypes
from ack_secrets_provider.core.plugins.backend import ENTRY_POINT_GROUP, Backend
from ack_secrets_provider.core.plugins.credentials import PluginLoadFailure
from ack_secrets_provider.core.settings import ProviderSettings

log = logging.getLogger(__name__)


def _distribution(entry_point: Any) -> str | None:
    """The distribution that declares `entry_point` (stevedore's cache drops `.dist`)."""
    from importlib.metadata import entry_points

    dist = getattr(entry_point, "dist", None)
    if dist is not None:
        return str(dist.name)
    for candidate in entry_points(group=ENTRY_POINT_GROUP, name=entry_point.name):
        if candidate.value == entry_point.value and candidate.dist is not None:
            return str(candidate.dist.name)
    return None


def builtin_names() -> list[str]:
    """The objectTypes the provider's own distribution registers (its built-in backends)."""
    from importlib.metadata import entry_points

    return sorted(
        ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.dist is not None and ep.dist.name == DISTRIBUTION
    )


def backend_classes(*, autoload_third_party: bool = True) -> dict[str, type[Backend]]:
    """The installed backend classes by objectType, imported but not instantiated (what `serve`
    needs to add their flags). A backend that fails to import is left out here; `BackendHost`
    reports it when it loads."""
    from importlib.metadata import entry_points

    builtins = set(builtin_names())
    classes: dict[str, type[Backend]] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        if ep.name in classes or (not autoload_third_party and ep.name not in builtins):
            continue
        try:
            loaded = ep.load()
        except Exception:  # reported by BackendHost.load with the reason
            continue
        if isinstance(loaded, type) and issubclass(loaded, Backend):
            classes[ep.name] = loaded
    return classes


def endpoint_services(backends: Iterable[type[Backend]]) -> frozenset[str]:
    """The service names `--endpoint-override` accepts with `backends` installed: each one's
    `service` and the credential plugins' (`CREDENTIAL_SERVICES`)."""
    return frozenset({*CREDENTIAL_SERVICES, *(backend.service for backend in backends)})


@dataclass
class BackendHost:
    """Loads every backend once at start-up; failures are kept and reported by name."""

    settings: ProviderSettings
    backends: dict[str, Backend] = field(default_factory=dict)
    failures: list[PluginLoadFailure] = field(default_factory=list)
    distributions: dict[str, str | None] = field(default_factory=dict)

    def load(self, *, autoload_third_party: bool = True) -> None:
        from stevedore import ExtensionManager, NamedExtensionManager

        def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
            reason = f"{type(exc).__name__}: {exc}"
            self.failures.append(
                PluginLoadFailure(entry_point.name, _distribution(entry_point), reason)
            )
            log.error("backend plugin %r failed to load: %s", entry_point.name, reason)

        common: dict[str, Any] = {
            "invoke_on_load": True,
            "invoke_args": (self.settings,),
            "on_load_failure_callback": on_failure,
            "propagate_map_exceptions": True,
        }
        manager: Any
        if autoload_third_party:
            manager = ExtensionManager(ENTRY_POINT_GROUP, **common)
        else:
            manager = NamedExtensionManager(
                ENTRY_POINT_GROUP, names=builtin_names(), name_order=True, **common
            )
        for extension in manager:
            backend = extension.obj
            if not isinstance(backend, Backend):
                self.failures.append(PluginLoadFailure(
                    extension.name, _distribution(extension.entry_point),
                    f"{type(backend).__name__} is not a subclass of "
                    "ack_secrets_provider.core.plugins.backend.Backend",
                ))
                continue
            self.backends[extension.name] = backend
            self.distributions[extension.name] = _distribution(extension.entry_point)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.backends)

    def default_type(self) -> str | None:
        """The objectType of objects that name none: the setting, else the backend claiming it
        (the provider's own distribution first, then by name)."""
        wanted = self.settings.default_object_type
        if wanted:
            if wanted not in self.backends:
                installed = ", ".join(sorted(self.backends)) or "none"
                raise PluginError(
                    f"--default-object-type {wanted!r} is not an installed backend; use one of "
                    f"the installed types ({installed}) or leave it unset"
                )
            return wanted
        claims = sorted(
            (self.distributions.get(name) != DISTRIBUTION, name)
            for name, backend in self.backends.items() if backend.is_default_type
        )
        return claims[0][1] if claims else None

    def object_types(self) -> ObjectTypes:
        """What the parser needs of the installed backends, as plain data."""
        return ObjectTypes(
            fields={name: frozenset(b.object_fields) for name, b in self.backends.items()},
            validators={name: backend.validate for name, backend in self.backends.items()},
            default=self.default_type(),
        )

    def get(self, object_type: str) -> Backend:
        try:
            return self.backends[object_type]
        except KeyError:
            installed = ", ".join(sorted(self.backends)) or "none"
            raise InvalidArgument(
                f"objectType {object_type!r} is not an installed backend; installed types are "
                f"{installed}"
            ) from None

    def close(self) -> None:
        for backend in self.backends.values():
            try:
                backend.close()
            except Exception:  # closing must never stop the shutdown of the others
                log.exception("backend %r failed to close", backend.object_type)
