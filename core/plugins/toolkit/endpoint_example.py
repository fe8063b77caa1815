"""The corrected host an endpoint-field error suggests: what the user wrote, made bare.

Users copy endpoint hosts from documentation with the placeholders left in
(`kms-vpc.{region}.aliyuncs.com`, `<instance-id>.example.com`) or with a scheme and path;
`check_endpoint_host` refuses those and its message shows the form to write. This builds that
form from the user's own text, so the example matches what they meant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

#: the region an example shows when the object names none
EXAMPLE_REGION = "cn-hangzhou"
_PLACEHOLDER = re.compile(r"\{([^}]*)\}|<([^>]*)>")


def endpoint_example(
    text: str, *, region: str | None, default: str,
    values: Mapping[str, str] = MappingProxyType({}),
) -> str:
    """`text` without scheme and path, each `{name}` / `<name>` placeholder filled: a region
    placeholder with `region` (else cn-hangzhou), another with `values[name]` (the backend's own
    placeholders, e.g. an instance id), else `value`; `default` when nothing is left."""

    def fill(match: re.Match[str]) -> str:
        name = (match.group(1) or match.group(2) or "").strip().lower()
        if "region" in name:
            return region or EXAMPLE_REGION
        return values.get(name, "value")

    bare = text.strip().split("://", 1)[-1].split("/", 1)[0]
    return _PLACEHOLDER.sub(fill, bare) or default
