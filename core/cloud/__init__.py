"""Glue to Alibaba Cloud and Kubernetes shared by every plugin: SDK clients cached per endpoint
and identity (`clients`), the SDK error mapper (`sdk_errors`), TLS trust for endpoints (`tls`),
endpoint rules and the allow-list (`endpoints`) and a small Kubernetes API client (`kube`).
"""
