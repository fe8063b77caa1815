"""Named hypothesis strategies for SecretProviderClass input (shared by the spec tests).

Each strategy has a name that says what it produces, so a failing example reads like the input a
user would write. Rendering to YAML is explicit (`render_objects`) so tests control whether a
value is written plain (`objectAlias: 0755`) or quoted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from ack_secrets_provider.core.mount.spec import JMESPATH_FIELDS, OBJECT_FIELDS, PARAMETERS

# --- text building blocks ---------------------------------------------------------------------

#: characters a YAML reader accepts inside a document (no surrogates, no C0/C1 controls)
_YAML_SAFE = st.characters(
    codec="utf-8",
    exclude_categories=("Cs", "Cc"),
    exclude_characters="\ufeff\ufffe\uffff",
)

#: plain-scalar-safe characters for readable path segments
_SEGMENT_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

#: a path segment that is always legal on its own (not '.', '..', not starting with '..')
safe_segments = st.text(_SEGMENT_ALPHABET, min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..") and not s.startswith("..")
)

#: segments that test the driver's rules: dots, empty, over-long (in bytes) and multi-byte
tricky_segments = st.one_of(
    st.sampled_from(["", ".", "..", "...", "..a", ".a", "a..", "-", "~", " "]),
    st.text("é中", min_size=80, max_size=130),  # 2-3 bytes each: over 255 bytes, under 255 chars
    st.integers(250, 260).map(lambda n: "x" * n),
    st.text(_YAML_SAFE, min_size=1, max_size=8).filter(lambda s: "/" not in s),
)

#: a name made of segments joined by '/', sometimes with a leading '/'
object_names = st.builds(
    lambda lead, segs: lead + "/".join(segs),
    st.sampled_from(["", "", "", "/"]),
    st.lists(safe_segments, min_size=1, max_size=4),
)

#: names whose segments may break the driver's path rules
tricky_names = st.builds(
    lambda lead, segs: lead + "/".join(segs),
    st.sampled_from(["", "/", "//"]),
    st.lists(st.one_of(safe_segments, tricky_segments), min_size=1, max_size=4),
)

#: texts that YAML 1.1 would type as numbers, booleans, null or dates
yaml_look_alikes = st.one_of(
    st.sampled_from([
        "0755", "0644", "0o17", "no", "No", "NO", "yes", "Yes", "on", "off", "On", "y", "n",
        "true", "False", "1e3", "1E3", "-1.5", "0x1F", "0b101", "~", "null", "Null", "NULL",
        "2024-01-01", "2001-12-14t21:59:43.10-05:00", ".inf", "-.inf", ".nan", "1_000",
        "+12", "12:30:00", "190:20:30", "0", "00", "007",
    ]),
    st.integers(0, 10**6).map(lambda n: "0" + format(n, "o")),
    st.dates().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)

#: replacement characters pathTranslation accepts
translation_chars = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp", "Cf", "Co", "Cn"),
    exclude_characters="/\\",
).filter(lambda c: c.isprintable() and not c.isspace())

#: `False` in any letter case: keep sub-directories
false_spellings = st.lists(st.booleans(), min_size=5, max_size=5).map(
    lambda flags: "".join(c.upper() if up else c for c, up in zip("false", flags, strict=True))
)

object_types = st.sampled_from(["kms", "oos"])

# --- YAML rendering ---------------------------------------------------------------------------

_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_~.][A-Za-z0-9_.:+\-/]*")


_YAML_NULLS = frozenset({"~", "null", "Null", "NULL"})


def yaml_scalar(text: str, plain: bool) -> str:
    """`text` as a YAML scalar: plain when asked and safe, else double-quoted (JSON escapes).

    A plain null (`~`, `null`, ...) means "no value" to the parser, as to the official provider's
    YAML reader; it is quoted to stay the text.
    """
    if (plain and _PLAIN_SAFE.fullmatch(text) and not text.endswith(":")
            and text not in _YAML_NULLS):
        return text
    return json.dumps(text, ensure_ascii=False)


def render_objects(objects: Sequence[Mapping[str, Any]], plain: bool = False) -> str:
    """Render objects as the block YAML a user writes in `spec.parameters.objects`."""
    lines: list[str] = []
    for obj in objects:
        prefix = "- "
        for key, value in obj.items():
            if isinstance(value, list):
                lines.append(f"{prefix}{key}:")
                for entry in value:
                    inner = "    - "
                    for ekey, evalue in entry.items():
                        lines.append(f"{inner}{ekey}: {yaml_scalar(evalue, plain)}")
                        inner = "      "
            else:
                lines.append(f"{prefix}{key}: {yaml_scalar(value, plain)}")
            prefix = "  "
    return "\n".join(lines) + "\n"


def attributes(objects_yaml: str, **parameters: str) -> str:
    """The driver's attributes JSON for a SecretProviderClass, as driver v1.6 sends it."""
    attrs = {
        "secretProviderClass": "app-secrets",
        "csi.storage.k8s.io/pod.name": "app-0",
        "csi.storage.k8s.io/pod.namespace": "default",
        "csi.storage.k8s.io/pod.uid": "0b6e6f2a-3c1e-4a59-9d0f-7d3cfe0a1b2c",
        "csi.storage.k8s.io/serviceAccount.name": "app",
        "csi.storage.k8s.io/ephemeral": "false",
        "objects": objects_yaml,
        **parameters,
    }
    return json.dumps(attrs)


