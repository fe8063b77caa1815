"""The one place that turns Alibaba Cloud SDK (Tea/darabonba) exceptions into provider errors.

Every SDK call goes through `map_sdk_error` with a `ServiceHints` describing its service (the
backends', and STS for the credential plugins), so every service reports the same classes for
the same situations (a service's own codes in its hints first, then these):

- not found → NotFound naming the object, its type and the endpoint;
- no permission → PermissionDenied naming the RAM action to grant (the server's
  AccessDeniedDetail.AuthAction when it says which, else the service's read action);
- bad credentials → Unauthenticated;
- throttling (a ThrottlingException, or a `Throttling` code) → Throttled, retryable, with the
  server's `x-acs-retry-after` as `retry_after` seconds;
- 5xx, connection errors and timeouts → Unavailable, retryable;
- TLS verification failures → FailedPrecondition (retrying cannot fix the trust configuration),
  and so is a configured CA file that cannot be loaded (core/cloud/tls.py's CaBundleError), both
  with the service's CA setting (`tls_advice`);
- any other 4xx → RejectedByUpstream (an InvalidArgument), or the hints' `rejected_as`;
- an exception that is neither an answer nor a network failure (a TypeError in a backend or the
  SDK, say) → InternalError: a bug, not retried, not counted against the endpoint, logged with
  its traceback (its message is not logged: it may quote a value).

Answers that are too large or not JSON are refused by core/cloud/transport.py with their own
errors (UnexpectedAnswer), which keep their class, the object's name put in front.

Messages never forward the SDK's text: its exception strings can carry the request URL, the
string-to-sign (which holds the AccessKey id) or a security token. Only the server's error code
(an identifier, checked against a strict pattern), the HTTP status and the request id are kept.
"""

from __future__ import annotations

import logging
import re
import traceback
from dataclasses import dataclass

from ack_secrets_provider.core.cloud.endpoints import Endpoint
from ack_secrets_provider.core.cloud.tls import CaBundleError
from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    InternalError,
    NotFound,
    PermissionDenied,
    ProviderError,
    RejectedByUpstream,
    Throttled,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

__all__ = ["ServiceHints", "is_network_failure", "map_sdk_error", "sdk_cause"]

_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_RAM_ACTION = re.compile(r"^[a-z][a-z0-9-]*:[A-Za-z][A-Za-z0-9]*$")

#: codes meaning the credential itself was rejected (prefix match)
_AUTH_CODES = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidSecurityToken",
    "InvalidAuthorization",
    "InvalidTimeStamp",
    "MissingSecurityToken",
    "Unauthorized",
)
_NOT_FOUND_HINTS = ("NotFound", "NotExist", "EntityNotExists", "ResourceNotFound")
_PERMISSION_HINTS = ("NoPermission", "Forbidden.RAM", "AccessDenied", "Forbidden.AccessDenied",
                     "NotAuthorized")
_TLS_HINTS = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "SSLError",
              "WRONG_VERSION_NUMBER", "hostname mismatch", "doesn't match")


@dataclass(frozen=True)
class ServiceHints:
    """What a backend tells the mapper about its service, for messages that say what to do."""

    #: human name of the service, e.g. "MyService"
    service: str
    #: what one object is called, e.g. "MyService secret"
    object_kind: str
    #: the RAM action the read needs, e.g. "myservice:GetValue"
    read_action: str
    #: further actions the read may need, e.g. a decryption key's action
    extra_actions: tuple[str, ...] = ()
    #: what to check when the object is not found, appended to the NotFound message
    not_found_advice: str = "check objectName, objectVersion and the region/endpoint"
    #: setting that controls the trust of this service's private CA, for TLS failures
    tls_advice: str = "check the endpoint and its CA configuration"
    #: the service's own error codes (or code parts, any letter case) meaning "permission
    #: denied", beside the common ones (NoPermission, Forbidden.RAM, AccessDenied...); they win
    #: over the common guesses (a service may say EntityNotExist for a role it will not show)
    permission_codes: tuple[str, ...] = ()
    #: the service's own error codes (or code parts) meaning "not found", beside the common ones
    not_found_codes: tuple[str, ...] = ()
    #: the service's own error codes (or code parts) meaning the credential or a token it was
    #: given was rejected, beside the common ones (InvalidAccessKeyId, SignatureDoesNotMatch...)
    auth_codes: tuple[str, ...] = ()
    #: what a refusal the mapper cannot classify becomes: for a backend, the object's fields
    #: were refused (RejectedByUpstream, an InvalidArgument); for a call made from the
    #: provider's own configuration (STS), a FailedPrecondition
    rejected_as: type[ProviderError] = RejectedByUpstream
    #: what to do, appended to refusals (authentication, permission, unclassified) when set
    advice: str = ""
    #: what to check when the service cannot be reached
    unreachable_advice: str = "check network access to the endpoint"


