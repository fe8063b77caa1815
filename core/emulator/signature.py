"""Independent verification of Alibaba Cloud request signatures.

Two schemes, as the official SDKs send them:

* ACS3-HMAC-SHA256 (the tea-openapi default): an `Authorization` header
  `ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=h1;h2,Signature=hex`; the canonical request is
  METHOD, path, the sorted percent-encoded query, the signed headers (`name:value`), the signed
  header list and the SHA-256 of the body (which must equal `x-acs-content-sha256`). `host` and
  every `x-acs-*` header must be signed; `x-acs-date` must be within 15 minutes.
* The legacy RPC signature (`Config(signature_algorithm='v2')`, STS calls of
  alibabacloud-credentials): `Signature` in the query, HMAC-SHA1 over
  `METHOD&%2F&enc(sorted enc(k)=enc(v) joined by &)` with key `secret + "&"`; `Timestamp` must be
  within 15 minutes. alibabacloud-credentials encodes with `quote_plus` (space as `+`), the RPC
  spec with `%20`; both encodings are accepted.

Security tokens travel in `x-acs-security-token` (ACS3) or the `SecurityToken` parameter (v1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

from ack_secrets_provider.core.emulator import errors
from ack_secrets_provider.core.emulator.api import ApiError, Principal
from ack_secrets_provider.core.emulator.credentials import AccessKey, CredentialStore

MAX_SKEW_SECONDS = 15 * 60
ACS3 = "ACS3-HMAC-SHA256"
V1 = "HMAC-SHA1"
_AUTH = re.compile(
    r"^(?P<alg>\S+)\s+Credential=(?P<ak>[^,\s]+)\s*,\s*SignedHeaders=(?P<sh>[^,\s]*)\s*,"
    r"\s*Signature=(?P<sig>[0-9A-Fa-f]+)\s*$"
)


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request a signature covers."""

    method: str
    path: str
    query: Sequence[tuple[str, str]]
    headers: Mapping[str, Sequence[str]]  # lowercase name → all received values
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None


def _enc(text: str) -> str:
    """RFC 3986 percent-encoding (unreserved A-Z a-z 0-9 - _ . ~ kept), as the RPC spec says."""
    return quote(text, safe="-_.~")


def _parse_time(value: str) -> float:
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise errors.timestamp_format(value) from None


