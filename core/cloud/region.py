"""The provider's default region when `--region` is not given: discovered once at start-up.

The official chart always passes `--region` (its `regionId` default `__ACK_REGION_ID__` is filled
in by the ACK marketplace) and the Go binary falls back to `cn-hangzhou`; the product
documentation says that without a `region` parameter "the region of the current node is
selected". So when neither the SecretProviderClass nor `--region` names one, the provider asks,
in order: the instance metadata service (`/latest/meta-data/region-id`), then the node's
`topology.kubernetes.io/region` label (the node named by `NODE_NAME`, which the chart sets from
the downward API). `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`, the credentials library's switch,
keeps it off the metadata service as it keeps the credential chain off. It logs which source
answered and refuses to start only when none can.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass

from ack_secrets_provider.core.cloud.kube import KubeClient, KubeError
from ack_secrets_provider.core.cloud.metadata import MetadataClient, metadata_base_url
from ack_secrets_provider.core.errors import ProviderError
from ack_secrets_provider.core.mount.arn import REGION_PATTERN
from ack_secrets_provider.core.settings import ProviderSettings

log = logging.getLogger(__name__)

REGION_ID_PATH = "/latest/meta-data/region-id"
NODE_REGION_LABELS = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
#: each source gets this long: start-up must not hang on a node without metadata access
DISCOVERY_TIMEOUT = 2.0


class RegionUnknown(RuntimeError):
    """No source could give the provider a default region (a start-up error)."""


@dataclass(frozen=True)
class DiscoveredRegion:
    region: str
    #: where it came from, for the start-up log line
    source: str


def _from_metadata(settings: ProviderSettings, problems: list[str]) -> str | None:
    if settings.environ.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "").lower() == "true":
        problems.append("the instance metadata service is disabled "
                        "(ALIBABA_CLOUD_ECS_METADATA_DISABLED=true)")
        return None
    base_url = metadata_base_url(settings)
    try:
        client = MetadataClient(base_url, v1_fallback=settings.imds_v1_fallback,
                                ca_file=settings.sts_ca_file)
        answer = client.get(REGION_ID_PATH, DISCOVERY_TIMEOUT).strip()
    except ProviderError as exc:  # the provider's configuration, or a refused answer
        problems.append(f"the instance metadata service at {base_url} gave no region-id: {exc}")
        return None
    except OSError as exc:
        problems.append(f"the instance metadata service at {base_url} gave no region-id "
                        f"({type(exc).__name__})")
        return None
    if not REGION_PATTERN.match(answer):
        problems.append(f"the instance metadata service at {base_url} answered a region-id that "
                        "is not a region id")
        return None
    return answer


def _from_node_label(settings: ProviderSettings, problems: list[str]) -> str | None:
    node = settings.environ.get("NODE_NAME", "").strip()
    if not node:
        problems.append("NODE_NAME is not set, so the node's topology.kubernetes.io/region "
                        "label cannot be read")
        return None
    client = KubeClient.from_settings(settings)
    if client is None:
        problems.append("the Kubernetes API is not known (not in a cluster, no --kube-api-url)")
        return None
    try:
        body = client.request("GET", "/api/v1/nodes/" + urllib.parse.quote(node, safe=""),
                              timeout=DISCOVERY_TIMEOUT)
    except (KubeError, ProviderError) as exc:  # ProviderError: an oversized answer
        problems.append(f"node {node}'s labels could not be read: {exc}")
        return None
    metadata = body.get("metadata") if isinstance(body, dict) else None
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    if not isinstance(labels, dict):
        labels = {}
    for label in NODE_REGION_LABELS:
        value = labels.get(label)
        if isinstance(value, str) and REGION_PATTERN.match(value):
            return value
    problems.append(f"node {node} has no {NODE_REGION_LABELS[0]} label with a region id")
    return None


def discover_region(settings: ProviderSettings) -> DiscoveredRegion:
    """The node's region from metadata, else its label; RegionUnknown naming every attempt."""
    problems: list[str] = []
    region = _from_metadata(settings, problems)
    if region is not None:
        return DiscoveredRegion(region, "the instance metadata service")
    region = _from_node_label(settings, problems)
    if region is not None:
        return DiscoveredRegion(region, f"the label of node {settings.environ['NODE_NAME']}")
    raise RegionUnknown(
        "no default region: --region is not set (Helm value regionId), and "
        + "; ".join(problems)
        + ". Set --region to the cluster's region id (for example cn-hangzhou), or give every "
        "SecretProviderClass a region parameter and still set --region"
    )
