"""One way to do each thing, kept that way: the provider's bounded caches are cachetools' (no
hand-written OrderedDict LRU), and one module talks to the Kubernetes API."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [path for folder in ("core", "auth", "backends")
           for path in sorted((ROOT / folder).rglob("*.py"))
           if not path.name.endswith(("_pb2.py", "_pb2_grpc.py"))]
HTTP_CLIENTS = ("urllib.request", "http.client", "requests")


def _hand_written_lru(tree: ast.AST) -> list[int]:
    """Lines importing collections.OrderedDict or calling move_to_end."""
    return [node.lineno for node in ast.walk(tree)
            if (isinstance(node, ast.ImportFrom) and node.module == "collections"
                and any(alias.name == "OrderedDict" for alias in node.names))
            or (isinstance(node, ast.Attribute) and node.attr == "move_to_end")]


def _http_client_imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                   else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [module for module in modules if module.startswith(HTTP_CLIENTS)]
    return found


def test_the_scans_see_the_sources_and_catch_what_they_forbid() -> None:
    """Without this, a moved source tree or a blind scan would let both rules pass vacuously."""
    names = {path.relative_to(ROOT).as_posix() for path in SOURCES}
    assert {"core/cloud/kube.py", "core/cloud/region.py"} <= names
    assert _hand_written_lru(ast.parse(
        "from collections import OrderedDict\nentries.move_to_end(key)\n")) == [1, 2]
    assert _http_client_imports(ast.parse(
        "import requests\nfrom urllib.request import urlopen\nimport json\n")) == [
            "requests", "urllib.request"]


def test_no_hand_written_lru() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}" for path in SOURCES
             for line in _hand_written_lru(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, f"use cachetools (LRUCache, TTLCache, TLRUCache) instead: {found}"


def test_one_kubernetes_api_client() -> None:
    """Code that reads or writes Kubernetes API paths (/api/v1/...) does it through
    core/cloud/kube.py's KubeClient, never with an HTTP client of its own (the fake API server
    of the emulator is the one exception: it answers, it does not ask)."""
    own_clients = []
    for path in SOURCES:
        name = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if name == "auth/emulator.py" or "/api/v1/" not in text:
            continue
        if _http_client_imports(ast.parse(text)):
            own_clients.append(name)
    assert not own_clients, own_clients
