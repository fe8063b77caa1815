"""Glue to Alibaba Cloud and Kubernetes shared by every plugin: SDK clients cached per endpoint
and identity (`clients`), the SDK error mapper (`sdk_errors`), TLS trust for endpoints (`tls`),
endpoint rules and the allow-list (`endpoints`), the SDK's bounded HTTP transport (`transport`)
and answer checks (`answers`), the SDK's one-time import without the modules it never runs
(`sdk_imports`), and the one Kubernetes API client (`kube`).
"""
