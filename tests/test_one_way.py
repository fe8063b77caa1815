"""One way to do each thing, kept that way: the provider's bounded caches are cachetools' (no
hand-written OrderedDict LRU), and one module talks to the Kubernetes API."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [path for folder in ("core", "auth", "backends")
           for path in sorted((ROOT / folder).rglob("*.py"))
           if not path.name.endswith(("_pb2.py", "_pb2_grpc.py"))]


def test_no_hand_written_lru() -> None:
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "collections" and any(
                    alias.name == "OrderedDict" for alias in node.names):
                found.append(str(path.relative_to(ROOT)))
            if isinstance(node, ast.Attribute) and node.attr == "move_to_end":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"use cachetools (LRUCache, TTLCache, TLRUCache) instead: {found}"


def test_one_kubernetes_api_client() -> None:
    """Code that reads or writes Kubernetes API paths (/api/v1/...) does it through
    core/cloud/kube.py's KubeClient, never with an HTTP client of its own (the fake API server
    of the emulator is the one exception: it answers, it does not ask)."""
    http_clients = ("urllib.request", "http.client", "requests")
    own_clients = []
    for path in SOURCES:
        name = str(path.relative_to(ROOT))
        if name == "auth/emulator.py" or "/api/v1/" not in path.read_text(encoding="utf-8"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(module.startswith(http_clients) for module in modules):
                own_clients.append(name)
    assert not own_clients, own_clients
