"""Emulator parts for STS and the ECS instance metadata service, plus a tiny fake Kubernetes API.

`StsEmulator` answers `AssumeRole` (signed by a RAM user's key or a temporary credential) and
`AssumeRoleWithOIDC` (anonymous: the OIDC token is the proof). Roles carry trust rules: which
principals may assume them, which OIDC providers and subjects
(`system:serviceaccount:<ns>:<sa>`, globs allowed). OIDC tokens are RS256 JWTs checked against
the provider's test signing key (generated per provider; `mint_token` issues tokens for tests)
for signature, issuer, audience and expiry. Issued credentials go into the framework's credential
store, bound to the role ARN, so KMS/OOS accept them until they expire and apply the role's
policy.

`MetadataEmulator` serves `PUT /latest/api/token` (IMDSv2) and
`GET /latest/meta-data/ram/security-credentials/[<role>]`, with switches to refuse IMDSv1
(`require_v2`) or to behave like a service without IMDSv2 (`v2_enabled: false`).

Seed sections (see docs/authentication.md for a full example):

    sts:
      issued_duration: 3600        # optional: cap the lifetime of issued credentials (seconds)
      oidc_providers:
        - arn: acs:ram::1234:oidc-provider/ack-rrsa-c1
          issuer: https://oidc-ack-cn-hangzhou.oss-cn-hangzhou.aliyuncs.com/c1
          audiences: [sts.aliyuncs.com]
      roles:
        - arn: acs:ram::1234:role/app
          trusted_principals: [ci-user]                      # AssumeRole callers ("*": any)
          oidc_subjects: ["system:serviceaccount:team-a:*"]  # AssumeRoleWithOIDC subjects
          oidc_providers: [acs:ram::1234:oidc-provider/ack-rrsa-c1]  # default: any known one
          max_session_duration: 3600
    metadata:
      role: node-role
      role_arn: acs:ram::1234:role/node-role
      require_v2: false
      v2_enabled: true
      credential_duration: 3600
"""

from __future__ import annotations

import base64
import fnmatch
import json
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ack_secrets_provider.core.emulator.api import (
    ApiError,
    Call,
    EmulatorContext,
    EmulatorPart,
    Reply,
)

