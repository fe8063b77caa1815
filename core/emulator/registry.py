"""Finding the service parts: the entry-point group `ack_secrets_provider.emulators`.

A declared part whose module is not there yet (the STS/metadata parts come with the credentials
work) is skipped with a warning, so the emulator still starts with the parts it has.
"""

from __future__ import annotations

import logging
import warnings
from importlib.metadata import entry_points

from ack_secrets_provider.core.emulator.api import EmulatorPart

GROUP = "ack_secrets_provider.emulators"
log = logging.getLogger(__name__)
_warned: set[str] = set()


def _skip(name: str, message: str) -> None:
    """Warn once per process and part, so every test does not repeat it."""
    if name in _warned:
        return
    _warned.add(name)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    log.warning(message)


def installed_services() -> tuple[str, ...]:
    """The service names of every installed part (its entry-point name), loaded or not."""
    return tuple(sorted({ep.name for ep in entry_points(group=GROUP)}))


def discover_parts(names: tuple[str, ...] | None = None) -> list[type[EmulatorPart]]:
    """Load the part classes of the group (optionally only `names`), skipping broken ones."""
    found: list[type[EmulatorPart]] = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if names is not None and ep.name not in names:
            continue
        try:
            cls = ep.load()
        except (ImportError, AttributeError) as exc:
            _skip(ep.name, f"emulator part {ep.name!r} ({ep.value}) is not available and is "
                  f"skipped: {exc}")
            continue
        if not (isinstance(cls, type) and issubclass(cls, EmulatorPart)):
            _skip(ep.name, f"emulator part {ep.name!r} ({ep.value}) is not an EmulatorPart; "
                  "skipped")
            continue
        found.append(cls)
    return found
