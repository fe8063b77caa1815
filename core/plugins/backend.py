"""The backend plugin contract.

A backend is a class registered under the entry-point group `ack_secrets_provider.backends`; the
entry-point name is the SecretProviderClass `objectType` users write. The core instantiates it once
at start-up with the provider settings and then calls:

- `validate(spec)` while parsing (pure: no I/O) to refuse bad fields early;
- `endpoint(spec, region)` to learn where the object lives (part of cache and client keys);
- `fetch(spec, ctx)` for one attempt at one object, or `fetch_batch(specs, ctx)` when the
  backend can fetch several objects of one endpoint in one call (`max_batch > 1`).

What a backend needs from the rest of the provider it declares here, as class attributes, the
same way for the built-ins and a third party's: its own SecretProviderClass object fields
(`object_fields`), its `serve` flags (`rate_limit`, `options`) and whether it is the objectType
of objects that name none (`is_default_type`). The core knows no backend by name.

A backend makes exactly one upstream attempt per call and raises a `ProviderError` subclass on
failure; the core owns retries, backoff, deadlines, concurrency and caching.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar, Literal

from ack_secrets_provider.core.cloud.endpoints import Endpoint, host_allowed
from ack_secrets_provider.core.errors import InvalidArgument
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings

if TYPE_CHECKING:
    from ack_secrets_provider.core.plugins.credentials import Identity

ENTRY_POINT_GROUP = "ack_secrets_provider.backends"


@dataclass(frozen=True)
class RateLimit:
    """A backend's upstream call rate, set by a `serve` flag of its own (calls per second from
    this node; 0 = unlimited). The core applies it to every call of the backend."""

    #: the flag, e.g. `--max-myservice-calls-per-second`
    flag: str
    #: what is limited, for messages, e.g. "MyService calls per second"
    what: str
    #: the flag's default (code that builds ProviderSettings itself gets no limit)
    default: float = 10.0
    help: str = ""


@dataclass(frozen=True)
class Option:
    """A `serve` flag of a backend's own; its value (text, or None when not given) is
    `settings.backend_options[option.dest]`.

    `kind` "file" or "directory": `serve` refuses to start when the value given is not a
    readable file (directory), naming the flag, as it does for its own file flags.
    """

    flag: str
    help: str
    default: str | None = None
    kind: Literal["text", "file", "directory"] = "text"

    @property
    def dest(self) -> str:
        """The settings key: the flag without dashes, `-` as `_` (`--my-ca-file` → my_ca_file)."""
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class SecretValue:
    """The bytes of one object and its upstream version id (never derived from content)."""

    data: bytes = field(repr=False)
    version: str


@dataclass(frozen=True)
class FetchContext:
    """What a backend gets for one call besides the object: who is asking and until when."""

    identity: Identity
    deadline: Deadline
    endpoint: Endpoint
    settings: ProviderSettings
    #: the mount's region (SecretProviderClass `region` or --region); backends use it for what
    #: the endpoint does not carry, e.g. a gateway's default CA chosen by region
    region: str | None = None

    def timeouts_ms(self, *, connect_cap: float = 5.0, read_cap: float = 30.0) -> tuple[int, int]:
        """SDK connect/read timeouts (milliseconds) that fit in the remaining deadline."""
        remaining = self.deadline.remaining()
        connect = max(1, int(min(connect_cap, remaining) * 1000))
        read = max(1, int(min(read_cap, remaining) * 1000))
        return connect, read


class Backend(abc.ABC):
    """Base class of secret backends. Subclasses set `object_type` and `service`."""

    #: the objectType users write (also the entry-point name)
    object_type: ClassVar[str]
    #: the endpoint-override service name (users write `--endpoint-override <service>=URL`)
    service: ClassVar[str]
    #: how many objects `fetch_batch` accepts in one call; 1 = no batching
    max_batch: ClassVar[int] = 1
    #: the upstream API names used as the `api` label of upstream-call metrics
    api: ClassVar[str] = "Fetch"
    batch_api: ClassVar[str] = "FetchBatch"
    #: False for backends that need no cloud credential (the core then resolves none)
    needs_credentials: ClassVar[bool] = True
    #: False for backends whose values must never be reused between mounts (no value cache)
    cacheable: ClassVar[bool] = True
    #: object fields of this backend's own (name → one-line meaning), beside the common ones
    #: (`spec.OBJECT_FIELDS`); the parser puts their values in `ObjectSpec.fields`. A field
    #: another installed backend declares is ignored with a warning on this backend's objects;
    #: a field nobody declares is refused.
    object_fields: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: True: objects without objectType are this backend's (unless --default-object-type says
    #: otherwise; when several installed backends claim it, the provider's own wins)
    is_default_type: ClassVar[bool] = False
    #: the call rate of this backend and its `serve` flag; None = not limited
    rate_limit: ClassVar[RateLimit | None] = None
    #: further `serve` flags of this backend (values in `settings.backend_options`)
    options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    def regional_endpoint(
        self,
        spec: ObjectSpec,
        *,
        explicit: str | None,
        field_name: str,
        region: str | None,
        default_host: str,
    ) -> Endpoint:
        """The endpoint named by an object's endpoint field (`explicit`, the value of its field
        `field_name`), else `default_host` built from `region` (a template with `{region}`),
        after endpoint overrides.

        `region` is the object's own region (an ARN's) or the mount's. Raises InvalidArgument
        naming the object when neither an endpoint nor a region is known.
        """
        if explicit:
            host = explicit.strip().lower()
            self.check_allowed_host(spec, host, field_name,
                                    example=default_host.format(region=region or "cn-hangzhou"))
        elif region:
            host = default_host.format(region=region)
        else:
            raise InvalidArgument(
                f"{spec.describe()}: no region to build the {self.service.upper()} endpoint "
                "from; set the SecretProviderClass parameter region (or the provider's --region "
                f"/ Helm regionId), use an ARN as objectName, or set {field_name}"
            )
        return self.settings.endpoint_overrides.resolve(self.service, host)

    def check_allowed_host(
        self, spec: ObjectSpec, host: str, field_name: str, *, example: str | None = None
    ) -> None:
        """Refuse an endpoint host outside the allowed domains that no override covers.

        Endpoint fields can come from a pod's volumeAttributes; without this check a pod could
        point them at a host it controls and receive the provider's signed requests (AccessKey
        id, STS security token header) or make the node call internal addresses.
        """
        allowed = self.settings.allowed_endpoint_suffixes
        if host_allowed(host, allowed) or self.settings.endpoint_overrides.overrides(
            self.service, host
        ):
            return
        shown = f" (for example {example})" if example else ""
        raise InvalidArgument(
            f"{spec.describe()}: field {field_name} {host!r} is not an allowed endpoint: the "
            f"provider only sends credentials to hosts under {', '.join(allowed)}{shown}; fix "
            "the host, or ask the cluster operator to allow its domain "
            "(--allowed-endpoint-suffixes / Helm value allowedEndpointSuffixes) or to map it "
            "with --endpoint-override"
        )

    def validate(self, spec: ObjectSpec) -> None:  # noqa: B027 - optional hook
        """Refuse fields this backend cannot use (raise InvalidArgument). Must be pure."""

    @abc.abstractmethod
    def endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        """Where `spec` is fetched from, after endpoint overrides (no I/O)."""

    @abc.abstractmethod
    def fetch(self, spec: ObjectSpec, ctx: FetchContext) -> SecretValue:
        """Fetch one object with one upstream attempt; raise a ProviderError on failure."""

    def fetch_batch(
        self, specs: Sequence[ObjectSpec], ctx: FetchContext
    ) -> Sequence[SecretValue]:
        """Fetch several objects of one endpoint and identity; the result is in their order.

        The core calls it with 2 to `max_batch` objects, none pinned to a version
        (objectVersion unset); a single or pinned object goes to `fetch`.
        """
        return [self.fetch(spec, ctx) for spec in specs]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and pools at shutdown."""
