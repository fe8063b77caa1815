"""`ack-secrets-provider plugins`: what the provider would load, from where, and what failed.

Loads the plugins exactly as `serve` does (the same hosts, the same entry points) so the answer
is the truth about this environment: backends by objectType, credential plugins in the order they
are tried, emulator parts, and every plugin that failed to load with the reason. Exit status 1
when any plugin failed, so an image build can check its plugins with this command.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

from ack_secrets_provider.core.commands.output import Output, plural, print_json
from ack_secrets_provider.core.commands.version import installed
from ack_secrets_provider.core.settings import ProviderSettings

EMULATOR_GROUP = "ack_secrets_provider.emulators"


@dataclass(frozen=True)
class PluginRow:
    name: str
    module: str
    distribution: str | None
    version: str | None


@dataclass(frozen=True)
class CredentialRow(PluginRow):
    #: whether the plugin resolves identities (takes part in the chain) and its hooks
    in_chain: bool = False
    hooks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FailureRow:
    kind: str
    name: str
    distribution: str | None
    reason: str


@dataclass(frozen=True)
class Inventory:
    backends: list[PluginRow]
    credentials: list[CredentialRow]
    emulators: list[PluginRow]
    failures: list[FailureRow]

    def as_dict(self) -> dict[str, Any]:
        return {
            "backends": [asdict(r) for r in self.backends],
            "credential_plugins": [asdict(r) for r in self.credentials],
            "emulator_parts": [asdict(r) for r in self.emulators],
            "failures": [asdict(r) for r in self.failures],
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for people, json for scripts and bug reports")
    parser.add_argument("--no-plugin-autoload", action="store_true",
                        help="show what `serve --no-plugin-autoload` loads (built-ins only)")


def _dist(entry_point: Any) -> str | None:
    dist = getattr(entry_point, "dist", None)
    return str(dist.name) if dist is not None else None


def _row(name: str, module: str, distribution: str | None) -> PluginRow:
    return PluginRow(name, module, distribution, installed(distribution) if distribution else None)


def _emulator_parts() -> tuple[list[PluginRow], list[FailureRow]]:
    from ack_secrets_provider.core.emulator.api import EmulatorPart

    rows, failures = [], []
    for ep in sorted(entry_points(group=EMULATOR_GROUP), key=lambda e: e.name):
        try:
            cls = ep.load()
        except Exception as exc:  # reported, as the emulator itself skips it
            failures.append(FailureRow("emulator", ep.name, _dist(ep),
                                       f"{type(exc).__name__}: {exc}"))
            continue
        if not (isinstance(cls, type) and issubclass(cls, EmulatorPart)):
            failures.append(FailureRow("emulator", ep.name, _dist(ep),
                                       f"{ep.value} is not an EmulatorPart subclass"))
            continue
        rows.append(_row(ep.name, ep.value, _dist(ep)))
    return rows, failures


def collect(settings: ProviderSettings, *, autoload_third_party: bool = True) -> Inventory:
    from ack_secrets_provider.core.plugins.hookspecs import ENTRY_POINT_GROUP as CREDENTIAL_GROUP
    from ack_secrets_provider.core.server.app import load_plugins

    backends, credentials = load_plugins(settings, autoload_third_party=autoload_third_party)
    try:
        backend_rows = [
            _row(name, f"{type(b).__module__}:{type(b).__qualname__}",
                 backends.distributions.get(name))
            for name, b in sorted(backends.backends.items())
        ]
    finally:
        backends.close()
    declared = {ep.name: ep for ep in entry_points(group=CREDENTIAL_GROUP)}
    # The identity chain in the order it is tried, then plugins with other hooks only (such
    # as cross-account, which only assumes roles).
    ordered = credentials.plugin_names()
    ordered += sorted(name for name, _ in credentials.manager.list_name_plugin()
                      if name not in ordered)
    credential_rows = []
    for name in ordered:
        ep = declared.get(name)
        plugin = credentials.manager.get_plugin(name)
        hooks = sorted(caller.name for caller in credentials.manager.get_hookcallers(plugin) or [])
        credential_rows.append(CredentialRow(
            name, ep.value if ep else "?", _dist(ep) if ep else None,
            installed(_dist(ep) or "") if ep and _dist(ep) else None,
            name in credentials.plugin_names(), hooks))
    emulator_rows, emulator_failures = _emulator_parts()
    failures = [FailureRow("backend", f.name, f.distribution, f.reason)
                for f in backends.failures]
    failures += [FailureRow("credential", f.name, f.distribution, f.reason)
                 for f in credentials.failures]
    failures += emulator_failures
    return Inventory(backend_rows, credential_rows, emulator_rows, failures)


def _version_of(row: PluginRow) -> str:
    if not row.distribution:
        return "?"
    return f"{row.distribution} {row.version or '?'}"


def render(inventory: Inventory, out: Output) -> None:
    out.heading("Backends (objectType)")
    out.table(["TYPE", "DISTRIBUTION", "CLASS"],
              [[r.name, _version_of(r), r.module] for r in inventory.backends],
              styles={0: ("cyan",), 2: ("dim",)}, indent="  ")
    out.line()
    out.heading("Credential plugins (in the order they are tried)")
    chain = [r for r in inventory.credentials if r.in_chain]
    rows = [[str(i), r.name, _version_of(r), ", ".join(r.hooks)]
            for i, r in enumerate(chain, start=1)]
    rows += [["-", r.name, _version_of(r), ", ".join(r.hooks)]
             for r in inventory.credentials if not r.in_chain]
    out.table(["#", "PLUGIN", "DISTRIBUTION", "HOOKS"], rows,
              right=(0,), styles={1: ("cyan",), 3: ("dim",)}, indent="  ")
    out.line()
    out.heading("Emulator parts")
    out.table(["SERVICE", "DISTRIBUTION", "CLASS"],
              [[r.name, _version_of(r), r.module] for r in inventory.emulators],
              styles={0: ("cyan",), 2: ("dim",)}, indent="  ")
    out.line()
    if inventory.failures:
        out.line(out.style(f"Failed to load ({len(inventory.failures)})", "bold", "red"))
        out.table(["KIND", "NAME", "DISTRIBUTION", "REASON"],
                  [[f.kind, f.name, f.distribution or "?", f.reason]
                   for f in inventory.failures],
                  styles={1: ("red",)}, indent="  ")
    else:
        out.line(out.style("All plugins loaded.", "green"))


def run(args: argparse.Namespace) -> int:
    settings = ProviderSettings(environ=MappingProxyType(dict(os.environ)))
    inventory = collect(settings, autoload_third_party=not args.no_plugin_autoload)
    if args.format == "json":
        print_json(inventory.as_dict())
    else:
        out = Output()
        render(inventory, out)
        if inventory.failures:
            out.line(f"{plural(len(inventory.failures), 'plugin')} failed: fix or uninstall "
                     "them; `serve` runs without them.")
    return 1 if inventory.failures else 0