STS_VERSION = "2015-04-01"
MIN_DURATION = 900
DEFAULT_DURATION = 3600
DEFAULT_AUDIENCE = "sts.aliyuncs.com"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _str_list(section: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = section.get(name) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: field {name} must be a list of strings")
    return tuple(value)


@dataclass
class OidcProvider:
    """An OIDC identity provider registered in RAM, with the key that signs its tokens."""

    arn: str
    issuer: str
    audiences: tuple[str, ...]
    key: rsa.RSAPrivateKey = field(repr=False)
    kid: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class Role:
    arn: str
    trusted_principals: tuple[str, ...] = ()
    oidc_subjects: tuple[str, ...] = ()
    oidc_providers: tuple[str, ...] = ()
    max_session_duration: int = DEFAULT_DURATION


def _no_permission(message: str) -> ApiError:
    return ApiError("AuthenticationFail.NoPermission", message, 403)


def _oidc_invalid(code: str, message: str) -> ApiError:
    return ApiError(f"AuthenticationFail.OIDCToken.{code}", message, 400)


class StsEmulator(EmulatorPart):
    """STS: AssumeRole and AssumeRoleWithOIDC with role trust rules and expiring credentials."""

    service = "sts"
    api_version = STS_VERSION
    actions: ClassVar[frozenset[str]] = frozenset({"AssumeRole"})
    anonymous_actions: ClassVar[frozenset[str]] = frozenset({"AssumeRoleWithOIDC"})
    product = "Sts"
    throttling_code = "Throttling.User"

    def __init__(self, context: EmulatorContext) -> None:
        super().__init__(context)
        self._lock = threading.Lock()
        self.roles: dict[str, Role] = {}
        self.providers: dict[str, OidcProvider] = {}
        #: cap on issued lifetimes (tests use seconds-long credentials to exercise refresh)
        self.issued_duration: float | None = None
        #: every successful issue: (action, role ARN, session name) — tests read this
        self.issued: list[tuple[str, str, str]] = []

    # --- seed / admin -------------------------------------------------------------------------
    def load_seed(self, section: Mapping[str, Any]) -> None:
        if section.get("issued_duration") is not None:
            self.issued_duration = float(section["issued_duration"])
        for index, entry in enumerate(section.get("oidc_providers") or []):
            self.add_oidc_provider(entry, where=f"emulator seed: sts.oidc_providers[{index}]")
        for index, entry in enumerate(section.get("roles") or []):
            self.add_role(entry, where=f"emulator seed: sts.roles[{index}]")
        unknown = set(section) - {"issued_duration", "oidc_providers", "roles"}
        if unknown:
            raise ValueError(f"emulator seed: sts: unknown field(s) {', '.join(sorted(unknown))}")

    def add_oidc_provider(self, entry: Mapping[str, Any], *, where: str = "oidc provider"
                          ) -> OidcProvider:
        if not isinstance(entry, Mapping) or not entry.get("arn") or not entry.get("issuer"):
            raise ValueError(f"{where} needs arn and issuer")
        provider = OidcProvider(
            arn=str(entry["arn"]), issuer=str(entry["issuer"]),
            audiences=_str_list(entry, "audiences", where) or (DEFAULT_AUDIENCE,),
            key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )
        with self._lock:
            self.providers[provider.arn] = provider
        return provider

    def add_role(self, entry: Mapping[str, Any], *, where: str = "role") -> Role:
        if not isinstance(entry, Mapping) or not entry.get("arn"):
            raise ValueError(f"{where} needs arn (acs:ram::<account>:role/<name>)")
        role = Role(
            arn=str(entry["arn"]),
            trusted_principals=_str_list(entry, "trusted_principals", where),
            oidc_subjects=_str_list(entry, "oidc_subjects", where),
            oidc_providers=_str_list(entry, "oidc_providers", where),
            max_session_duration=int(entry.get("max_session_duration") or DEFAULT_DURATION),
        )
        with self._lock:
            self.roles[role.arn] = role
        return role

    def mint_token(self, provider_arn: str, subject: str, *, audience: str | None = None,
                   expires_in: float = 3600.0, issuer: str | None = None,
                   key: rsa.RSAPrivateKey | None = None) -> str:
        """An RS256 JWT as the cluster's OIDC issuer would sign it (tests can spoil any part)."""
        provider = self.providers[provider_arn]
        now = self.context.now()
        header = {"alg": "RS256", "typ": "JWT", "kid": provider.kid}
        claims = {
            "iss": issuer or provider.issuer, "sub": subject,
            "aud": [audience or provider.audiences[0]],
            "iat": int(now), "nbf": int(now), "exp": int(now + expires_in),
        }
        signing_input = (_b64url(json.dumps(header).encode()) + "."
                         + _b64url(json.dumps(claims).encode()))
        signature = (key or provider.key).sign(signing_input.encode("ascii"),
                                               padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def admin(self, operation: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        if operation == "add_role":
            return {"arn": self.add_role(body).arn}
        if operation == "add_oidc_provider":
            return {"arn": self.add_oidc_provider(body).arn}
        if operation == "mint_token":
            if body.get("provider") not in self.providers:
                raise ValueError("mint_token needs provider (a known OIDC provider ARN)")
            token = self.mint_token(str(body["provider"]), str(body.get("subject") or ""),
                                    audience=body.get("audience"),
                                    expires_in=float(body.get("expires_in") or 3600))
            return {"token": token}
        if operation == "set_issued_duration":
            value = body.get("seconds")
            self.issued_duration = float(value) if value is not None else None
            return {"issued_duration": self.issued_duration}
        raise KeyError(operation)

    def admin_operations(self) -> tuple[str, ...]:
        return ("add_role", "add_oidc_provider", "mint_token", "set_issued_duration")

    # --- API ----------------------------------------------------------------------------------
    def handle(self, call: Call) -> Reply:
        role_arn = call.require("RoleArn")
        session = call.require("RoleSessionName")
        with self._lock:
            role = self.roles.get(role_arn)
        if role is None:
            raise ApiError("EntityNotExist.Role", f"The role not exists: {role_arn}.", 404)
        duration = self._duration(call, role)
        if call.action == "AssumeRole":
            assert call.principal is not None  # the framework verified the signature
            caller = call.principal.name
            if not any(fnmatch.fnmatchcase(caller, rule) for rule in role.trusted_principals):
                raise _no_permission(
                    f"You are not authorized to assume the role {role_arn}: its trust policy "
                    f"does not trust {caller}.")
            subject = caller
        else:
            provider_arn = call.require("OIDCProviderArn")
            token = call.require("OIDCToken")
            subject = self._verify_oidc(token, provider_arn, role)
        lifetime = float(duration) if self.issued_duration is None else min(
            float(duration), self.issued_duration)
        cred = self.context.credentials.issue_temporary(role_arn, lifetime,
                                                        session_name=session)
        with self._lock:
            self.issued.append((call.action, role_arn, session))
        role_name = role_arn.rsplit("/", 1)[-1]
        body: dict[str, Any] = {
            "Credentials": {
                "AccessKeyId": cred.access_key_id,
                "AccessKeySecret": cred.access_key_secret,
                "SecurityToken": cred.security_token,
                "Expiration": cred.expiration_iso,
            },
            "AssumedRoleUser": {
                "Arn": f"{role_arn.replace(':role/', ':assumed-role/')}/{session}",
                "AssumedRoleId": f"3{secrets.randbelow(10**17):017d}:{session}",
            },
            "SourceIdentity": subject,
        }
        if call.action == "AssumeRoleWithOIDC":
            body["OIDCTokenInfo"] = {"Subject": subject, "ClientIds": DEFAULT_AUDIENCE}
        call.resources.append(role_name)
        return Reply(body)

    def _duration(self, call: Call, role: Role) -> int:
        raw = call.param("DurationSeconds") or str(DEFAULT_DURATION)
        try:
            duration = int(raw)
        except ValueError:
            duration = -1
        if duration < MIN_DURATION or duration > role.max_session_duration:
            raise ApiError(
                "InvalidParameter.DurationSeconds",
                f"The parameter DurationSeconds must be between {MIN_DURATION} and "
                f"{role.max_session_duration}.", 400)
        return duration

    def _verify_oidc(self, token: str, provider_arn: str, role: Role) -> str:
        with self._lock:
            provider = self.providers.get(provider_arn)
        if provider is None:
            raise ApiError("EntityNotExist.OIDCProvider",
                           f"The OIDC provider does not exist: {provider_arn}.", 404)
        parts = token.split(".")
        if len(parts) != 3:
            raise _oidc_invalid("Invalid", "The OIDC token is not a JWT.")
        try:
            header = json.loads(_unb64url(parts[0]))
            claims = json.loads(_unb64url(parts[1]))
            signature = _unb64url(parts[2])
        except ValueError:
            raise _oidc_invalid("Invalid", "The OIDC token cannot be decoded.") from None
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            raise _oidc_invalid("Invalid", "The OIDC token must be signed with RS256.")
        try:
            provider.key.public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode("ascii"), padding.PKCS1v15(),
                hashes.SHA256())
        except InvalidSignature:
            raise _oidc_invalid("Invalid", "The signature of the OIDC token is invalid.") from None
        if not isinstance(claims, dict):
            raise _oidc_invalid("Invalid", "The OIDC token claims are not an object.")
        if claims.get("iss") != provider.issuer:
            raise _oidc_invalid("IssuerMismatch", "The issuer of the OIDC token does not match "
                                "the OIDC provider.")
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else audiences or []
        if not set(audiences) & set(provider.audiences):
            raise _oidc_invalid("AudienceMismatch", "The audience of the OIDC token does not "
                                "match the client IDs of the OIDC provider.")
        now = self.context.now()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or now >= exp:
            raise _oidc_invalid("Expired", "The OIDC token has expired.")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and now + 60 < nbf:
            raise _oidc_invalid("Invalid", "The OIDC token is not valid yet.")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise _oidc_invalid("Invalid", "The OIDC token has no subject.")
        if role.oidc_providers and provider_arn not in role.oidc_providers:
            raise _no_permission(f"The trust policy of {role.arn} does not trust the OIDC "
                                 f"provider {provider_arn}.")
        if not any(fnmatch.fnmatchcase(subject, rule) for rule in role.oidc_subjects):
            raise _no_permission(f"The trust policy of {role.arn} does not allow the OIDC "
                                 f"subject {subject}.")
        return subject


# --- instance metadata -----------------------------------------------------------------------

TOKEN_PATH = "/latest/api/token"
CREDENTIALS_PREFIX = "/latest/meta-data/ram/security-credentials/"
REGION_ID_PATH = "/latest/meta-data/region-id"
TTL_HEADER = "x-aliyun-ecs-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aliyun-ecs-metadata-token"


class MetadataEmulator(EmulatorPart):
    """ECS instance metadata: IMDSv2 tokens and the node's RAM role credentials."""

    service = "metadata"
    http_paths = ("/latest/",)
    product = "Ecs"

    def __init__(self, context: EmulatorContext) -> None:
        super().__init__(context)
        self._lock = threading.Lock()
        self.role: str | None = None
        self.role_arn: str | None = None
        #: the instance's region-id (None: 404, as a service that cannot tell)
        self.region: str | None = None
        #: refuse requests without an IMDSv2 token (the hardened setting)
        self.require_v2 = False
        #: answer PUT /latest/api/token (False: an old service without IMDSv2)
        self.v2_enabled = True
        self.credential_duration = float(DEFAULT_DURATION)
        self._tokens: dict[str, float] = {}
        self._current: Any = None
        #: requests answered without a token (IMDSv1), for tests
        self.v1_requests = 0

    def load_seed(self, section: Mapping[str, Any]) -> None:
        unknown = set(section) - {"role", "role_arn", "region", "require_v2", "v2_enabled",
                                  "credential_duration"}
        if unknown:
            raise ValueError("emulator seed: metadata: unknown field(s) "
                             f"{', '.join(sorted(unknown))}")
        self.configure(section)

    def configure(self, values: Mapping[str, Any]) -> None:
        with self._lock:
            if "role" in values:
                self.role = str(values["role"]) if values["role"] else None
                self._current = None
            if "role_arn" in values:
                self.role_arn = str(values["role_arn"]) if values["role_arn"] else None
            if "region" in values:
                self.region = str(values["region"]) if values["region"] else None
            if "require_v2" in values:
                self.require_v2 = bool(values["require_v2"])
            if "v2_enabled" in values:
                self.v2_enabled = bool(values["v2_enabled"])
            if "credential_duration" in values:
                self.credential_duration = float(values["credential_duration"])
                self._current = None

    def admin(self, operation: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        if operation == "set":
            self.configure(body)
            return {"role": self.role, "region": self.region, "require_v2": self.require_v2,
                    "v2_enabled": self.v2_enabled}
        raise KeyError(operation)

    def admin_operations(self) -> tuple[str, ...]:
        return ("set",)

    def handle_http(self, call: Call) -> Reply:
        if call.path == TOKEN_PATH:
            return self._issue_token(call)
        if call.path == REGION_ID_PATH and call.method == "GET":
            self._check_token(call)
            with self._lock:
                region = self.region
            if region is None:
                raise ApiError("NotFound", f"{call.path} is not found.", 404)
            return Reply(region, content_type="text/plain")
        if not call.path.startswith(CREDENTIALS_PREFIX) or call.method != "GET":
            raise ApiError("NotFound", f"{call.path} is not found.", 404)
        self._check_token(call)
        name = unquote(call.path[len(CREDENTIALS_PREFIX):])
        with self._lock:
            role = self.role
        if not name:
            if role is None:
                raise ApiError("NotFound", "no RAM role is attached to this instance", 404)
            return Reply(role, content_type="text/plain")
        if role is None or name != role:
            raise ApiError("NotFound", f"{call.path} is not found.", 404)
        return Reply(self._credentials(role), content_type="text/plain")

    def _issue_token(self, call: Call) -> Reply:
        if call.method != "PUT":
            raise ApiError("MethodNotAllowed", "use PUT to get a metadata token", 405)
        if not self.v2_enabled:
            raise ApiError("NotFound", f"{call.path} is not found.", 404)
        raw = call.headers.get(TTL_HEADER)
        try:
            ttl = int(raw or "")
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= 21600:
            raise ApiError("InvalidParameter", f"{TTL_HEADER} must be 1..21600 seconds", 400)
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self.context.now()
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + ttl
        return Reply(token, content_type="text/plain")

    def _check_token(self, call: Call) -> None:
        token = call.headers.get(TOKEN_HEADER)
        if token is None:
            if self.require_v2:
                raise ApiError("Forbidden", "IMDSv1 is disabled on this instance; get a token "
                               "with PUT /latest/api/token first", 403)
            with self._lock:
                self.v1_requests += 1
            return
        with self._lock:
            expires = self._tokens.get(token)
        if expires is None or expires <= self.context.now():
            raise ApiError("Unauthorized", "the metadata token is invalid or expired", 401)

    def _credentials(self, role: str) -> str:
        with self._lock:
            current = self._current
            now = self.context.now()
            # like ECS: the same credential until shortly before it expires
            if current is None or current.expiration - now < self.credential_duration / 4:
                current = self._current = self.context.credentials.issue_temporary(
                    self.role_arn or role, self.credential_duration, session_name=role)
        updated = datetime.fromtimestamp(self.context.now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json.dumps({
            "AccessKeyId": current.access_key_id,
            "AccessKeySecret": current.access_key_secret,
            "SecurityToken": current.security_token,
            "Expiration": current.expiration_iso,
            "LastUpdated": updated,
            "Code": "Success",
        })


# --- fake Kubernetes API (tests and the demo) ------------------------------------------------


class FakeKubeApi:
    """`GET /api/v1/namespaces/<ns>/serviceaccounts/<name>` and `GET /api/v1/nodes/<name>` on
    127.0.0.1, with a call counter.

    `service_accounts` maps (namespace, name) to its annotations, `nodes` a node name to its
    labels. `token`, when set, must be
    presented as a Bearer token (401 otherwise); `forbidden` answers 403 to everything.
    """

    def __init__(self, token: str | None = None) -> None:
        self.service_accounts: dict[tuple[str, str], dict[str, str]] = {}
        self.nodes: dict[str, dict[str, str]] = {}
        self.token = token
        self.forbidden = False
        self.calls = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add(self, namespace: str, name: str, annotations: Mapping[str, str] | None = None
            ) -> None:
        self.service_accounts[(namespace, name)] = dict(annotations or {})

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake Kubernetes API first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeKubeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                with api._lock:
                    api.calls += 1
                status, body = api._answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def _answer(self, path: str, authorization: str | None) -> tuple[int, Mapping[str, Any]]:
        if self.forbidden:
            return 403, {"kind": "Status", "reason": "Forbidden", "code": 403}
        if self.token is not None and authorization != f"Bearer {self.token}":
            return 401, {"kind": "Status", "reason": "Unauthorized", "code": 401}
        parts: Sequence[str] = urlsplit(path).path.strip("/").split("/")
        if len(parts) == 4 and parts[:3] == ["api", "v1", "nodes"]:
            labels = self.nodes.get(unquote(parts[3]))
            if labels is None:
                return 404, {"kind": "Status", "reason": "NotFound", "code": 404}
            return 200, {"apiVersion": "v1", "kind": "Node",
                         "metadata": {"name": unquote(parts[3]), "labels": labels}}
        if (len(parts) != 6 or parts[:3] != ["api", "v1", "namespaces"]
                or parts[4] != "serviceaccounts"):
            return 404, {"kind": "Status", "reason": "NotFound", "code": 404}
        namespace, name = unquote(parts[3]), unquote(parts[5])
        annotations = self.service_accounts.get((namespace, name))
        if annotations is None:
            return 404, {"kind": "Status", "reason": "NotFound", "code": 404}
        return 200, {"apiVersion": "v1", "kind": "ServiceAccount",
                     "metadata": {"namespace": namespace, "name": name,
                                  "annotations": annotations}}
