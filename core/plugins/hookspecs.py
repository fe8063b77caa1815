"""Every credential hook, in one module (pluggy project name `ack_secrets_provider`).

Credential plugins are modules or objects registered under the entry-point group
`ack_secrets_provider.credentials`. Built-in plugins are registered exactly like third-party ones.
Hooks are `firstresult`: the first implementation that returns something wins.

The rule of every implementation (as botocore's credential resolver): return None when the
plugin does not apply to this request; raise a ProviderError (FailedPrecondition,
Unauthenticated, PermissionDenied...) when it applies and fails. A pod that asked for its own
identity must never silently get another one.

Order: built-ins are called in the existing provider's order (pod RRSA, provider RRSA,
AccessKey+AssumeRole, nodePublishSecretRef, static AccessKey), then third-party plugins, then the
node's ECS RAM role, which applies on every ECS node and so comes last. A plugin that must win
over the built-ins marks its implementation `tryfirst=True`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

PROJECT = "ack_secrets_provider"
ENTRY_POINT_GROUP = "ack_secrets_provider.credentials"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

if TYPE_CHECKING:
    from ack_secrets_provider.core.plugins.identity import CredentialContext, Identity


@hookspec(firstresult=True)
def ack_resolve_identity(context: CredentialContext) -> Identity | None:
    """Return the identity to fetch this mount's objects with, or None if not applicable.

    `context.request` is the parsed MountRequest (pod info, tokens, nodePublishSecretRef data),
    `context.settings` the provider settings (with the start-up environment snapshot).
    Implementations cache credential providers per identity key so that a stream of mounts by
    the same identity costs one STS call per credential lifetime.
    """


@hookspec(firstresult=True)
def ack_assume_role(
    base: Identity, role_arn: str, context: CredentialContext
) -> Identity | None:
    """Return `base` extended with an AssumeRole into `role_arn` (an object's
    `crossAccountRoleArn`), or None if this plugin does not handle it."""
