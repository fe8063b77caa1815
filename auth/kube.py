"""Reads a ServiceAccount's role annotation through the provider's Kubernetes API client.

Pod-level RRSA needs `ack.alibabacloud.com/role-arn` from the pod's ServiceAccount. The client
(core/cloud/kube.py, `context.kube`) caches reads for `settings.serviceaccount_cache_ttl` seconds
and shares concurrent reads, so a rollout of 100 pods is one API call. Only
`GET /api/v1/namespaces/<ns>/serviceaccounts/<name>` is used (the chart's ClusterRole grants
`get` on `serviceaccounts`). This module turns the answer, or the failure, into the role or a
clear error.
"""

from __future__ import annotations

import urllib.parse

from ack_secrets_provider.core.cloud.kube import KubeCaError, KubeClient, KubeError, KubeTokenError
from ack_secrets_provider.core.errors import (
    FailedPrecondition,
    PermissionDenied,
    ProviderError,
    Unavailable,
)
from ack_secrets_provider.core.resilience.deadline import Deadline

ROLE_ANNOTATION = "ack.alibabacloud.com/role-arn"


def role_arn(kube: KubeClient | None, namespace: str, name: str, deadline: Deadline) -> str | None:
    """The ServiceAccount's role annotation, or None when it has none."""
    what = f"serviceaccount {namespace}/{name}"
    if kube is None:
        raise FailedPrecondition(
            "pod-level RRSA reads the ServiceAccount's role annotation from the Kubernetes "
            "API, but the provider does not run in a cluster (KUBERNETES_SERVICE_HOST is "
            "unset) and no --kube-api-url is given"
        )
    path = "/api/v1/namespaces/{}/serviceaccounts/{}".format(
        urllib.parse.quote(namespace, safe=""), urllib.parse.quote(name, safe="")
    )
    try:
        body = kube.get(path, deadline, f"reading {what}")
    except KubeError as exc:
        raise _error(exc, what, kube) from None
    metadata = body.get("metadata") if isinstance(body, dict) else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    role = annotations.get(ROLE_ANNOTATION) if isinstance(annotations, dict) else None
    return role.strip() if isinstance(role, str) and role.strip() else None


def _error(exc: KubeError, what: str, kube: KubeClient) -> ProviderError:
    if isinstance(exc, KubeTokenError):
        return FailedPrecondition(
            f"reading {what}: {exc}; its ServiceAccount needs get on serviceaccounts "
            "(rbac.install)"
        )
    if isinstance(exc, KubeCaError):
        return FailedPrecondition(f"reading {what}: {exc}")
    if exc.status == 404:
        return FailedPrecondition(
            f"{what} does not exist in the Kubernetes API; pod-level RRSA needs the pod's "
            f"ServiceAccount with the annotation {ROLE_ANNOTATION}"
        )
    if exc.status in (401, 403):
        return PermissionDenied(
            f"reading {what}: the Kubernetes API refused the provider (HTTP {exc.status}); "
            "its ClusterRole needs get on serviceaccounts (Helm value rbac.install=true)"
        )
    if exc.status is not None:
        return Unavailable(
            f"reading {what}: the Kubernetes API answered HTTP {exc.status}; try again later")
    return Unavailable(
        f"reading {what}: the Kubernetes API at {kube.base_url} could not be reached; "
        "try again later"
    )
