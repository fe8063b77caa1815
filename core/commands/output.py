"""Terminal output for the commands: aligned tables and colours only where people expect them.

Colours are used only when the stream is a terminal and `NO_COLOR` is unset or empty
(https://no-color.org); `FORCE_COLOR` (non-empty) turns them on for a non-terminal, as many
CLIs accept. No third-party dependency: a table of a few dozen rows needs no layout engine.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "cyan": "36",
}


def colour_enabled(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ANSI colours belong on `stream` (a TTY, NO_COLOR unset, or FORCE_COLOR set)."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


@dataclass
class Output:
    """A stream with optional colours. `style()` is the identity when colours are off."""

    stream: TextIO = field(default_factory=lambda: sys.stdout)
    colour: bool | None = None

    def __post_init__(self) -> None:
        if self.colour is None:
            self.colour = colour_enabled(self.stream)

    def style(self, text: str, *styles: str) -> str:
        if not self.colour or not styles or not text:
            return text
        codes = ";".join(_CODES[name] for name in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")

    def heading(self, text: str) -> None:
        self.line(self.style(text, "bold"))

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        right: Sequence[int] = (),
        styles: Mapping[int, Sequence[str]] | None = None,
        indent: str = "",
    ) -> None:
        """Print `rows` under `headers`, columns padded to their widest cell.

        `right`: column indexes aligned to the right (numbers). `styles`: per-column styles.
        Padding is computed on the plain text, so colours never shift the columns.
        """
        widths = [len(h) for h in headers]
        for row in rows:
            for index, cell in enumerate(row):
                widths[index] = max(widths[index], len(cell))

        def render(cells: Sequence[str], cell_styles: Mapping[int, Sequence[str]]) -> str:
            parts = []
            last = len(cells) - 1
            for index, cell in enumerate(cells):
                if index in right:
                    padded = cell.rjust(widths[index])
                elif index == last:
                    padded = cell  # no trailing spaces
                else:
                    padded = cell.ljust(widths[index])
                styled = self.style(cell, *cell_styles.get(index, ()))
                parts.append(padded.replace(cell, styled, 1) if cell else padded)
            return indent + "  ".join(parts)

        self.line(render(headers, {i: ("bold",) for i in range(len(headers))}))
        for row in rows:
            self.line(render(row, styles or {}))


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """Machine-readable output: indented, keys in the order built, one trailing newline."""
    (stream or sys.stdout).write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"
