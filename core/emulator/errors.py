"""The common errors of the Alibaba Cloud API gateway, in the real codes and statuses.

Service-specific errors (not found, no permission, throttling) are raised by the parts; these are
the ones the framework itself answers before a call reaches a part.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ack_secrets_provider.core.emulator.api import ApiError


def error_body(error: ApiError, *, request_id: str, host: str, product: str) -> bytes:
    """The real error JSON: RequestId, HostId, Code, Message, Recommend (+ extras)."""
    body: dict[str, Any] = {
        "RequestId": request_id,
        "HostId": host,
        "Code": error.code,
        "Message": error.message,
        "Recommend": (f"https://api.aliyun.com/troubleshoot?q={error.code}"
                      f"&product={product or 'Emulator'}&requestId={request_id}"),
    }
    body.update(error.extra)
    return json.dumps(body).encode("utf-8")


def access_key_not_found() -> ApiError:
    return ApiError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)


def access_key_inactive() -> ApiError:
    return ApiError("InvalidAccessKeyId.Inactive", "Specified access key is disabled.", 400)


def signature_mismatch(detail: str = "") -> ApiError:
    # The real message echoes the server's string-to-sign; it holds no secret, but we keep it
    # short and say which step differed instead.
    message = "Specified signature is not matched with our calculation."
    return ApiError("SignatureDoesNotMatch", message + (f" {detail}" if detail else ""), 400)


def incomplete_signature(detail: str) -> ApiError:
    return ApiError("IncompleteSignature",
                    f"The request signature does not conform to Aliyun standards. {detail}", 400)


def timestamp_expired(value: str) -> ApiError:
    return ApiError("InvalidTimeStamp.Expired",
                    f"Specified time stamp or date value is expired. (received {value!r})", 400)


def timestamp_format(value: str) -> ApiError:
    return ApiError("InvalidTimeStamp.Format",
                    f"Specified time stamp or date value is not well formatted: {value!r}.", 400)


def nonce_used() -> ApiError:
    return ApiError("SignatureNonceUsed", "Specified signature nonce was used already.", 400)


def missing_security_token() -> ApiError:
    return ApiError("MissingSecurityToken", "SecurityToken is mandatory for this action.", 400)


def security_token_expired() -> ApiError:
    return ApiError("InvalidSecurityToken.Expired", "Specified SecurityToken is expired.", 400)


def security_token_mismatch() -> ApiError:
    return ApiError("InvalidSecurityToken.MismatchWithAccessKey",
                    "Specified SecurityToken mismatch with the AccessKey.", 400)


def security_token_malformed() -> ApiError:
    return ApiError("InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.",
                    400)


def action_not_found(action: str, version: str) -> ApiError:
    return ApiError("InvalidAction.NotFound",
                    f"Specified api is not found, please check your url and method. "
                    f"(Action={action!r}, Version={version!r})", 404)


def service_unavailable() -> ApiError:
    return ApiError("ServiceUnavailableTemporary",
                    "The service is temporarily unavailable. Please try again later.", 503)


def internal_failure() -> ApiError:
    return ApiError("InternalFailure", "The request processing has failed due to some unknown "
                    "error, exception or failure.", 500)


def throttled(code: str, status: int, retry_after_ms: int) -> ApiError:
    return ApiError(code, "Request was denied due to request throttling.", status,
                    headers={"x-acs-retry-after": str(max(1, int(retry_after_ms)))})


def access_denied_detail(action: str, principal: str | None, resource: str) -> Mapping[str, Any]:
    """The `AccessDeniedDetail` object the SDK exposes as `ClientException.access_denied_detail`."""
    return {"AccessDeniedDetail": {
        "AuthAction": action,
        "AuthPrincipalDisplayName": principal or "",
        "AuthPrincipalType": "AssumedRoleUser" if principal and ":role/" in principal
        else "SubUser",
        "NoPermissionType": "ImplicitDeny",
        "PolicyType": "AccountLevelIdentityBasedPolicy",
        "AuthResource": resource,
    }}