class NonceCache:
    """Rejects a (key, nonce) pair seen within the timestamp window (replay protection)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}
        self._next_prune = 0.0

    def check(self, access_key_id: str, nonce: str) -> None:
        now = self._now()
        with self._lock:
            if now >= self._next_prune:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
                self._next_prune = now + 60
            key = (access_key_id, nonce)
            if self._seen.get(key, 0) > now:
                raise errors.nonce_used()
            self._seen[key] = now + 2 * MAX_SKEW_SECONDS


class SignatureVerifier:
    """Checks one request's signature, timestamp and security token; returns the caller."""

    def __init__(self, store: CredentialStore, now: Callable[[], float] = time.time) -> None:
        self._store = store
        self._now = now
        self._nonces = NonceCache(now)

    def is_signed(self, req: SignedRequest) -> bool:
        return req.header("authorization") is not None or any(k == "Signature"
                                                                for k, _ in req.query)

    def verify(self, req: SignedRequest, params: Mapping[str, str]) -> tuple[Principal, str]:
        """Return (principal, signature method) or raise the real ApiError."""
        if req.header("authorization") is not None:
            return self._verify_acs3(req), ACS3
        if "Signature" in params:
            return self._verify_v1(req, params), V1
        raise errors.incomplete_signature("No Authorization header or Signature parameter.")

    # --- shared -------------------------------------------------------------------------------
    def _key(self, access_key_id: str, token: str | None) -> AccessKey:
        key = self._store.lookup(access_key_id)
        if key is None:
            raise errors.access_key_not_found()
        if not key.enabled:
            raise errors.access_key_inactive()
        if key.temporary:
            if not token:
                raise errors.missing_security_token()
            if not hmac.compare_digest(token.encode(), (key.security_token or "").encode()):
                raise errors.security_token_mismatch()
            if key.expiration is not None and self._now() >= key.expiration:
                raise errors.security_token_expired()
        elif token:
            raise errors.security_token_malformed()
        return key

    def _check_time(self, value: str | None, name: str) -> None:
        if not value:
            raise errors.incomplete_signature(f"{name} is missing.")
        if abs(self._now() - _parse_time(value)) > MAX_SKEW_SECONDS:
            raise errors.timestamp_expired(value)

    @staticmethod
    def _principal(key: AccessKey) -> Principal:
        return Principal(key.principal, key.access_key_id, key.temporary, key.session_name)

    # --- ACS3 ---------------------------------------------------------------------------------
    def _verify_acs3(self, req: SignedRequest) -> Principal:
        match = _AUTH.match(req.header("authorization") or "")
        if match is None:
            raise errors.incomplete_signature("Authorization header is malformed.")
        if match["alg"] != ACS3:
            raise errors.incomplete_signature(f"Signature algorithm {match['alg']!r} is not "
                                              f"supported by the emulator (use {ACS3}).")
        signed = [h for h in match["sh"].split(";") if h]
        must_sign = {"host"} | {h for h in req.headers if h.startswith("x-acs-")}
        unsigned = sorted(must_sign - set(signed))
        if unsigned:
            raise errors.incomplete_signature(f"Headers {', '.join(unsigned)} must be signed.")
        if any(h not in req.headers for h in signed):
            raise errors.incomplete_signature("A signed header is missing from the request.")
        self._check_time(req.header("x-acs-date"), "x-acs-date")
        key = self._key(match["ak"], req.header("x-acs-security-token"))

        payload_hash = hashlib.sha256(req.body).hexdigest()
        if (req.header("x-acs-content-sha256") or "").lower() != payload_hash:
            raise errors.signature_mismatch("x-acs-content-sha256 does not match the body.")
        query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(req.query))
        headers = "".join(
            f"{h}:{','.join(sorted(v.strip() for v in req.headers[h]))}\n" for h in signed
        )
        canonical = "\n".join([req.method, req.path or "/", query, headers, ";".join(signed),
                               payload_hash])
        to_sign = f"{ACS3}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        expected = hmac.new(key.access_key_secret.encode(), to_sign.encode(),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match["sig"].lower()):
            raise errors.signature_mismatch()
        nonce = req.header("x-acs-signature-nonce")
        if not nonce:
            raise errors.incomplete_signature("x-acs-signature-nonce is missing.")
        self._nonces.check(key.access_key_id, nonce)
        return self._principal(key)

    # --- legacy v1 ----------------------------------------------------------------------------
    def _verify_v1(self, req: SignedRequest, params: Mapping[str, str]) -> Principal:
        access_key_id = params.get("AccessKeyId")
        if not access_key_id:
            raise errors.incomplete_signature("AccessKeyId is missing.")
        method = params.get("SignatureMethod", "")
        if method != V1 or params.get("SignatureVersion", "1.0") != "1.0":
            raise errors.incomplete_signature("SignatureMethod must be HMAC-SHA1 and "
                                              "SignatureVersion 1.0.")
        self._check_time(params.get("Timestamp"), "Timestamp")
        key = self._key(access_key_id, params.get("SecurityToken"))
        signed = sorted((k, v) for k, v in params.items() if k != "Signature")
        secret = (key.access_key_secret + "&").encode()
        candidates = []
        for enc in (_enc, lambda s: quote_plus(s, safe="~")):
            canonical = "&".join(f"{enc(k)}={enc(v)}" for k, v in signed)
            to_sign = f"{req.method}&{enc('/')}&{enc(canonical)}"
            digest = hmac.new(secret, to_sign.encode(), hashlib.sha1).digest()
            candidates.append(base64.b64encode(digest).decode())
        received = params["Signature"]
        if not any(hmac.compare_digest(c, received) for c in candidates):
            raise errors.signature_mismatch()
        nonce = params.get("SignatureNonce")
        if not nonce:
            raise errors.incomplete_signature("SignatureNonce is missing.")
        self._nonces.check(key.access_key_id, nonce)
        return self._principal(key)


def require_signature(verifier: SignatureVerifier, req: SignedRequest,
                      params: Mapping[str, str]) -> tuple[Principal, str]:
    """Verify, mapping unexpected parse errors to IncompleteSignature (never a 500)."""
    try:
        return verifier.verify(req, params)
    except ApiError:
        raise
    except (ValueError, KeyError, UnicodeError) as exc:
        raise errors.incomplete_signature(type(exc).__name__) from None
