"""docs/security.md states every bound with its flag and default: each one must exist with that
default, and every request bound of the code must be on the page."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ack_secrets_provider.core.cli import build_parser
from ack_secrets_provider.core.mount.limits import FLAGS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "security.md"
_ROW = re.compile(r"^\|[^|]*\|\s*`(--[a-z0-9-]+)`\s*\|\s*`([^`]*)`\s*\|", re.MULTILINE)


def _serve_defaults() -> dict[str, str]:
    parser = build_parser("serve")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: str(action.default) for action in sub.choices["serve"]._actions
            for name in action.option_strings}


def _limit_rows() -> list[tuple[str, str]]:
    limits = PAGE.read_text().split("\n## Limits\n", 1)[1]
    return _ROW.findall(limits)


def test_every_flag_on_the_page_exists_with_the_default_it_states() -> None:
    defaults = _serve_defaults()
    rows = _limit_rows()
    assert len(rows) >= 9
    for flag, default in rows:
        assert flag in defaults, f"docs/security.md names {flag}, which `serve` does not have"
        assert defaults[flag] == default, f"{flag}: the page says {default}, serve uses " \
                                          f"{defaults[flag]}"


def test_every_request_bound_and_connection_limit_is_on_the_page() -> None:
    listed = {flag for flag, _ in _limit_rows()}
    wanted = set(FLAGS.values()) | {"--max-concurrent-mounts", "--grpc-keepalive-time",
                                    "--grpc-keepalive-timeout", "--grpc-max-connection-idle"}
    assert wanted <= listed, f"missing from docs/security.md: {sorted(wanted - listed)}"
