"""The credential plugin host: the pluggy chain and the provider-identity rule.

The data a credential plugin receives and returns (CredentialContext, Identity, IdentityKey)
lives in identity.py, which the hook specifications use too; it is re-exported here, the
module plugin authors import it from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ack_secrets_provider.core.cloud.kube import KubeClient
from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    PermissionDenied,
    PluginError,
    ProviderError,
)
from ack_secrets_provider.core.mount.spec import MountRequest
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins import hookspecs
from ack_secrets_provider.core.plugins.identity import (
    CredentialContext,
    Identity,
    IdentityCache,
    IdentityKey,
)
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings

log = logging.getLogger(__name__)

__all__ = ["BUILTIN_ORDER", "CredentialContext", "CredentialHost", "Identity", "IdentityCache",
           "IdentityKey", "PluginLoadFailure"]

#: built-in credential plugins, in the order they are tried (the existing provider's order)
BUILTIN_ORDER = (
    "pod-rrsa",
    "provider-rrsa",
    "ak-assume-role",
    "node-publish-secret",
    "static-ak",
    "ecs-ram-role",
    "cross-account",
)


#: built-ins tried after third-party plugins: they apply whenever nothing else does
FALLBACK_PLUGINS = frozenset({"ecs-ram-role"})


@dataclass(frozen=True)
class PluginLoadFailure:
    name: str
    distribution: str | None
    reason: str


@dataclass
class CredentialHost:
    """Loads credential plugins and resolves identities through the first-result chain.

    It owns the identity cache its plugins share (`identities`) and hands them, with `metrics`,
    to every plugin call through the CredentialContext (`context()`). Without an owner's
    `metrics` it records into a registry of its own.
    """

    settings: ProviderSettings
    metrics: ProviderMetrics = field(
        default_factory=lambda: ProviderMetrics(process_collectors=False))
    identities: IdentityCache = field(default_factory=IdentityCache)
    #: the Kubernetes API client plugins read through (None: the one `settings` describe, if any)
    kube: KubeClient | None = None
    manager: pluggy.PluginManager = field(init=False)
    failures: list[PluginLoadFailure] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kube is None:
            self.kube = KubeClient.from_settings(self.settings)
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)

    def load(self, *, autoload_third_party: bool = True, extra: Iterable[object] = ()) -> None:
        """Register plugins from entry points (failure-tolerant) and check hook names.

        Order of calls: the built-ins in BUILTIN_ORDER, then third-party plugins, then the node's
        ECS RAM role last (it applies on every ECS node, so anything after it would never be
        reached). pluggy calls the most recently registered implementation first, so
        registration runs in the reverse of that order.
        """
        from importlib.metadata import entry_points

        found = {ep.name: ep for ep in entry_points(group=hookspecs.ENTRY_POINT_GROUP)}
        builtin_dist = "csi-secrets-store-provider-alibabacloud"

        def dist_name(ep: Any) -> str | None:
            return ep.dist.name if getattr(ep, "dist", None) else None

        third_party = [
            ep for name, ep in sorted(found.items())
            if name not in BUILTIN_ORDER or dist_name(ep) != builtin_dist
        ]
        builtins = [found[name] for name in BUILTIN_ORDER if name in found
                    and dist_name(found[name]) == builtin_dist]
        fallback = [ep for ep in builtins if ep.name in FALLBACK_PLUGINS]
        explicit = [ep for ep in builtins if ep.name not in FALLBACK_PLUGINS]
        ordered = (fallback + (third_party if autoload_third_party else [])
                   + list(reversed(explicit)))
        for plugin in extra:
            self.manager.register(plugin)
        for ep in ordered:
            try:
                plugin = ep.load()
                self.manager.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin is reported, not fatal to the others
                reason = f"{type(exc).__name__}: {exc}"
                self.failures.append(PluginLoadFailure(ep.name, dist_name(ep), reason))
                log.error("credential plugin %r failed to load: %s", ep.name, reason)
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(
                f"a credential plugin implements a hook that does not exist ({exc}); hook names "
                "start with ack_ and are listed in ack_secrets_provider.core.plugins.hookspecs"
            ) from None

    def context(self, request: MountRequest, deadline: Deadline) -> CredentialContext:
        """What the plugins see of one mount."""
        return CredentialContext(request, self.settings, deadline, self.metrics, self.identities,
                                 self.kube)

    def plugin_names(self) -> list[str]:
        """Registered plugins in the order they are tried."""
        impls = self.manager.hook.ack_resolve_identity.get_hookimpls()
        return [impl.plugin_name for impl in reversed(impls)]

    def resolve(self, context: CredentialContext) -> Identity:
        """The base identity of a mount; raises when no plugin applies or one fails."""
        try:
            identity = self.manager.hook.ack_resolve_identity(context=context)
        except ProviderError:
            raise
        except Exception as exc:
            log.exception("credential plugin crashed")
            raise PluginError(
                f"a credential plugin failed unexpectedly ({type(exc).__name__}); see the "
                "provider's logs"
            ) from exc
        if identity is None:
            raise FailedPrecondition(
                "no credential is configured: set usePodServiceAccountToken: \"true\" with a "
                "role annotation, enable RRSA (rrsa.enable), provide ACCESS_KEY_ID / "
                "SECRET_ACCESS_KEY, a nodePublishSecretRef with access_key / access_secret, or "
                "give the node a RAM role"
            )
        self._check_namespace(identity, context)
        return identity

    def assume_role(self, base: Identity, role_arn: str, context: CredentialContext) -> Identity:
        try:
            identity = self.manager.hook.ack_assume_role(
                base=base, role_arn=role_arn, context=context
            )
        except ProviderError:
            raise
        except Exception as exc:
            log.exception("credential plugin crashed in ack_assume_role")
            raise PluginError(
                f"assuming {role_arn} failed unexpectedly ({type(exc).__name__}); see the "
                "provider's logs"
            ) from exc
        if identity is None:
            raise FailedPrecondition(
                f"crossAccountRoleArn {role_arn!r} is set but no installed credential plugin "
                "can assume roles (the built-in cross-account plugin is missing or disabled)"
            )
        return identity

    def _check_namespace(self, identity: Identity, context: CredentialContext) -> None:
        allowed = context.settings.provider_identity_namespaces
        if not identity.provider_level or allowed is None:
            return
        namespace = context.request.pod.namespace
        if namespace is None or namespace not in allowed:
            raise PermissionDenied(
                f"pod {context.request.pod.describe()} may not use the provider's own identity "
                f"({identity.key.mode}): its namespace is not in the provider's allow-list "
                "(--provider-identity-namespaces / Helm value "
                "providerIdentity.allowedNamespaces); use pod-level RRSA "
                "(usePodServiceAccountToken: \"true\") or ask the cluster operator to add the "
                "namespace"
            )
