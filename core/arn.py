"""Alibaba Cloud Resource Names (`acs:<service>:<region>:<account>:<type>/<name>`)."""

from __future__ import annotations

from dataclasses import dataclass


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
