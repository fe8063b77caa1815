"""Reading the emulator's seed (YAML file or dict); see docs/emulator.md for the format.

Top-level keys: `access_keys` and `policies` (framework), then one section per service part
(`kms`, `oos`, `sts`, `metadata`). A section for a part that is not loaded is ignored with a
warning; any other unknown key is an error naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ack_secrets_provider.core.emulator.registry import installed_services

FRAMEWORK_KEYS = ("access_keys", "policies")


def load_seed(source: str | os.PathLike[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the seed as a dict; a path is read as YAML."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        data: Any = dict(source)
        where = "emulator seed"
    else:
        path = Path(source)
        where = f"emulator seed {path}"
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ValueError(f"{where}: cannot read the file ({exc.strerror}); pass an existing "
                             "YAML file with --data") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: the top level must be a mapping with keys "
                         f"{', '.join(FRAMEWORK_KEYS + installed_services())}")
    for key in ("access_keys", "policies"):
        if key in data and not isinstance(data[key], list):
            raise ValueError(f"{where}: field {key} must be a list")
    return data
