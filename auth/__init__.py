"""Built-in credential plugins (pluggy, entry-point group `ack_secrets_provider.credentials`).

One module per mode, tried in the existing provider's order
(core.plugins.credentials.BUILTIN_ORDER): pod_rrsa, provider_rrsa, ak_assume_role,
node_publish_secret, static_ak, ecs_ram_role, then cross_account for per-object
`crossAccountRoleArn`. Shared pieces: `_providers` (the identity cache, around the toolkit's
refreshing provider), `_sts` (STS calls), `kube` (ServiceAccount annotations). `emulator` holds
the STS and instance-metadata emulator parts.
"""
