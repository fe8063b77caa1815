"""Provider-wide settings, built once at start-up from flags and the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ack_secrets_provider.core.cloud.endpoints import (
    DEFAULT_ALLOWED_ENDPOINT_SUFFIXES,
    EndpointOverrides,
)
from ack_secrets_provider.core.mount.limits import RequestLimits


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff for retryable upstream errors (throttling, 5xx, network)."""

    #: 8 attempts: at 30% throttling a call still fails only 0.3**8 = 0.007% of the time; the
    #: deadline and the budget (not this number) bound the load during an outage
    max_attempts: int = 8
    base_delay: float = 0.1
    max_delay: float = 5.0
    #: retry tokens: each retry spends one, each success refunds `refund`; shared per endpoint.
    #: A refund of 0.5 pays for retries on up to half of the successful calls on average: 25%
    #: throttling (~0.33) is sustained, 30% (~0.43) empties the bucket in runs of throttles now
    #: and then (docs/rotation-and-caching.md); with no successes (an outage) only the 20 tokens
    #: are ever spent
    budget_tokens: float = 20.0
    budget_refund: float = 0.5


@dataclass(frozen=True)
class ProviderSettings:
    """Everything plugins and the core need to know about this provider process."""

    #: default region (`--region`), used when a SecretProviderClass names none
    region: str | None = None
    endpoint_overrides: EndpointOverrides = field(default_factory=EndpointOverrides)
    #: domains an object's endpoint field (a backend's field: partly pod-controlled) may
    #: name; other hosts are refused unless an endpoint override covers them, so a pod cannot
    #: make the provider send its signed, credential-bearing requests to a host of its choosing
    #: (`--allowed-endpoint-suffixes`; "*" allows any host)
    allowed_endpoint_suffixes: tuple[str, ...] = DEFAULT_ALLOWED_ENDPOINT_SUFFIXES
    #: snapshot of the process environment taken at start-up; plugins read this, never os.environ
    environ: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    #: the values of the backends' own `serve` flags (`Backend.options`), by `Option.dest`;
    #: a flag that was not given is absent or None
    backend_options: Mapping[str, str | None] = field(
        default_factory=lambda: MappingProxyType({})
    )
    #: objectType of objects that name none (`--default-object-type`); None = the installed
    #: backend that claims it (`Backend.is_default_type`)
    default_object_type: str | None = None
    #: namespaces allowed to use provider-level identities (modes 2-6); None = every namespace
    provider_identity_namespaces: frozenset[str] | None = None
    #: STS endpoint host (regional or VPC); None = sts-vpc.<region>.aliyuncs.com when a region is
    #: known, else sts.aliyuncs.com
    sts_endpoint: str | None = None
    #: allow the IMDSv1 fallback when the metadata service refuses an IMDSv2 token
    imds_v1_fallback: bool = True
    #: projected ServiceAccount token of the provider itself (provider RRSA)
    rrsa_token_file: str = "/var/run/secrets/tokens/csi-secrets-store-provider-alibabacloud"
    #: CA bundle trusted for STS (and an https metadata override) instead of the SDK's bundled
    #: roots; tests point it at the emulator's CA, air-gapped proxies at their own
    sts_ca_file: str | None = None
    #: Kubernetes API base URL for ServiceAccount annotations (pod RRSA); None = in-cluster
    #: (https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT from `environ`)
    kube_api_url: str | None = None
    #: bearer token and CA of the provider's own ServiceAccount for the Kubernetes API
    kube_token_file: str | None = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    kube_ca_file: str | None = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    #: seconds a ServiceAccount's role annotation is cached (a rollout of 100 pods: one API call)
    serviceaccount_cache_ttl: float = 30.0
    #: value cache: seconds a fetched value stays fresh (0 disables the cache). Off for code that
    #: builds settings itself (tests, the demo); `serve` and the chart default to 60 s (see
    #: docs/rotation-and-caching.md)
    cache_ttl: float = 0.0
    #: seconds a value fetched with a pinned objectVersion stays fresh
    cache_pinned_ttl: float = 3600.0
    cache_max_entries: int = 10_000
    cache_max_bytes: int = 64 * 1024 * 1024
    #: objects of one mount fetched at once (10: a SecretProviderClass of up to 10 objects is
    #: fetched in one wave)
    fetch_concurrency: int = 10
    #: upstream calls in flight per endpoint (0 = unlimited)
    endpoint_concurrency: int = 32
    #: upstream calls per second per objectType, from each backend's `rate_limit` flag (the
    #: existing --max-concurrent-*-secret-pulls); absent or 0 = unlimited
    rate_limits: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: most bytes of one upstream answer (KMS, OOS, STS), refused while reading beyond it
    #: (`--max-upstream-response-bytes`). A KMS secret value is at most 30,720 bytes and an OOS
    #: secret parameter's at most 4,096 characters (API references); JSON escaping grows text up
    #: to 6x (\uXXXX) and a GetSecretParameters answer holds up to 10 values: 1 MiB leaves
    #: several times the largest real answer
    max_upstream_response_bytes: int = 1024 * 1024
    #: largest Mount response in bytes; must not exceed the driver's --max-call-recv-msg-size
    #: (default 4 MiB, the driver's default): the driver refuses a larger answer after we built
    #: it, so the provider refuses first with an explanation (`--max-call-recv-msg-size`)
    max_response_bytes: int = 4 * 1024 * 1024
    #: seconds a Mount may run when the caller gave no deadline (kubelet bounds CSI calls at ~2 m)
    default_mount_timeout: float = 100.0
    #: bounds on what one Mount request may ask for (`--max-objects` ...; docs/security.md)
    request_limits: RequestLimits = field(default_factory=RequestLimits)
    #: Mounts served at once; one more is refused at once with UNAVAILABLE (the driver retries)
    max_concurrent_mounts: int = 16
    #: gRPC server: seconds between keepalive pings on a connection, seconds to wait for their
    #: answer before closing it, and seconds a connection may stay without a call
    grpc_keepalive_time: float = 30.0
    grpc_keepalive_timeout: float = 10.0
    grpc_max_connection_idle: float = 600.0