# --- arbitrary input (the parser must be total) -------------------------------------------------

_field_names = st.one_of(
    st.sampled_from(sorted(OBJECT_FIELDS)),
    st.sampled_from(sorted(JMESPATH_FIELDS)),
    st.text(_YAML_SAFE, max_size=12),
)

#: arbitrary YAML-shaped data: scalars, lists and maps keyed mostly by real field names
yaml_data = st.recursive(
    st.one_of(st.text(_YAML_SAFE, max_size=20), yaml_look_alikes, tricky_names, st.none()),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_field_names, children, max_size=6),
    ),
    max_leaves=20,
)


@st.composite
def arbitrary_objects_text(draw: st.DrawFn) -> str:
    """Any text for the `objects` parameter: dumped YAML data, near-valid YAML, or noise."""
    import yaml

    kind = draw(st.sampled_from(["dump", "flow", "render", "noise"]))
    if kind in ("dump", "flow"):
        return yaml.safe_dump(draw(yaml_data), default_flow_style=(kind == "flow"),
                              allow_unicode=draw(st.booleans()))
    if kind == "render":
        objs = draw(st.lists(
            st.dictionaries(_field_names, st.one_of(st.text(_YAML_SAFE, max_size=20),
                                                    yaml_look_alikes, tricky_names),
                            max_size=5),
            max_size=4,
        ))
        return render_objects(objs, plain=draw(st.booleans()))
    return draw(st.text(max_size=80))


_parameter_values = st.one_of(
    st.text(max_size=10), st.sampled_from(["", "_", "-", "False", "fAlSe", "/", "cn-hangzhou",
                                           "true", "TRUE", "yes", "null"]),
)


@st.composite
def arbitrary_attributes(draw: st.DrawFn) -> str:
    """Any attributes string: JSON maps of every shape with real and random keys, or noise."""
    kind = draw(st.sampled_from(["map", "map", "map", "json", "noise"]))
    if kind == "noise":
        return draw(st.text(max_size=40))
    if kind == "json":
        return json.dumps(draw(st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
            lambda c: st.one_of(st.lists(c, max_size=3),
                                st.dictionaries(st.text(max_size=5), c, max_size=3)),
            max_leaves=10,
        )))
    attrs: dict[str, Any] = {}
    if draw(st.booleans()):
        attrs["objects"] = draw(arbitrary_objects_text())
    for key in sorted(PARAMETERS):
        if key != "objects" and draw(st.booleans()):
            attrs[key] = draw(_parameter_values)
    extra = draw(st.dictionaries(
        st.text(max_size=10),
        st.one_of(st.text(max_size=10), st.integers(), st.floats(), st.booleans(), st.none(),
                  st.lists(st.integers(), max_size=2)),
        max_size=3,
    ))
    attrs.update(extra)
    return json.dumps(attrs, ensure_ascii=draw(st.booleans()))


arbitrary_secrets = st.one_of(
    st.just("null"), st.just(""), st.text(max_size=20),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3).map(json.dumps),
)

arbitrary_permissions = st.one_of(
    st.integers(-5, 1000).map(lambda n: json.dumps(str(n))),
    st.integers(-5, 1000).map(str),
    st.text(max_size=8),
)
