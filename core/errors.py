"""One exception hierarchy for the provider, each class mapped once to a gRPC status.

Every message must name the object and the field involved and say what to do. No message may
contain a secret value, a token or an AccessKey secret: messages reach pod events and logs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import grpc

#: most problems spelled out in one combined message (a driver event should stay readable)
MAX_LISTED_PROBLEMS = 10


class ProviderError(Exception):
    """Base class of every error the provider reports to the driver."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    #: short, stable, low-cardinality name; used as the metric label and MountResponse error code
    reason: str = "Internal"
    #: True when the same call may succeed if tried again (throttling, 5xx, network)
    retryable: bool = False
    #: True when the error is the upstream's considered answer about this request (not found,
    #: denied, rejected, throttled): the endpoint is up, so the outage gate counts it as a
    #: success, and so does the retry budget for an answer that is not retried (throttling is,
    #: and its retries spend the budget); one tenant's missing secret or exhausted quota never
    #: makes the endpoint look down for the others
    proves_endpoint_alive: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: seconds the server asked us to wait before retrying (x-acs-retry-after), if any
        self.retry_after = retry_after
        #: each problem this error reports, every one naming its object and field
        self.problems: tuple[str, ...] = (message,)

    def __str__(self) -> str:
        return self.message


class InvalidArgument(ProviderError):
    """The SecretProviderClass, the pod's volume attributes or the request is malformed."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "InvalidArgument"


class RejectedByUpstream(InvalidArgument):
    """The upstream refused the request as invalid (a 4xx without a more specific meaning)."""

    proves_endpoint_alive = True


class NotFound(ProviderError):
    """The secret or parameter does not exist (or not in the requested version/stage)."""

    code = grpc.StatusCode.NOT_FOUND
    reason = "NotFound"
    proves_endpoint_alive = True


class PermissionDenied(ProviderError):
    """The identity used is not allowed to read the object (names the missing RAM action)."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PermissionDenied"
    proves_endpoint_alive = True


class Unauthenticated(ProviderError):
    """The credential was rejected: unknown AccessKey, bad signature, expired token."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "Unauthenticated"
    proves_endpoint_alive = True


class FailedPrecondition(ProviderError):
    """No usable identity: a required token, annotation or setting is missing."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FailedPrecondition"


class Unavailable(ProviderError):
    """The upstream service is down or unreachable, and retries did not help in time.

    Mapped to ABORTED, not UNAVAILABLE: the driver's gRPC client retries UNAVAILABLE by itself
    (3 attempts), so an upstream outage answered as UNAVAILABLE became three Mounts' worth of
    upstream calls and the provider's explanation was lost behind "context deadline exceeded".
    ABORTED ("retry at a higher level") is not retried by the driver; kubelet retries the whole
    NodePublish with its own backoff. UNAVAILABLE stays what gRPC itself answers when the
    provider is not listening or is shutting down, which the driver should retry.
    """

    code = grpc.StatusCode.ABORTED
    reason = "Unavailable"
    retryable = True


class Throttled(Unavailable):
    """The upstream service throttled the call (retryable); RESOURCE_EXHAUSTED after retries."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "Throttled"
    proves_endpoint_alive = True  # an answer about the caller's quota: the endpoint is up


class ProviderBusy(ProviderError):
    """The provider serves as many Mounts as it may at once (--max-concurrent-mounts).

    UNAVAILABLE because the driver retries exactly that code (3 attempts, 1 s backoff and up),
    and kubelet retries the NodePublish after that: the Mount is delayed, not lost.
    """

    code = grpc.StatusCode.UNAVAILABLE
    reason = "ProviderBusy"


class DeadlineExceeded(ProviderError):
    """The caller's deadline passed before the mount could finish."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DeadlineExceeded"


class UnexpectedAnswer(ProviderError):
    """An upstream answered something no correct service sends (a body too large, not JSON, a
    field of the wrong type): reported naming the endpoint, never retried as a network failure."""

    code = grpc.StatusCode.INTERNAL
    reason = "UnexpectedAnswer"


class ResourceExhausted(ProviderError):
    """The response would exceed what the driver accepts (--max-call-recv-msg-size)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "ResourceExhausted"


class UpstreamDataError(ProviderError):
    """The upstream answered, but the stored value is unusable (e.g. a binary secret whose data
    is not base64): the owner of the secret must fix it; retrying cannot help."""

    code = grpc.StatusCode.DATA_LOSS
    reason = "DataLoss"


class PluginError(ProviderError):
    """A plugin is missing, failed to load, or broke its contract."""

    code = grpc.StatusCode.INTERNAL
    reason = "PluginError"


class InternalError(ProviderError):
    """An unexpected failure inside the provider (a bug): reported without its details."""

    code = grpc.StatusCode.INTERNAL
    reason = "Internal"


def combined(errors: Sequence[ProviderError]) -> ProviderError:
    """One error reporting every problem of a mount, so one attempt shows all there is to fix.

    It keeps the class (so the gRPC code and reason) of the first error, which callers pass in
    object order; the message lists the problems, at most MAX_LISTED_PROBLEMS of them, each
    already naming its object and field.
    """
    if len(errors) == 1:
        return errors[0]
    problems = tuple(problem for error in errors for problem in error.problems)
    listed = "; ".join(f"[{number}] {problem}"
                       for number, problem in enumerate(problems[:MAX_LISTED_PROBLEMS], start=1))
    more = len(problems) - MAX_LISTED_PROBLEMS
    if more > 0:
        listed += f"; and {more} more"
    result = copy.copy(errors[0])  # the class and its retry hint, whatever a subclass carries
    result.message = f"{len(problems)} problems: {listed}"
    result.args = (result.message,)
    result.problems = problems
    return result
