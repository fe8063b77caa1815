"""Alibaba Cloud Resource Names (`acs:<service>:<region>:<account>:<type>/<name>`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from ack_secrets_provider.core.errors import InvalidArgument


class NamedObject(Protocol):
    """What ARN checks need of an object (an ObjectSpec): its name and how to describe it.

    A protocol rather than ObjectSpec itself: the parser (spec.py) uses this module, so this
    module does not use the parser.
    """

    @property
    def object_name(self) -> str: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Arn:
    service: str
    region: str
    account: str
    resource_type: str
    resource: str

    def __str__(self) -> str:
        return (
            f"acs:{self.service}:{self.region}:{self.account}:"
            f"{self.resource_type}/{self.resource}"
        )


def looks_like_arn(text: str) -> bool:
    return text.startswith("acs:")


def parse_arn(text: str) -> Arn:
    """Split an ARN into its parts; raise ValueError explaining the expected form."""
    parts = text.split(":", 4)
    if len(parts) != 5 or parts[0] != "acs" or "/" not in parts[4]:
        raise ValueError(
            f"{text!r} is not an Alibaba Cloud ARN of the form "
            "acs:<service>:<region>:<account-id>:<type>/<name>"
        )
    _, service, region, account, rest = parts
    resource_type, _, resource = rest.partition("/")
    if not service or not resource_type or not resource:
        raise ValueError(
            f"{text!r} is not a complete ARN: expected acs:<service>:<region>:<account-id>:"
            "<type>/<name> with every part filled in"
        )
    return Arn(service, region, account, resource_type, resource)


#: a region id such as cn-hangzhou or ap-southeast-1 (shared by parsing and the backends)
REGION_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+\Z")


def object_arn(
    spec: NamedObject, *, service: str, resource_type: str, kind: str, example: str
) -> Arn | None:
    """The ARN in an object's objectName, or None for a plain name.

    Raises InvalidArgument naming the object when the ARN is malformed, belongs to another
    service or resource type (`kind` names what was expected, `example` shows a good ARN), or
    carries a region that is not a region id.
    """
    if not looks_like_arn(spec.object_name):
        return None
    try:
        arn = parse_arn(spec.object_name)
    except ValueError as exc:
        raise InvalidArgument(f"{spec.describe()}: field objectName: {exc}") from None
    if arn.service != service or arn.resource_type != resource_type:
        hint = ""
        if arn.service != service:
            hint = (f" (an ARN of the {arn.service} service: set the objectType of the backend "
                    "that reads it)")
        raise InvalidArgument(
            f"{spec.describe()}: field objectName {spec.object_name!r} is an ARN of "
            f"{arn.service}:{arn.resource_type}, not {kind}; {kind} ARN looks like "
            f"{example}{hint}"
        )
    if not REGION_PATTERN.match(arn.region):
        raise InvalidArgument(
            f"{spec.describe()}: field objectName {spec.object_name!r}: the ARN's region "
            f"{arn.region!r} is not a region id such as cn-hangzhou"
        )
    return arn
