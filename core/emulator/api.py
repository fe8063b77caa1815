"""The contract between the emulator framework and its service parts.

A *part* emulates one Alibaba Cloud service (KMS, OOS, STS, instance metadata). The framework
owns everything that is the same for every service: the HTTP listeners, signature verification,
the credential store, authorization policies, fault injection, counters and the admin API. A part
only says which requests it answers (`api_version` + `actions` for RPC-style APIs, or
`http_paths` for plain HTTP services such as instance metadata), loads its section of the seed,
answers calls and offers admin operations.

Parts are discovered through the entry-point group `ack_secrets_provider.emulators` (see
`registry.py`). This module never imports a backend or the auth package.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ack_secrets_provider.core.emulator.credentials import CredentialStore, PolicyStore


class ApiError(Exception):
    """An error answered in Alibaba Cloud's JSON error shape.

    The body is `{RequestId, HostId, Code, Message, Recommend}` plus `extra`; `headers` are added
    to the response (for example `x-acs-retry-after` for throttling). The SDK turns 4xx into
    `ClientException`, 5xx into `ServerException`, and any response carrying
    `x-acs-retry-after` into `ThrottlingException`.
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


@dataclass(frozen=True)
class Principal:
    """Who made a verified call.

    `name` is what policies are keyed by: a RAM user/account name or ARN for static keys, the role
    ARN for temporary credentials. `temporary` tells STS credentials apart.
    """

    name: str
    access_key_id: str
    temporary: bool = False
    session_name: str | None = None


@dataclass
class Call:
    """One request routed to a part, after the framework verified its signature.

    `params` merges the URL query and a form-encoded body (the RPC style puts API parameters in
    the query). `principal` is None only for anonymous actions and plain HTTP parts. A part appends
    the secret/parameter names it touches to `resources` (also on errors), which feeds the
    per-secret counters.
    """

    service: str
    action: str
    version: str
    method: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    host: str
    request_id: str
    signature_method: str = "anonymous"
    principal: Principal | None = None
    resources: list[str] = field(default_factory=list)

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)

    def require(self, name: str) -> str:
        """A mandatory parameter, or the real `MissingParameter` error naming it."""
        value = self.params.get(name)
        if value is None or value == "":
            raise ApiError("MissingParameter", f"The input parameter \"{name}\" that is "
                           "mandatory for processing this request is not supplied.", 400)
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean parameter: the SDKs send Python's `str(True)` ("True") or "true"."""
        value = self.params.get(name)
        if value is None or value == "":
            return default
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise ApiError("InvalidParameter", f"The parameter {name} must be true or false.", 400)


@dataclass
class Reply:
    """A successful answer. A Mapping body is sent as JSON; bytes/str as they are."""

    body: Mapping[str, Any] | bytes | str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


@dataclass
class EmulatorContext:
    """What the framework lends to every part: credentials, policies and the clock."""

    credentials: CredentialStore
    policies: PolicyStore
    now: Callable[[], float]

    @staticmethod
    def new_request_id() -> str:
        return str(uuid.uuid4()).upper()


class EmulatorPart(ABC):
    """Base class of a service part.

    Class attributes:
      service: the service name (the backend's, or `sts`, `metadata`), used for fault scopes,
        counters, admin routes (`/_admin/<service>/<op>`) and the seed section name.
      api_version / actions: for RPC-style APIs, the (version, action) pairs routed here.
      anonymous_actions: actions that need no signature (STS `AssumeRoleWithOIDC`).
      http_paths: path prefixes routed here without signature checks (instance metadata).
      product: the product code used in error `Recommend` links (for example `Kms`).
      throttling_code / throttling_status: the service's real throttling error.
      sample_allow: what `testing.default_seed()`'s limited principal may read here (globs).

    A part that stores versioned values answers the admin operation `rotate` ({name, value} →
    {version}: a new current version), which `EmulatorHandle.rotate` and the demo use.
    """

    service: ClassVar[str]
    api_version: ClassVar[str | None] = None
    actions: ClassVar[frozenset[str]] = frozenset()
    anonymous_actions: ClassVar[frozenset[str]] = frozenset()
    http_paths: ClassVar[tuple[str, ...]] = ()
    product: ClassVar[str] = ""
    throttling_code: ClassVar[str] = "Throttling.User"
    throttling_status: ClassVar[int] = 400
    sample_allow: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: EmulatorContext) -> None:
        self.context = context

    @classmethod
    def sample_seed(cls) -> Mapping[str, Any]:
        """This part's section of `testing.default_seed()` (the provider's own tests' data)."""
        return {}

    @abstractmethod
    def load_seed(self, section: Mapping[str, Any]) -> None:
        """Load this service's seed section (may be empty). Raise ValueError naming the field."""

    def handle(self, call: Call) -> Reply:
        """Answer one verified RPC call (raise ApiError for API errors)."""
        raise ApiError("InvalidAction.NotFound", "Specified api is not found, please check your "
                       "url and method.", 404)

    def handle_http(self, call: Call) -> Reply:
        """Answer one plain-HTTP request under `http_paths` (no signature involved)."""
        raise ApiError("NotFound", f"{call.path} is not found.", 404)

    def admin(self, operation: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """Run an admin operation (`POST /_admin/<service>/<operation>`); ValueError → 400."""
        raise KeyError(operation)

    def admin_operations(self) -> tuple[str, ...]:
        """Names of the admin operations, listed by `GET /_admin/health`."""
        return ()