def _safe(value: object) -> str | None:
    """`value` when it is a short identifier (an error code, request id), else None."""
    if value is None:
        return None
    text = str(value)
    return text if _SAFE_TOKEN.match(text) else None


def _describe_response(code: str | None, status: int | None, request_id: str | None) -> str:
    parts = []
    if status:
        parts.append(f"HTTP {status}")
    if code:
        parts.append(f"code {code}")
    if request_id:
        parts.append(f"request id {request_id}")
    return ", ".join(parts) if parts else "no details"


def _denied_action(exc: BaseException) -> str | None:
    """The RAM action the server says was denied (AccessDeniedDetail.AuthAction), if any."""
    detail = getattr(exc, "access_denied_detail", None) or getattr(exc, "accessDeniedDetail", None)
    if isinstance(detail, dict):
        action = detail.get("AuthAction") or detail.get("authAction")
        if isinstance(action, str) and _RAM_ACTION.match(action):
            return action
    return None


def sdk_cause(exc: BaseException) -> BaseException:
    """Unwrap darabonba's UnretryableException to the cause (a network error, usually)."""
    seen = 0
    while seen < 5 and getattr(exc, "inner_exception", None) is not None:
        exc = exc.inner_exception  # type: ignore[attr-defined]
        seen += 1
    return exc


