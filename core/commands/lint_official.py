"""Warnings for SecretProviderClasses that the official Go provider read differently.

A manifest written for the official provider can mean something else here without being an
error: an unquoted `objectAlias: 0755` was the file `493` there (go-yaml v2 types scalars the
YAML 1.1 way, and its JSON step turns the number into text), and `usePodServiceAccountToken:
"True"` was the provider's identity there (only the exact `true` counted). `lint` warns about
both, so a migration shows them before a pod does. docs/migration.md lists every difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from ack_secrets_provider.core.mount.spec import (
    ATTR_OBJECTS,
    ATTR_USE_POD_TOKEN,
    JMESPATH_FIELDS,
    OBJECT_FIELDS,
    ObjectSpec,
)

#: go-yaml v2 also reads these as booleans (PyYAML's YAML 1.1 resolver does not)
_GO_YAML_BOOLEANS = {"y": True, "Y": True, "n": False, "N": False}


def _official_text(text: str) -> str | None:
    """What go-yaml v2 + sigs.k8s.io/yaml made of the unquoted scalar `text`, when it differs."""
    if text in _GO_YAML_BOOLEANS:
        value: Any = _GO_YAML_BOOLEANS[text]
    else:
        try:
            value = yaml.safe_load(text)  # YAML 1.1 typing, like go-yaml v2
        except (yaml.YAMLError, ValueError):  # ValueError: not a real date (2024-02-30), which
            # go-yaml keeps as text, as this provider does
            return None
    if isinstance(value, bool):
        converted = "true" if value else "false"
    elif isinstance(value, int) and ":" not in text:  # go-yaml has no base-60 numbers
        converted = str(value)
    elif isinstance(value, float):
        converted = f"{value:g}"
    else:
        return None
    return converted if converted != text else None


def _plain_scalars(item: Any, fields: Mapping[str, str]) -> dict[str, str]:
    """Field → text of the unquoted scalars of one map node (names matched ignoring case)."""
    found: dict[str, str] = {}
    if not isinstance(item, yaml.MappingNode):
        return found
    by_lower = {name.lower(): name for name in fields}
    for key, value in item.value:
        name = by_lower.get(str(key.value).lower())
        if name and isinstance(value, yaml.ScalarNode) and value.style is None:
            found[name] = value.value
    return found


def _scalar_warnings(objects: str) -> list[str]:
    try:
        root = yaml.compose(objects, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.SequenceNode):
        return []
    warnings = []
    for index, item in enumerate(root.value, start=1):
        places = [(f"object #{index}", _plain_scalars(item, OBJECT_FIELDS))]
        entries = next((value for key, value in getattr(item, "value", [])
                        if str(getattr(key, "value", "")).lower() == "jmespath"), None)
        if isinstance(entries, yaml.SequenceNode):
            places += [(f"object #{index}, jmesPath entry #{number}",
                        _plain_scalars(entry, JMESPATH_FIELDS))
                       for number, entry in enumerate(entries.value, start=1)]
        for where, scalars in places:
            for name, text in scalars.items():
                official = _official_text(text)
                if official is not None:
                    warnings.append(
                        f"{where}: field {name} is the unquoted {text!r}, which the official "
                        f"provider read as {official!r} (YAML 1.1); this provider uses "
                        f"{text!r} as written: quote it to make that plain"
                    )
    return warnings


def official_provider_warnings(
    parameters: Mapping[str, Any], specs: Sequence[ObjectSpec]
) -> list[str]:
    """Warnings for a SecretProviderClass this provider parses without error (`specs`)."""
    warnings = []
    use_pod = parameters.get(ATTR_USE_POD_TOKEN)
    if isinstance(use_pod, str) and use_pod != "true" and use_pod.strip().lower() == "true":
        warnings.append(
            f"parameter {ATTR_USE_POD_TOKEN} is {use_pod!r}: this provider uses the pod's own "
            "identity, the official provider used its own identity (only the exact \"true\" "
            "counted there); write \"true\" to make that plain"
        )
    objects = parameters.get(ATTR_OBJECTS)
    if specs and isinstance(objects, str):
        warnings += _scalar_warnings(objects)
    return warnings
