"""Helpers a credential plugin needs to cache identities the way the built-ins do.

- `IdentityCache` (defined in core/plugins/identity.py, re-exported here): a bounded LRU of
  identities, each built once per cache key even when many mounts ask at the same time (single
  flight, bounded by the caller's deadline). The credential host owns one and hands it to every
  plugin as `context.identities`; a plugin keeps its identities there and returns the same
  `Identity` for later mounts, so SDK clients are reused and temporary credentials refreshed
  once per lifetime.
- `secret_digest`: a keyed one-way digest of a secret, for `IdentityKey.secret_digest` when an
  AccessKey secret (or any secret) must tell two identities apart without being kept.
- `refreshing_identity`: an `Identity` whose credential client wraps a `RefreshingProvider`
  (refresh.py) around the plugin's `fetch`.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from ack_secrets_provider.core.plugins.identity import (
    CredentialContext,
    Identity,
    IdentityCache,
    IdentityKey,
)
from ack_secrets_provider.core.plugins.toolkit.refresh import Fetch, RefreshingProvider

__all__ = ["IdentityCache", "refreshing_identity", "secret_digest"]

#: per-process key of `secret_digest` (digests are never comparable across processes)
_DIGEST_KEY = os.urandom(32)


def secret_digest(secret: str) -> str:
    """A keyed one-way digest of a secret, to tell identities with the same AccessKey id but
    different secrets apart (a wrong or rotated secret never shares a cache entry)."""
    return hmac.new(_DIGEST_KEY, secret.encode(), hashlib.sha256).hexdigest()[:32]


def refreshing_identity(
    key: IdentityKey, name: str, fetch: Fetch, context: CredentialContext, *, provider_level: bool
) -> Identity:
    """An Identity whose credential client wraps a RefreshingProvider around `fetch`.

    `name` names the credential in logs and metrics (the plugin's mode). The refresh schedule
    follows the clock of the host's identity cache (`context.identities.clock`) and refreshes
    are counted in the host's metrics (`context.metrics`).
    """
    provider = RefreshingProvider(name, fetch, clock=context.identities.clock,
                                  metrics=context.metrics)
    from alibabacloud_credentials.client import Client as CredentialClient  # heavy: first use

    return Identity(key=key, credential=CredentialClient(provider=provider),
                    provider_level=provider_level)
