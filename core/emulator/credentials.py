"""Who may call the emulator: access keys, temporary credentials, and read policies.

Static access keys come from the seed, each bound to a principal (a RAM user or account). Other
parts (STS, metadata) issue temporary credentials through `CredentialStore.issue_temporary`; KMS
and OOS accept them until they expire. Policies say which secret/parameter names a principal may
read; a principal without a policy may read everything (the emulator's default).
"""

from __future__ import annotations

import fnmatch
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class AccessKey:
    """One access key the emulator knows. `security_token` is set for temporary credentials."""

    access_key_id: str
    access_key_secret: str
    principal: str
    security_token: str | None = None
    expiration: float | None = None
    session_name: str | None = None
    enabled: bool = True

    @property
    def temporary(self) -> bool:
        return self.security_token is not None

    def __repr__(self) -> str:  # never print the secret or the token
        return f"AccessKey({self.access_key_id!r}, principal={self.principal!r})"


@dataclass(frozen=True)
class TemporaryCredential:
    """What STS hands out: the four fields of the real `Credentials` object."""

    access_key_id: str
    access_key_secret: str
    security_token: str
    expiration: float
    principal: str

    @property
    def expiration_iso(self) -> str:
        """`Expiration` as STS writes it (`%Y-%m-%dT%H:%M:%SZ`, UTC)."""
        return datetime.fromtimestamp(self.expiration, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def to_json(self) -> dict[str, Any]:
        return {
            "AccessKeyId": self.access_key_id,
            "AccessKeySecret": self.access_key_secret,
            "SecurityToken": self.security_token,
            "Expiration": self.expiration_iso,
            "Principal": self.principal,
        }

    def __repr__(self) -> str:
        return f"TemporaryCredential({self.access_key_id!r}, principal={self.principal!r})"


class CredentialStore:
    """Thread-safe map from AccessKeyId to key material and principal."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._keys: dict[str, AccessKey] = {}

    def load_seed(self, entries: Iterable[Any]) -> None:
        for index, entry in enumerate(entries):
            where = f"emulator seed: access_keys[{index}]"
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where} must be a mapping with id, secret and principal")
            missing = [k for k in ("id", "secret", "principal") if not entry.get(k)]
            if missing:
                raise ValueError(f"{where}: field(s) {', '.join(missing)} missing; each access "
                                 "key needs id, secret and principal (a RAM user or ARN)")
            self.add_static(str(entry["id"]), str(entry["secret"]), str(entry["principal"]),
                            enabled=bool(entry.get("enabled", True)))

    def add_static(self, access_key_id: str, access_key_secret: str, principal: str,
                   *, enabled: bool = True) -> None:
        with self._lock:
            self._keys[access_key_id] = AccessKey(access_key_id, access_key_secret, principal,
                                                  enabled=enabled)

    def issue_temporary(self, principal: str, duration_seconds: float = 3600.0,
                        *, session_name: str | None = None) -> TemporaryCredential:
        """Mint STS-style credentials (`STS.` prefix) bound to `principal` (a role ARN)."""
        if duration_seconds <= 0:
            raise ValueError("duration_seconds must be positive")
        cred = TemporaryCredential(
            access_key_id="STS." + secrets.token_hex(12).upper(),
            access_key_secret=secrets.token_urlsafe(30),
            security_token="CAIS" + secrets.token_urlsafe(96),
            expiration=self._now() + duration_seconds,
            principal=principal,
        )
        with self._lock:
            self._keys[cred.access_key_id] = AccessKey(
                cred.access_key_id, cred.access_key_secret, principal,
                security_token=cred.security_token, expiration=cred.expiration,
                session_name=session_name,
            )
        return cred

    def expire(self, access_key_id: str) -> bool:
        """Make a temporary credential expire now (for tests); False if unknown or static."""
        with self._lock:
            key = self._keys.get(access_key_id)
            if key is None or not key.temporary:
                return False
            self._keys[access_key_id] = replace(key, expiration=self._now() - 1)
            return True

    def lookup(self, access_key_id: str) -> AccessKey | None:
        with self._lock:
            return self._keys.get(access_key_id)


class PolicyStore:
    """Per-principal allow lists of resource-name globs, per service or per RAM action.

    Seed shape: `policies: [{principal: NAME, allow: {kms: [GLOB...], oos: [GLOB...]}}]`.
    A principal listed here may read only what its `allow` matches (a service it does not list is
    denied); a principal not listed may read everything. A key that is a RAM action
    (`oos:GetSecretParameter`) allows that action only, as in a RAM policy: each API of a
    service has its own action (`GetSecretParameters` is `oos:GetSecretParameters`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._allow: dict[str, dict[str, tuple[str, ...]]] = {}

    def load_seed(self, entries: Iterable[Any]) -> None:
        for index, entry in enumerate(entries):
            where = f"emulator seed: policies[{index}]"
            if not isinstance(entry, Mapping) or not entry.get("principal"):
                raise ValueError(f"{where} needs a principal (user name or role ARN) and allow")
            allow = entry.get("allow") or {}
            if not isinstance(allow, Mapping) or not all(
                isinstance(v, list) and all(isinstance(p, str) for p in v) for v in allow.values()
            ):
                raise ValueError(f"{where}: field allow must map a service to a list of name "
                                 "globs, for example {<service>: ['app/*']}")
            self.set(str(entry["principal"]), {str(k): list(v) for k, v in allow.items()})

    def set(self, principal: str, allow: Mapping[str, Iterable[str]]) -> None:
        with self._lock:
            self._allow[principal] = {svc: tuple(globs) for svc, globs in allow.items()}

    def allows(self, principal: str | None, service: str, resource: str,
               action: str | None = None) -> bool:
        """Whether `principal` may call `action` (e.g. `oos:GetSecretParameters`; None: any
        read action of `service`) on `resource`."""
        if principal is None:
            return True
        with self._lock:
            policy = self._allow.get(principal)
        if policy is None:
            return True
        globs = (*policy.get(service, ()), *(policy.get(action, ()) if action else ()))
        return any(fnmatch.fnmatchcase(resource, glob) for glob in globs)
