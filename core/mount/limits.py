"""Bounds on the work one Mount request can ask of the provider, each set by a `serve` flag.

A pod author controls the `objects` text (volumeAttributes override SecretProviderClass
parameters), so its size and what it expands to are bounded before any work is done. A request
past a bound is refused with INVALID_ARGUMENT naming the bound and its flag. docs/security.md
lists every bound; tests/adversarial/ sends the hostile input each one stops.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestLimits:
    #: bytes of one Mount request (attributes, secrets, permission): a request of 250,000 tiny
    #: volumeAttributes keys (3.5 MiB) decodes to ~30 MB of dict, twice; a large legitimate one
    #: (256 objects, several tokens) is ~150 KiB
    request_bytes: int = 512 * 1024
    #: UTF-8 bytes of the `objects` parameter (a large SecretProviderClass of 256 objects with
    #: jmesPath entries is ~80 KiB)
    objects_bytes: int = 256 * 1024
    #: objects in one mount
    objects: int = 256
    #: jmesPath entries of one object
    jmespath_entries: int = 256
    #: YAML nodes of `objects` once aliases and merge keys are expanded (256 objects of 10
    #: fields are ~5,400)
    yaml_nodes: int = 20_000
    #: lists and maps nested in one another in `objects` (a jmesPath entry is at depth 4)
    yaml_depth: int = 16
    #: characters of one JMESPath expression (real ones are under 100; compiling costs ~20 ms
    #: per KiB, and JMESPath keeps the last 128 compiled expressions in memory)
    jmespath_length: int = 1024
    #: steps all jmesPath expressions of one mount may take together (a step is about one list
    #: slot, map entry or 16 characters built; `users[*].name` over 10,000 users is ~30,000;
    #: 1,000,000 steps are at most about a second of CPU)
    jmespath_steps: int = 1_000_000


#: the `serve` flag of each bound (messages name it so an operator knows what to change)
FLAGS = {
    "request_bytes": "--max-request-bytes",
    "objects_bytes": "--max-objects-bytes",
    "objects": "--max-objects",
    "jmespath_entries": "--max-jmespath-entries",
    "yaml_nodes": "--max-objects-yaml-nodes",
    "yaml_depth": "--max-objects-yaml-depth",
    "jmespath_length": "--max-jmespath-length",
    "jmespath_steps": "--max-jmespath-steps",
}


def beyond(limits: RequestLimits, name: str) -> str:
    """How a refusal names a bound: its value and the flag that sets it."""
    return f"the provider's limit of {getattr(limits, name)} ({FLAGS[name]})"


#: the end of every refusal: what the pod author can do, and who can raise the bound
RAISE = "or ask the cluster operator to raise the limit"
