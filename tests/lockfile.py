"""Reading the image's lock files (requirements/*.lock, written by `python3 tasks.py lock`).

The format is pip's requirements syntax as uv writes it: one `name==version ; marker` per
entry, continued by `--hash=sha256:...` lines, then `# via` comments naming what needs it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
IMAGE_LOCK = ROOT / "requirements" / "image.lock"
BUILD_LOCK = ROOT / "requirements" / "build.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]["name"]
# How uv's `# via` names the project's own [project] dependencies.
FROM_PYPROJECT = f"{PROJECT} (pyproject.toml)"


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    hashes: tuple[str, ...]
    via: tuple[str, ...]

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> Version:
        (spec,) = self.requirement.specifier
        return Version(spec.version)

    def applies_here(self) -> bool:
        """Whether the pin's marker holds on this platform (the image's: Linux, CPython)."""
        marker = self.requirement.marker
        return marker is None or marker.evaluate()


def parse(text: str) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    # An entry starts at a line in column 0 that is not a comment.
    for entry in re.split(r"\n(?=[^\s#])", text):
        lines = entry.splitlines()
        if not lines or lines[0].startswith("#") or not lines[0].strip():
            continue
        words = " ".join(line.rstrip(" \\") for line in lines if not line.lstrip().startswith("#"))
        hashes = tuple(w.split(":", 1)[1] for w in words.split() if w.startswith("--hash="))
        spec = " ".join(w for w in words.split() if not w.startswith("--hash="))
        comments = [line.strip()[1:].strip() for line in lines if line.lstrip().startswith("#")]
        # `# via NAME` or `# via` followed by one `#   NAME` line each
        via = [c.removeprefix("via").strip() for c in comments if c.startswith("via")]
        via = [name for name in via if name] + [c for c in comments if not c.startswith("via")]
        requirement = Requirement(spec)
        operators = [s.operator for s in requirement.specifier]
        assert operators == ["=="], f"{spec!r} is not an exact pin"
        pin = Pin(requirement, hashes, tuple(via))
        pins[pin.name] = pin
    return pins
