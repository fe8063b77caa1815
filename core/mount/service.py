"""One Mount, end to end: parse, resolve identities, fetch concurrently, build the files.

All-or-nothing: if any object fails, the mount fails with no files, and its error names every
object that failed (each one is fetched, so one attempt shows all there is to fix).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from ack_secrets_provider.core.cloud.endpoints import Endpoint, host_allowed
from ack_secrets_provider.core.cloud.sdk_imports import import_sdk
from ack_secrets_provider.core.errors import (
    DeadlineExceeded,
    InternalError,
    InvalidArgument,
    ProviderError,
    combined,
)
from ack_secrets_provider.core.mount.files import OutputFile, build_files
from ack_secrets_provider.core.mount.objects_memo import ObjectsMemo
from ack_secrets_provider.core.mount.spec import MountRequest, ObjectSpec, parse_mount_request
from ack_secrets_provider.core.plugins.backend import FetchContext, SecretValue
from ack_secrets_provider.core.plugins.credentials import CredentialHost, Identity, IdentityKey
from ack_secrets_provider.core.plugins.host import BackendHost
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.resilience.fetcher import Fetcher, FetchUnit
from ack_secrets_provider.core.settings import ProviderSettings

log = logging.getLogger(__name__)

#: used for backends that declare they need no credential (test or local backends)
ANONYMOUS = Identity(key=IdentityKey(mode="anonymous"), credential=None, provider_level=False)


@dataclass(frozen=True)
class MountOutcome:
    request: MountRequest
    files: list[OutputFile]


class MountService:
    """Turns the driver's MountRequest strings into files. Thread-safe; one per process."""

    def __init__(
        self,
        settings: ProviderSettings,
        backends: BackendHost,
        credentials: CredentialHost,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.settings = settings
        self.backends = backends
        self.credentials = credentials
        # without a fetcher of the owner's, the credential host's metrics get the fetch metrics
        self.fetcher = fetcher or Fetcher(settings, metrics=credentials.metrics)
        # Backends are loaded once before the service is built: what parsing needs from them
        # is fixed for the process, so it is not rebuilt on every Mount.
        self._types = backends.object_types()
        # Republishes resend the same `objects` text: its parse is reused (keyed by the text).
        self._objects = ObjectsMemo(self._types, settings.request_limits)
        # Shared by all mounts; each mount bounds its own share with a semaphore.
        self._pool = ThreadPoolExecutor(
            max_workers=max(16, settings.fetch_concurrency * 8), thread_name_prefix="fetch"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def parse(self, attributes: str, secrets: str, permission: str) -> MountRequest:
        return parse_mount_request(
            attributes, secrets, permission,
            default_region=self.settings.region,
            types=self._types,
            limits=self.settings.request_limits,
            objects_parser=self._objects,
        )

    def mount(
        self, attributes: str, secrets: str, permission: str, deadline: Deadline
    ) -> MountOutcome:
        request = self.parse(attributes, secrets, permission)
        for spec in request.objects:
            for warning in spec.warnings:
                log.warning("pod %s: %s", request.pod.describe(), warning)
        if not request.objects:
            return MountOutcome(request, [])
        units = self._plan(request, deadline)
        values = self._run(units, request, deadline)
        return MountOutcome(request, build_files(request, values, self.settings.request_limits,
                                                 self.settings.max_response_bytes))

    # -- planning ---------------------------------------------------------------------------

    def _identities(self, request: MountRequest, deadline: Deadline) -> dict[str | None, Identity]:
        """The base identity (key None) and one per distinct crossAccountRoleArn."""
        needs = [spec for spec in request.objects
                 if self.backends.get(spec.object_type).needs_credentials]
        if not needs:
            return {None: ANONYMOUS}
        # A credential is an SDK client: the first one imports the SDK (once; see the module)
        import_sdk()
        context = self.credentials.context(request, deadline)
        base = self.credentials.resolve(context)
        identities: dict[str | None, Identity] = {None: base}
        for spec in needs:
            role = spec.cross_account_role_arn
            if role and role not in identities:
                identities[role] = self.credentials.assume_role(base, role, context)
        return identities

    def _plan(self, request: MountRequest, deadline: Deadline) -> list[FetchUnit]:
        # Endpoints first: a refused endpoint (e.g. a host outside the allowed domains) fails
        # the mount before any credential is resolved or any STS call is made.
        endpoints = {spec.index: self._endpoint(spec, request.region) for spec in request.objects}
        identities = self._identities(request, deadline)
        groups: dict[tuple[str, str, str, IdentityKey], list[ObjectSpec]] = {}
        contexts: dict[tuple[str, str, str, IdentityKey], FetchContext] = {}
        units: list[FetchUnit] = []
        for spec in request.objects:
            backend = self.backends.get(spec.object_type)
            needs_credentials = backend.needs_credentials
            identity = (identities.get(spec.cross_account_role_arn) or identities[None]
                        if needs_credentials else ANONYMOUS)
            endpoint = endpoints[spec.index]
            context = FetchContext(identity, deadline, endpoint, self.settings,
                                   region=request.region)
            if backend.max_batch > 1 and spec.object_version is None:
                key = (spec.object_type, endpoint.protocol, endpoint.address, identity.key)
                groups.setdefault(key, []).append(spec)
                contexts[key] = context
            else:
                units.append(FetchUnit(backend, (spec,), context))
        for key, specs in groups.items():
            backend = self.backends.get(key[0])
            for start in range(0, len(specs), backend.max_batch):
                units.append(
                    FetchUnit(backend, tuple(specs[start:start + backend.max_batch]), contexts[key])
                )
        return units

    def _endpoint(self, spec: ObjectSpec, region: str | None) -> Endpoint:
        """The object's endpoint; credentials only ever go to an allowed or overridden host.

        Backends refuse a disallowed host with a field-specific message (Backend.
        check_allowed_host); this is the core's guarantee for every backend, including a
        third party's that builds its endpoint another way.
        """
        backend = self.backends.get(spec.object_type)
        endpoint = backend.endpoint(spec, region)
        if (backend.needs_credentials and not endpoint.overridden
                and not host_allowed(endpoint.host, self.settings.allowed_endpoint_suffixes)):
            raise InvalidArgument(
                f"{spec.describe()}: its endpoint host {endpoint.host!r} is not an allowed "
                "endpoint: the provider only sends credentials to hosts under "
                f"{', '.join(self.settings.allowed_endpoint_suffixes)}; fix the object's "
                "endpoint field, or ask the cluster operator to allow its domain "
                "(--allowed-endpoint-suffixes / Helm value allowedEndpointSuffixes)"
            )
        return endpoint

    # -- fetching ---------------------------------------------------------------------------

    def _run(
        self, units: Sequence[FetchUnit], request: MountRequest, deadline: Deadline
    ) -> dict[int, SecretValue]:
        values: dict[int, SecretValue] = {}
        # Fully cached units are answered here, on the caller's thread: no pool hop for the
        # common republish (every value fresh in the cache); only the rest go to the pool.
        misses = []
        for unit in units:
            hits = self.fetcher.cached(unit)
            if hits is None:
                misses.append(unit)
                continue
            for spec, value in zip(unit.specs, hits, strict=True):
                values[spec.index] = value
        if len(misses) == 1:
            values.update(self._fetch_here(misses[0]))
        elif misses:
            values.update(self._fetch_in_pool(misses, request, deadline))
        return values

    def _fetch_here(self, unit: FetchUnit) -> dict[int, SecretValue]:
        """One unit to fetch (a one-object mount, or one batch): this thread fetches it.

        Handing it to the pool would only add a hand-off and two thread wake-ups (the caller
        would wait for it anyway). The fetch stops at the deadline by itself (SDK timeouts,
        retries, rate and concurrency waits and single-flight waits all follow it), as the
        identity resolution just done on this thread does; failures are the pool path's.
        """
        try:
            unit.context.deadline.check(unit.describe())
            got = self.fetcher.fetch(unit)
        except ProviderError:
            raise
        except BaseException as exc:  # a bug in a backend: the pool path's answer
            # (the pool path's futures hold any BaseException, e.g. a plugin's SystemExit: the
            # answer must not depend on the path)
            raise _unexpected(unit, exc) from None
        return {spec.index: value for spec, value in zip(unit.specs, got, strict=True)}

    def _fetch_in_pool(
        self, units: Sequence[FetchUnit], request: MountRequest, deadline: Deadline
    ) -> dict[int, SecretValue]:
        # Every object is fetched even when one fails, so one failed mount names every object
        # to fix (the work is what a successful mount costs, and the deadline still bounds it).
        limit = threading.BoundedSemaphore(max(1, self.settings.fetch_concurrency))
        futures: dict[Future[Sequence[SecretValue]], FetchUnit] = {}

        def run_unit(unit: FetchUnit) -> Sequence[SecretValue]:
            try:
                unit.context.deadline.check(unit.describe())
                # the fetcher checks the backend returned one value per object
                return self.fetcher.fetch(unit)
            finally:
                limit.release()

        for unit in units:
            if not limit.acquire(timeout=deadline.remaining()):
                break
            futures[self._pool.submit(run_unit, unit)] = unit
        done, pending = wait(futures, timeout=deadline.remaining())
        for future in pending:
            future.cancel()
        error = _failures(futures, done)
        if error is not None:
            raise error
        if pending or len(futures) < len(units):
            raise DeadlineExceeded(
                f"the mount of {len(request.objects)} objects did not finish before the caller's "
                "deadline; the upstream service may be slow or throttling (check the provider's "
                "metrics), or reduce the number of objects per SecretProviderClass"
            )
        values: dict[int, SecretValue] = {}
        for future, unit in futures.items():
            for spec, value in zip(unit.specs, future.result(), strict=True):
                values[spec.index] = value
        return values


def _failures(
    futures: dict[Future[Sequence[SecretValue]], FetchUnit],
    done: set[Future[Sequence[SecretValue]]],
) -> ProviderError | None:
    """Every failed unit, in object order, as one error (the first one's code)."""
    failures = []
    for future in done:
        exc = future.exception()
        if exc is None:
            continue
        unit = futures[future]
        if not isinstance(exc, ProviderError):
            exc = _unexpected(unit, exc)
        failures.append((unit.specs[0].index, exc))
    if not failures:
        return None
    failures.sort(key=lambda item: item[0])
    return combined([error for _, error in failures])


def _unexpected(unit: FetchUnit, exc: BaseException) -> InternalError:
    """A fetch failure that is not a ProviderError (a bug): logged with its traceback, answered
    without its text."""
    log.error("unexpected error fetching %s", unit.describe(), exc_info=exc)
    return InternalError(
        f"{unit.describe()}: the provider failed unexpectedly ({type(exc).__name__}); "
        "see the provider's logs"
    )
