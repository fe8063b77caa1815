"""Glue to Alibaba Cloud and Kubernetes shared by every plugin: SDK clients cached per endpoint
and identity (`clients`), the SDK error mapper (`sdk_errors`), TLS trust for endpoints (`tls`),
endpoint rules and the allow-list (`endpoints`), the SDK's bounded HTTP transport (`transport`)
and answer checks (`answers`), and the one Kubernetes API client (`kube`).
"""
