"""What a credential plugin receives and returns: the mount's context and the identity.

`IdentityKey` is what the cloud authorizes on; values, SDK clients and credentials are cached
under it. Kept apart from the plugin host (credentials.py) so the hook specifications
(hookspecs.py) can name these types without importing the host that loads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ack_secrets_provider.core.mount.spec import MountRequest
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings


@dataclass(frozen=True)
class IdentityKey:
    """What the cloud authorizes on. Values, clients and credentials are cached under it.

    Holds no secret: the AccessKey id is an identifier, not a secret (still shown truncated).
    """

    mode: str
    role_arn: str | None = None
    #: OIDC subject for pod-level RRSA: `namespace/serviceaccount`
    subject: str | None = None
    access_key_id: str | None = None
    cross_account_role: str | None = None
    #: keyed one-way digest of an AccessKey secret (never shown): a request that carries a
    #: known AccessKey id with a wrong secret must not share another identity's cached values
    secret_digest: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        parts = [self.mode]
        if self.role_arn:
            parts.append(f"role {self.role_arn}")
        if self.subject:
            parts.append(f"serviceaccount {self.subject}")
        if self.access_key_id:
            parts.append(f"AccessKey {self.access_key_id[:6]}…")
        if self.cross_account_role:
            parts.append(f"assuming {self.cross_account_role}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Identity:
    """A resolved identity: its key and an alibabacloud_credentials client to sign with.

    `credential` is an `alibabacloud_credentials.client.Client` built around an explicit
    provider (never the library's default chain). `provider_level` marks the provider's own
    identities (modes 2-6), which the namespace allow-list restricts.
    """

    key: IdentityKey
    credential: Any = field(repr=False, compare=False)
    provider_level: bool = True

    def describe(self) -> str:
        return self.key.describe()


@dataclass(frozen=True)
class CredentialContext:
    request: MountRequest
    settings: ProviderSettings
    deadline: Deadline
