"""docs/architecture.md stays true to the tree: every module or folder it names exists, and its
table covers every subpackage of core/ (a new one cannot be added without saying what it is for).
The import rules it states are enforced by tests/test_import_rules.py."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
#: repository paths the page names: core/..., backends/..., auth/..., tests/... (files or folders)
_PATH = re.compile(r"\b((?:core|backends|auth|tests)/[\w./*-]*[\w/*])")


def named_paths() -> set[str]:
    return set(_PATH.findall(PAGE.read_text(encoding="utf-8")))


def test_the_page_names_modules_of_every_step() -> None:
    paths = named_paths()
    for step in ("core/server/grpc_server.py", "core/mount/service.py", "core/mount/spec.py",
                 "core/plugins/credentials.py", "core/resilience/fetcher.py",
                 "core/plugins/backend.py", "core/mount/files.py", "core/server/app.py"):
        assert step in paths, step


def test_every_path_the_page_names_exists() -> None:
    missing = []
    for path in sorted(named_paths()):
        if "*" in path:
            if not list(ROOT.glob(path)):
                missing.append(path)
        elif not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_core_subpackage_has_a_role_in_the_table() -> None:
    text = PAGE.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(core/\w+/)` \|", text, flags=re.MULTILINE))
    packages = {f"core/{p.parent.name}/" for p in (ROOT / "core").glob("*/__init__.py")}
    assert rows == packages
