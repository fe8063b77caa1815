"""`SdkBackend`: the scaffolding every backend on an Alibaba Cloud SDK needs, written once.

A backend on a tea-openapi SDK client (KMS, OOS, a third party's service) subclasses it, sets
`hints` (for error messages) and `region_in_host` (to read a region from a regional endpoint
host), implements `new_client(config)` (e.g. `Client(config)` of its SDK), and calls its API in
`fetch` through `self.call(...)`. The base class gives it:

- one SDK client per (endpoint address, protocol, trusted CA files, identity), reused across
  mounts and threads and rebuilt when the identity's credential object changes (`client`);
- private-CA trust: when `ca_files(spec, ctx)` names CA files, the client trusts exactly those
  (intermediates accepted as anchors, see core/cloud/tls.py), and its answers are bounded
  (`--max-upstream-response-bytes`, core/cloud/transport.py);
- one upstream attempt with timeouts that fit in the mount deadline (`runtime`);
- every SDK failure mapped by `map_sdk_error` to the provider's errors, the SDK's text never
  forwarded, and the client dropped when the credential was rejected (`call`);
- the request's region: an ARN's, else the region in the endpoint host, else the mount's
  (`region`).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from ack_secrets_provider.core.cloud.clients import ClientCache, ClientKey, openapi_config
from ack_secrets_provider.core.cloud.sdk_errors import ServiceHints, map_sdk_error
from ack_secrets_provider.core.errors import Unauthenticated
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.plugins.backend import Backend, FetchContext
from ack_secrets_provider.core.settings import ProviderSettings

__all__ = ["SdkBackend"]

T = TypeVar("T")


class SdkBackend(Backend):
    """Base class of backends on an Alibaba Cloud (tea-openapi) SDK client."""

    #: what the error mapper says about this service (names, RAM actions, advice, own codes)
    hints: ClassVar[ServiceHints]
    #: a regional endpoint host with the region as group 1, e.g.
    #: `re.compile(r"^myservice(?:-vpc)?\.([a-z0-9-]+)\.aliyuncs\.com$")`; None: no region in hosts
    region_in_host: ClassVar[re.Pattern[str] | None] = None

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._clients: ClientCache[ClientKey, Any] = ClientCache()

    @abc.abstractmethod
    def new_client(self, config: Any) -> Any:
        """A new SDK client for a tea-openapi `Config` (e.g. `Client(config)` of the SDK)."""

    def ca_files(self, spec: ObjectSpec, ctx: FetchContext) -> tuple[str, ...]:
        """CA files the endpoint of `spec` is trusted with; () = the SDK's default trust."""
        return ()

    def client(self, spec: ObjectSpec, ctx: FetchContext) -> tuple[ClientKey, Any]:
        """The shared SDK client for this object's endpoint, trust and identity, and its key."""
        endpoint, identity = ctx.endpoint, ctx.identity
        key = ClientKey(
            service=self.service, address=endpoint.address, protocol=endpoint.protocol,
            identity=identity.key, ca_files=self.ca_files(spec, ctx),
        )

        def create() -> Any:
            return self.new_client(openapi_config(
                endpoint, identity, ca_files=key.ca_files,
                max_answer_bytes=self.settings.max_upstream_response_bytes,
            ))

        return key, self._clients.get(key, create, owner=identity.credential)

    @staticmethod
    def runtime(ctx: FetchContext) -> Any:
        """darabonba `RuntimeOptions` for one attempt: no SDK retries, deadline-bound timeouts."""
        from darabonba.runtime import RuntimeOptions

        connect_ms, read_ms = ctx.timeouts_ms()
        return RuntimeOptions(autoretry=False, connect_timeout=connect_ms, read_timeout=read_ms)

    def call(
        self, ctx: FetchContext, key: ClientKey, what: str, request: Callable[[], T],
        *, hints: ServiceHints | None = None,
    ) -> T:
        """Run one SDK call; any failure is raised as the provider error `map_sdk_error` gives
        (naming `what`), and a rejected credential drops the client of `key`."""
        try:
            return request()
        except Exception as exc:  # every SDK failure goes through the one mapper
            error = map_sdk_error(exc, what=what, endpoint=ctx.endpoint, hints=hints or self.hints)
            if isinstance(error, Unauthenticated):
                self._clients.invalidate(key)
            raise error from None

    def region(self, ctx: FetchContext, explicit: str | None = None) -> str | None:
        """The region of a request: `explicit` (an ARN's), else the one in the endpoint host
        (`region_in_host`), else the mount's, else the provider's --region."""
        if explicit:
            return explicit
        if self.region_in_host is not None:
            match = self.region_in_host.match(ctx.endpoint.host.lower())
            if match:
                return match.group(1)
        return ctx.region or self.settings.region

    def close(self) -> None:
        self._clients.clear()
