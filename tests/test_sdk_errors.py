"""Mapping of the real SDK exception classes to provider errors (codes, hints, no leaks)."""

from __future__ import annotations

import pytest
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from darabonba.exceptions import RetryError, UnretryableException
from darabonba.policy.retry import RetryPolicyContext

from ack_secrets_provider.core.cloud.endpoints import Endpoint
from ack_secrets_provider.core.cloud.sdk_errors import ServiceHints, map_sdk_error
from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ProviderError,
    Throttled,
    Unauthenticated,
    Unavailable,
)

HINTS = ServiceHints(service="KMS", object_kind="KMS secret", read_action="kms:GetSecretValue")
OOS = ServiceHints(service="OOS", object_kind="OOS secret parameter",
                   read_action="oos:GetSecretParameter", extra_actions=("kms:Decrypt",))
ENDPOINT = Endpoint(service="kms", host="kms-vpc.cn-hangzhou.aliyuncs.com",
                    address="kms-vpc.cn-hangzhou.aliyuncs.com")
WHAT = "object #1 (kms 'db-password')"
LEAK = "LTAI5tLeakyKeyId SecurityToken=CAISsecret stringToSign"


def mapped(exc: BaseException, hints: ServiceHints = HINTS) -> ProviderError:
    error = map_sdk_error(exc, what=WHAT, endpoint=ENDPOINT, hints=hints)
    assert WHAT in error.message and ENDPOINT.host in error.message
    assert "LTAI5tLeaky" not in error.message and "CAIS" not in error.message
    return error


def client(status: int, code: str, **kwargs: object) -> ClientException:
    return ClientException(status_code=status, code=code, message=f"code: {status}, {LEAK}",
                           request_id="4C467B38-3910", data={"Message": LEAK}, **kwargs)


def test_not_found() -> None:
    error = mapped(client(404, "Forbidden.ResourceNotFound"))
    assert isinstance(error, NotFound) and not error.retryable
    assert "KMS secret not found" in error.message and "4C467B38-3910" in error.message


@pytest.mark.parametrize("code", ["Forbidden.NoPermission", "Forbidden.RAM"])
def test_permission_denied_names_the_ram_action(code: str) -> None:
    error = mapped(client(403, code))
    assert isinstance(error, PermissionDenied) and "kms:GetSecretValue" in error.message
    oos = mapped(client(403, code), OOS)
    assert "oos:GetSecretParameter" in oos.message and "kms:Decrypt" in oos.message


def test_permission_denied_prefers_the_servers_auth_action() -> None:
    exc = client(403, "Forbidden.NoPermission",
                 access_denied_detail={"AuthAction": "kms:Decrypt", "PolicyType": "x"})
    error = mapped(exc, OOS)
    assert isinstance(error, PermissionDenied)
    assert "kms:Decrypt" in error.message and "oos:GetSecretParameter" not in error.message


@pytest.mark.parametrize("code", [
    "InvalidAccessKeyId.NotFound", "SignatureDoesNotMatch", "InvalidSecurityToken.Expired",
    "InvalidSecurityToken.MismatchWithAccessKey",
])
def test_bad_credentials(code: str) -> None:
    error = mapped(client(400 if code != "SignatureDoesNotMatch" else 400, code))
    assert isinstance(error, Unauthenticated) and code in error.message


def test_throttling_with_retry_after() -> None:
    exc = ThrottlingException(status_code=429, code="Rejected.Throttling", message=LEAK,
                              request_id="r-1", retry_after=1500)
    error = mapped(exc)
    assert isinstance(error, Throttled) and error.retryable and error.retry_after == 1.5
    plain = mapped(client(400, "Throttling.User"))
    assert isinstance(plain, Throttled) and plain.retry_after is None


def test_server_errors_are_retryable() -> None:
    error = mapped(ServerException(status_code=503, code="ServiceUnavailableTemporary",
                                   message=LEAK, request_id="r"))
    assert isinstance(error, Unavailable) and error.retryable
    assert not isinstance(error, Throttled)


def test_other_4xx_is_invalid_argument() -> None:
    error = mapped(client(400, "InvalidParameter"))
    assert isinstance(error, InvalidArgument) and not error.retryable


def _network(message: str) -> UnretryableException:
    context = RetryPolicyContext(retries_attempted=1, exception=RetryError(message))
    return UnretryableException(context)


def test_connection_errors_and_timeouts_are_unavailable() -> None:
    refused = mapped(_network(f"HTTPConnectionPool: Max retries exceeded {LEAK} (refused)"))
    assert isinstance(refused, Unavailable) and refused.retryable
    timeout = mapped(_network(f"Read timed out. (read timeout=1.0) {LEAK}"))
    assert isinstance(timeout, Unavailable) and "timed out" in timeout.message


def test_tls_failures_are_not_retried() -> None:
    error = mapped(_network(f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed {LEAK}"))
    assert isinstance(error, FailedPrecondition) and not error.retryable


def test_unsafe_codes_are_not_echoed() -> None:
    error = mapped(client(400, f"Weird code with {LEAK}"))
    assert isinstance(error, InvalidArgument) and "Weird" not in error.message


def test_provider_errors_pass_through() -> None:
    original = Unauthenticated("the pod token was rejected")
    assert map_sdk_error(original, what=WHAT, endpoint=ENDPOINT, hints=HINTS) is original


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("EntityNotExist.Role", 404, PermissionDenied),  # STS's own code wins over "not found"
    ("NoPermission", 403, PermissionDenied),
    ("InvalidParameter.OIDCToken", 400, Unauthenticated),
    ("AuthenticationFail.OIDCToken.Expired", 400, Unauthenticated),
    ("InvalidParameter.RoleSessionName", 400, FailedPrecondition),  # configuration, not an SPC
    ("InternalError", 500, Unavailable),
])
def test_sts_failures_go_through_the_same_mapper(
    code: str, status: int, expected: type[ProviderError]
) -> None:
    from ack_secrets_provider.auth import _sts

    error = _sts.map_sts_error(client(status, code), "pod RRSA for team-a/app",
                               "check the role's trust policy")
    assert type(error) is expected, error.message
    assert error.message.startswith("pod RRSA for team-a/app: ") and code in error.message
    assert "LTAI5tLeaky" not in error.message and "CAIS" not in error.message
    if expected is not Unavailable:
        assert error.message.endswith("check the role's trust policy")
