"""From fetched values to the driver's files: jmesPath, modes, versions and size limits."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ack_secrets_provider.core.errors import InvalidArgument, ResourceExhausted
from ack_secrets_provider.core.mount.limits import RAISE, RequestLimits, beyond
from ack_secrets_provider.core.mount.paths import driver_path_problem
from ack_secrets_provider.core.mount.spec import MountRequest, ObjectSpec
from ack_secrets_provider.core.plugins.backend import SecretValue

if TYPE_CHECKING:  # JMESPath is imported on first use: most mounts have no jmesPath
    from ack_secrets_provider.core.mount.jmespath_eval import Budget

log = logging.getLogger(__name__)

#: a synced Kubernetes Secret is capped at 1 MiB: above this the driver warns
SECRET_SYNC_LIMIT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class OutputFile:
    path: str
    mode: int
    contents: bytes = field(repr=False)
    #: ObjectVersion for this file: id = path, version = the upstream version id
    version: str


def _jmespath_files(spec: ObjectSpec, value: SecretValue, default_mode: int,
                    budget: Budget, limits: RequestLimits) -> list[OutputFile]:
    from jmespath.exceptions import JMESPathError, JMESPathTypeError

    from ack_secrets_provider.core.mount import jmespath_eval

    try:
        document = json.loads(value.data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidArgument(
            f"{spec.describe()}: field jmesPath is set but the secret's value is not JSON; "
            "remove jmesPath or store the secret as a JSON object"
        ) from None
    except RecursionError:
        raise InvalidArgument(
            f"{spec.describe()}: field jmesPath is set but the secret's JSON is nested too "
            "deeply to be read; remove jmesPath or store the secret with fewer levels"
        ) from None
    files = []
    for entry in spec.jmes_path:
        try:
            result = jmespath_eval.search(entry.path, document, budget)
            if not isinstance(result, str):
                budget.charge_in_full(result)  # before it is written out as JSON
        except jmespath_eval.BudgetExceeded:
            raise InvalidArgument(
                f"{spec.describe()}: jmesPath {entry.path[:100]!r} (objectAlias "
                f"{entry.object_alias!r}) needs more work than the mount's JMESPath expressions "
                f"may do together, above {beyond(limits, 'jmespath_steps')} steps; simplify "
                f"the expressions, {RAISE}"
            ) from None
        except (JMESPathError, RecursionError) as exc:  # found only when evaluated
            if isinstance(exc, JMESPathTypeError):  # its text quotes the value: never shown
                problem = (f"function {exc.function_name}() was given {exc.actual_type}, not "
                           f"{' or '.join(exc.expected_types)}")
            elif isinstance(exc, RecursionError):
                problem = "the secret's JSON is nested too deeply"
            else:  # an unknown function, a wrong number of arguments: from the expression
                problem = str(exc)
            raise InvalidArgument(
                f"{spec.describe()}: jmesPath {entry.path!r} (objectAlias "
                f"{entry.object_alias!r}) cannot be evaluated on the secret's JSON ({problem}); "
                "check the expression against https://jmespath.org and the secret's keys"
            ) from None
        if result is None:
            raise InvalidArgument(
                f"{spec.describe()}: jmesPath {entry.path!r} (objectAlias "
                f"{entry.object_alias!r}) matched nothing in the secret's JSON; check the "
                "expression against the secret's keys"
            )
        if isinstance(result, str):
            contents = result.encode("utf-8")
        else:
            contents = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()
        mode = entry.file_permission if entry.file_permission is not None else default_mode
        files.append(OutputFile(entry.file_name, mode, contents, value.version))
    return files


def build_files(
    request: MountRequest,
    values: Mapping[int, SecretValue],
    limits: RequestLimits,
    max_response_bytes: int,
) -> list[OutputFile]:
    """All files of the mount, in object order, validated as the driver will validate them.

    `values` maps ObjectSpec.index to its fetched value. The parent file of a jmesPath object is
    written too, as the existing provider does. The jmesPath expressions of the mount share one
    budget of `limits.jmespath_steps`.
    """
    files: list[OutputFile] = []
    budget: Budget | None = None
    for spec in request.objects:
        value = values[spec.index]
        mode = spec.file_permission if spec.file_permission is not None else (
            request.default_permission
        )
        files.append(OutputFile(spec.file_name, mode, value.data, value.version))
        if spec.jmes_path:
            if budget is None:
                from ack_secrets_provider.core.mount.jmespath_eval import Budget

                budget = Budget(limits.jmespath_steps)
            # jmesPath files inherit the object's filePermission unless they set their own
            files.extend(_jmespath_files(spec, value, mode, budget, limits))
    check_files(files, max_response_bytes)
    return files


def check_files(files: Sequence[OutputFile], max_response_bytes: int) -> None:
    """Refuse a file set the driver would refuse; warn above the Secret sync limit.

    The size counted is each file's bytes, its path twice (file and ObjectVersion id) and its
    version, plus a little framing: close to the protobuf size of the MountResponse.
    """
    seen: set[str] = set()
    total = 0
    for item in files:
        problem = driver_path_problem(item.path)
        if problem is not None:  # parsing already refused these; this guards plugin bugs
            raise InvalidArgument(f"file {item.path!r}: {problem}")
        if item.path in seen:
            raise InvalidArgument(f"two objects write the file {item.path!r}")
        seen.add(item.path)
        if not 0 <= item.mode <= 0o777:
            raise InvalidArgument(f"file {item.path!r}: mode {item.mode:o} is out of range")
        total += len(item.contents) + 2 * len(item.path) + len(item.version) + 24
    if total > max_response_bytes:
        raise ResourceExhausted(
            f"the mount's files add up to about {total} bytes, above the {max_response_bytes} "
            "bytes the driver accepts (--max-call-recv-msg-size); split the objects across "
            "several SecretProviderClasses, or raise the limit on BOTH sides: the driver's "
            "--max-call-recv-msg-size and the provider's flag of the same name (the chart "
            "passes Helm value secrets-store-csi-driver.maxCallRecvMsgSize to both)"
        )
    if total > SECRET_SYNC_LIMIT_BYTES:
        log.warning(
            "mount response is %d bytes: above 1 MiB a synced Kubernetes Secret "
            "(secretObjects) cannot hold these files", total,
        )