def _status_of(exc: BaseException) -> int | None:
    for attr in ("status_code", "statusCode"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and isinstance(data.get("statusCode"), int):
        return int(data["statusCode"])
    return None


def _has(code: str, parts: tuple[str, ...]) -> bool:
    lowered = code.lower()
    return any(part.lower() in lowered for part in parts)


def map_sdk_error(
    exc: BaseException, *, what: str, endpoint: Endpoint | None, hints: ServiceHints
) -> ProviderError:
    """The provider error for an exception raised by one SDK call: the one mapper of every
    Alibaba Cloud SDK failure (backends and the credential plugins' STS calls alike).

    `what` names the object or the call, e.g. "object #1 (myservice 'db')"; `endpoint` is where
    the call went (None when `what` says it). The result is meant to be raised `from None` so the
    SDK's text (which may hold request details) does not travel with it.
    """
    if isinstance(exc, ProviderError):
        return exc
    where = f"{what} at endpoint {endpoint.describe()}" if endpoint is not None else what
    then = f". {hints.advice}" if hints.advice else ""
    cause = sdk_cause(exc)
    if isinstance(cause, CaBundleError):
        # the provider's own CA configuration, not the endpoint: named with the setting to fix
        return CaBundleError(f"{where}: {cause.message}; {hints.tls_advice}")
    if isinstance(cause, ProviderError):
        # raised under the SDK call by our own code (the transport refusing an answer, a
        # credential refresh): the same error, naming the object too
        return type(cause)(f"{what}: {cause.message}", retry_after=cause.retry_after)
    code = _safe(getattr(cause, "code", None))
    status = _status_of(cause)
    request_id = _safe(getattr(cause, "request_id", None))
    response = _describe_response(code, status, request_id)
    kind = type(cause).__name__
    log.debug("%s call failed: %s (%s)", hints.service, kind, response)

    if status is None and code is None:
        return _transport_error(cause, where, hints)

    code_text = code or ""
    if kind == "ThrottlingException" or "Throttling" in code_text or status == 429:
        retry_after_ms = getattr(cause, "retry_after", None)
        retry_after = (
            float(retry_after_ms) / 1000.0
            if isinstance(retry_after_ms, int | float) and retry_after_ms > 0 else None
        )
        return Throttled(
            f"{where}: {hints.service} throttled the request ({response}); retried while the "
            "deadline allows. If this persists, lower the request rate (rotation poll interval, "
            "--max-concurrent-*-secret-pulls) or raise the service's quota",
            retry_after=retry_after,
        )
    if code_text.startswith(_AUTH_CODES) or _has(code_text, hints.auth_codes):
        advice = (
            "the clock of this node is off; fix its time synchronization"
            if code_text.startswith("InvalidTimeStamp")
            else "the AccessKey, its secret or the STS token was rejected; check the credential "
            "configured for this mount (and that an STS token has not expired)"
        )
        return Unauthenticated(f"{where}: authentication failed ({response}): {advice}{then}")
    if status is not None and status >= 500:
        return Unavailable(
            f"{where}: {hints.service} answered with a server error ({response}); retried while "
            "the deadline allows"
        )
    if code_text.startswith("ServiceUnavailable"):
        return Unavailable(f"{where}: {hints.service} is temporarily unavailable ({response})")
    denied = _has(code_text, hints.permission_codes)
    if not denied and (status == 404 or _has(code_text, hints.not_found_codes)
                       or any(hint in code_text for hint in _NOT_FOUND_HINTS)):
        return NotFound(
            f"{where}: {hints.object_kind} not found ({response}); {hints.not_found_advice}"
        )
    if denied or status == 403 or any(hint in code_text for hint in _PERMISSION_HINTS):
        action = _denied_action(cause)
        needed = [action] if action else [hints.read_action, *hints.extra_actions]
        return PermissionDenied(
            f"{where}: permission denied ({response}); grant the identity used for this mount "
            f"the RAM action(s) {', '.join(needed)} on this resource{then}"
        )
    return hints.rejected_as(
        f"{where}: {hints.service} refused the request as invalid ({response}); "
        + (hints.advice or "check the object's fields (objectName, objectVersion, "
           "objectVersionLabel)")
    )


def is_network_failure(cause: BaseException) -> bool:
    """A failure of the connection itself (requests' errors are OSErrors; darabonba turns them
    into RetryError; urllib3 raises its own HTTPError subclasses)."""
    from darabonba.exceptions import RetryError
    from urllib3.exceptions import HTTPError

    return isinstance(cause, OSError | RetryError | HTTPError)


def _transport_error(cause: BaseException, where: str, hints: ServiceHints) -> ProviderError:
    """No HTTP response: a connection failure, a timeout, a TLS failure, a credential error or a
    bug."""
    kind = type(cause).__name__
    module = type(cause).__module__ or ""
    if module.startswith("alibabacloud_credentials"):
        return Unavailable(
            f"{where}: the credential for this mount could not be obtained ({kind}); see the "
            "provider's logs for the credential plugin in use"
        )
    if not is_network_failure(cause):
        log.error(
            "%s: %s raised inside the %s SDK call: a bug in the provider, a plugin or the SDK "
            "(message withheld: it may quote a value); traceback (most recent call last):\n%s",
            where, kind, hints.service, "".join(traceback.format_tb(cause.__traceback__)),
        )
        return InternalError(
            f"{where}: the {hints.service} call failed inside the provider ({kind}); this is a "
            "bug, not a problem of the endpoint: the provider's log has the traceback, please "
            "report it"
        )
    text = f"{kind} {getattr(cause, 'message', '')} {cause!r}"
    if any(hint in text for hint in _TLS_HINTS):
        return FailedPrecondition(
            f"{where}: TLS verification of the endpoint failed: its certificate is not trusted "
            f"or does not match the host name; {hints.tls_advice}"
        )
    if "timed out" in text.lower() or "timeout" in text.lower():
        return Unavailable(
            f"{where}: the call timed out (the timeouts follow the mount deadline); retried while "
            "the deadline allows"
        )
    return Unavailable(
        f"{where}: could not reach {hints.service} ({kind}: connection failed or was dropped); "
        f"{hints.unreachable_advice}; retried while the deadline allows"
    )
