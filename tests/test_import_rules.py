"""The import rules of docs/architecture.md: no import cycles among the provider's modules, and
who may import whom.

Every import counts, wherever it is written: at module level, under `if TYPE_CHECKING:` and
inside functions (deferred imports that keep start-up fast). A type-only or deferred import is
still a dependency of the module's meaning: a cycle through one means two modules that cannot
be understood, tested or moved apart, which is what the rule is for. The scan reads the sources
(ast), so it needs no import side effects and sees imports that never run in a test.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "ack_secrets_provider"
#: source folder → the package it installs as (pyproject's package-dir)
SOURCES = {"core": f"{PACKAGE}.core", "backends": f"{PACKAGE}.backends", "auth": f"{PACKAGE}.auth"}


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of the provider by its dotted name (generated gRPC stubs excluded)."""
    found: dict[str, Path] = {}
    for folder, package in SOURCES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imported_names(name: str, path: Path, known: Collection[str]) -> Iterator[str]:
    """Every dotted name the module imports (absolute or relative). `from x import y` is an
    import of the submodule x.y when there is one (as grimp counts it), else of x."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in known else base


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """module → the provider's modules it imports (a package's __init__ counts as the package)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for imported in imported_names(name, path, known):
            if imported in known and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_scan_sees_the_modules_and_their_imports() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.core.server.grpc_server" in graph
    assert f"{PACKAGE}.core.mount.service" in graph[f"{PACKAGE}.core.server.grpc_server"]
    # a deferred import inside a function counts too
    assert f"{PACKAGE}.core.emulator.testing" in graph[f"{PACKAGE}.core.commands.demo"]


def test_the_scan_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (break each by moving the shared piece down):\n" + "\n".join(
        " <-> ".join(component) for component in found)


@pytest.mark.parametrize(("importer", "forbidden"), [
    ("core", "backends"), ("core", "auth"), ("backends", "auth"), ("auth", "backends"),
])
def test_who_may_import_whom(importer: str, forbidden: str) -> None:
    """core finds backends and credential plugins through entry points only; backends and
    credential plugins never import each other."""
    graph = import_graph()
    prefix, target = f"{PACKAGE}.{importer}", f"{PACKAGE}.{forbidden}"
    wrong = sorted(f"{module} -> {imported}" for module, imports in graph.items()
                   if module.startswith(prefix) for imported in imports
                   if imported.startswith(target))
    assert not wrong, wrong


def test_backends_do_not_import_each_other() -> None:
    graph = import_graph()
    backends = f"{PACKAGE}.backends."
    wrong = sorted(f"{module} -> {imported}" for module, imports in graph.items()
                   if module.startswith(backends) for imported in imports
                   if imported.startswith(backends)
                   and imported.split(".")[2] != module.split(".")[2])
    assert not wrong, wrong


def importers_of(graph: dict[str, set[str]], target: str) -> set[str]:
    return {module for module, imports in graph.items()
            if not module.startswith(target) and any(i.startswith(target) for i in imports)}


def test_only_the_entry_points_import_the_server() -> None:
    importers = importers_of(import_graph(), f"{PACKAGE}.core.server")
    allowed = (f"{PACKAGE}.core.cli", f"{PACKAGE}.core.commands.")
    assert all(module.startswith(allowed) for module in importers), sorted(importers)


def test_the_emulator_is_apart_from_the_runtime() -> None:
    graph = import_graph()
    emulator = f"{PACKAGE}.core.emulator"
    own = {imported for module, imports in graph.items() if module.startswith(emulator)
           for imported in imports if not imported.startswith(emulator)}
    assert not own, sorted(own)
    runtime = tuple(f"{PACKAGE}.core.{part}" for part in (
        "server", "mount", "plugins", "resilience", "observability", "cloud"))
    wrong = sorted(module for module in importers_of(graph, emulator)
                   if module.startswith(runtime))
    assert not wrong, wrong
