"""Every third-party package that core/, auth/ and backends/ import is a declared dependency of
the distribution (pyproject.toml `dependencies`), so a clean `pip install` of the wheel has all
of them; nothing works only because another package happened to pull it in."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

from ack_secrets_provider.core import DISTRIBUTION

ROOT = Path(__file__).resolve().parents[1]
#: developer tools inside the package, run by the test suite only: checked against the extra
DEVELOPER_TOOLS = {"core/proto/generate.py": "test"}


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared(extra: str | None = None) -> set[str]:
    names = set()
    for requirement in requires(DISTRIBUTION) or []:
        marker = requirement.partition(";")[2]
        if (extra is None and not marker) or (extra and f'extra == "{extra}"' in marker):
            names.add(_name(requirement))
    return names


def imported_modules(path: Path) -> set[str]:
    """Top-level names of the absolute imports in `path` (function-level imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", "ack_secrets_provider"}


def test_every_third_party_import_is_a_declared_dependency() -> None:
    distributions = packages_distributions()
    runtime = declared()
    missing = []
    for root in ("core", "auth", "backends"):
        for path in sorted((ROOT / root).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            allowed = runtime | declared(DEVELOPER_TOOLS[relative]) \
                if relative in DEVELOPER_TOOLS else runtime
            for module in sorted(imported_modules(path)):
                owners = {_name(d) for d in distributions.get(module, [])}
                if not owners & allowed:
                    missing.append(f"{relative}: {module} (from {sorted(owners) or '?'})")
    assert not missing, "imported but not declared in pyproject.toml dependencies:\n" + \
        "\n".join(missing)


def test_the_check_sees_an_undeclared_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import json\nimport yaml\n\ndef f():\n    from requests import get\n")
    assert imported_modules(module) == {"yaml", "requests"}


def test_every_declared_dependency_has_bounds() -> None:
    """A lower bound everywhere; an upper one too, except where the comment says why not."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    block = text[text.index("dependencies = [") : text.index("]", text.index("dependencies = ["))]
    entries = re.findall(r'^\s*"([^"]+)",', block, re.MULTILINE)
    assert entries and all(">=" in entry for entry in entries), entries
    assert "protobuf>=7.35.1,<8" in entries  # the generated stubs' major
