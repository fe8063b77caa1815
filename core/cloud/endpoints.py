"""Endpoints: the form users may write, and the one explicit override map.

Every network address the provider dials comes from `EndpointOverrides.resolve`. Without an
override, an endpoint is the real Alibaba Cloud host over HTTPS. An override maps a whole service
(`kms=http://127.0.0.1:8080`) or a single host (`kms.cn-hangzhou.aliyuncs.com=https://...`) to a
base URL: that is how tests, demos and air-gapped proxies point the provider elsewhere, and the
only way. Overrides come from `--endpoint-override` (repeatable) or the environment variable
`ACK_SECRETS_PROVIDER_ENDPOINT_OVERRIDES` (comma-separated), and are logged at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from ack_secrets_provider.core.errors import InvalidArgument

ENV_OVERRIDES = "ACK_SECRETS_PROVIDER_ENDPOINT_OVERRIDES"
#: where override entries come from, as errors name it
FLAG_SOURCE = "argument --endpoint-override"
ENV_SOURCE = f"environment variable {ENV_OVERRIDES}"
#: services the credential plugins call (the backends bring theirs: `Backend.service`)
CREDENTIAL_SERVICES = ("sts", "metadata")
#: domains an endpoint host written in a SecretProviderClass (or a pod's volumeAttributes) may
#: name by default: Alibaba Cloud's API domain, which also holds the dedicated KMS gateways
#: (`<kms-instance-id>.cryptoservice.kms.aliyuncs.com`)
DEFAULT_ALLOWED_ENDPOINT_SUFFIXES = ("aliyuncs.com",)
#: the `--allowed-endpoint-suffixes` entry that allows any host (explicit opt-out)
ANY_HOST = "*"

_HOST = re.compile(
    r"(?=[^:]{1,253}(?::|\Z))[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::([0-9]{1,5}))?"
)
_PLACEHOLDER = re.compile(r"\{[^}]*\}|<[^>]*>")


@dataclass(frozen=True)
class Endpoint:
    """Where one call really goes.

    `host` is the logical endpoint (what the user wrote or the default rule built); `address`
    (`host:port`), `protocol` and `ca_file` say how it is dialled after overrides.
    """

    service: str
    host: str
    address: str
    protocol: str = "https"
    overridden: bool = False

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.address}"

    def describe(self) -> str:
        return self.host if not self.overridden else f"{self.host} (overridden to {self.url})"


def check_endpoint_host(host: str, *, where: str, field_name: str, example: str) -> None:
    """Refuse an endpoint that is not a bare host name, before any network call.

    Catches what users copy from documentation: placeholders (`{region}`, `{kms-instance-id}`),
    a scheme (`https://...`), a path or spaces. The message shows the corrected form.
    """
    text = host.strip()
    if text != host:
        raise InvalidArgument(
            f"{where}: field {field_name} {host!r} has leading or trailing spaces; write "
            f"{text!r}"
        )
    if _PLACEHOLDER.search(text):
        raise InvalidArgument(
            f"{where}: field {field_name} {host!r} still contains a documentation placeholder "
            f"({', '.join(_PLACEHOLDER.findall(text))}); replace it with the real value, for "
            f"example {example!r}"
        )
    if "://" in text:
        # nothing left after the scheme (`https://`): the example is the host to write
        bare = (urlsplit(text).netloc or text.split("://", 1)[1]).rstrip("/")
        raise InvalidArgument(
            f"{where}: field {field_name} {host!r} must be a host name without a scheme; "
            f"write {bare or example!r}"
        )
    if "/" in text:
        raise InvalidArgument(
            f"{where}: field {field_name} {host!r} must be a host name without a path; "
            f"write {text.split('/', 1)[0] or example!r}"
        )
    match = _HOST.fullmatch(text)
    if not match:
        raise InvalidArgument(
            f"{where}: field {field_name} {host!r} is not a valid host name; "
            f"expected something like {example!r}"
        )
    if match.group(1) is not None and not 0 < int(match.group(1)) < 65536:
        raise InvalidArgument(
            f"{where}: field {field_name} {host!r} has port {match.group(1)}, which is not "
            f"between 1 and 65535; expected something like {example!r}"
        )


def parse_allowed_suffixes(text: str) -> tuple[str, ...]:
    """`--allowed-endpoint-suffixes`: comma-separated domains (or `*`); ValueError with the fix.

    A domain allows itself and every host below it (`aliyuncs.com` allows
    `kms.cn-hangzhou.aliyuncs.com`, never `evilaliyuncs.com`); an IP address allows itself.
    """
    suffixes = []
    for entry in (part.strip().lower().lstrip(".") for part in text.split(",")):
        if not entry:
            continue
        if entry != ANY_HOST and (":" in entry or not _HOST.fullmatch(entry)):
            raise ValueError(
                f"allowed endpoint suffix {entry!r} must be a domain such as aliyuncs.com or "
                "internal.example.com (no scheme, port or wildcard), or * to allow any host"
            )
        suffixes.append(entry)
    if not suffixes:
        raise ValueError(
            "no domain given; give at least one (default aliyuncs.com), or * to allow any host"
        )
    return tuple(suffixes)


def host_allowed(host: str, suffixes: Iterable[str]) -> bool:
    """True when `host` (optionally `host:port`) is one of `suffixes` or below one of them."""
    name = host.lower().rsplit(":", 1)[0] if host.count(":") == 1 else host.lower()
    for suffix in suffixes:
        if suffix == ANY_HOST or name == suffix or name.endswith("." + suffix):
            return True
    return False


@dataclass(frozen=True)
class EndpointOverrides:
    """The explicit map from a service or a host to a base URL (`http(s)://host:port`)."""

    by_service: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    by_host: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def parse(
        cls, entries: Iterable[str], services: Collection[str], *, source: str = FLAG_SOURCE,
    ) -> EndpointOverrides:
        """Parse `service=URL` or `host=URL` entries; raise ValueError with the fix.

        `services` are the service names an entry may use: the installed backends' and the
        credential plugins' (`plugins.host.endpoint_services`). Another name is refused, naming
        `source` (where the entries come from), the name and the services there are.
        """
        known = sorted(services) or ["<service>"]

        def refused(message: str) -> ValueError:
            return ValueError(f"{source}: endpoint override {message}")

        by_service: dict[str, str] = {}
        by_host: dict[str, str] = {}
        for raw in entries:
            for entry in (part.strip() for part in raw.split(",")):
                if not entry:
                    continue
                key, sep, url = entry.partition("=")
                key, url = key.strip(), url.strip()
                try:
                    parts = urlsplit(url)
                    port_ok = parts.port is None or parts.port > 0
                except ValueError:  # e.g. "http://[::1" or a port above 65535
                    parts, port_ok = urlsplit(""), False
                if (
                    not sep or not key or parts.scheme not in ("http", "https")
                    or not parts.hostname or not port_ok
                ):
                    shown = entry if "@" not in entry else f"{key}=<URL with user info>"
                    raise refused(
                        f"{shown!r} must look like {known[0]}=http://127.0.0.1:8080 or "
                        "<endpoint-host>=https://proxy.internal:8443 (service is one "
                        f"of {', '.join(known)}, or a full endpoint host)"
                    )
                if parts.username is not None or parts.password is not None:
                    # describe() logs every override at start-up: no credentials in URLs
                    raise refused(
                        f"for {key!r} must not contain user:password@; credentials come from "
                        "the credential chain"
                    )
                if parts.path.strip("/") or parts.query or parts.fragment:
                    raise refused(
                        f"{entry!r} must be a base URL without a path or query; write "
                        f"{key}={parts.scheme}://{parts.netloc}"
                    )
                base = f"{parts.scheme}://{parts.netloc}"
                if "." in key:
                    by_host[key.lower()] = base
                elif key in services:
                    by_service[key] = base
                else:
                    raise refused(
                        f"{entry!r}: {key!r} is neither a service ({', '.join(known)}) nor "
                        "an endpoint host name (a host has dots)"
                    )
        return cls(MappingProxyType(by_service), MappingProxyType(by_host))

    @classmethod
    def from_sources(
        cls, flags: Iterable[str], environ: Mapping[str, str], services: Collection[str],
    ) -> EndpointOverrides:
        """The environment variable's entries, then the flags', each checked on its own so a
        mistake names its source; a flag wins over the variable for the same key."""
        env = cls.parse([environ.get(ENV_OVERRIDES, "")], services, source=ENV_SOURCE)
        flag = cls.parse(flags, services)
        return cls(MappingProxyType({**env.by_service, **flag.by_service}),
                   MappingProxyType({**env.by_host, **flag.by_host}))

    def __bool__(self) -> bool:
        return bool(self.by_service or self.by_host)

    def resolve(self, service: str, host: str) -> Endpoint:
        """Where a call to `host` of `service` goes. Host overrides win over service ones."""
        base = self.by_host.get(host.lower()) or self.by_service.get(service)
        if base is None:
            return Endpoint(service=service, host=host, address=host, protocol="https")
        parts = urlsplit(base)
        return Endpoint(
            service=service, host=host, address=parts.netloc, protocol=parts.scheme,
            overridden=True,
        )

    def overrides(self, service: str, host: str) -> bool:
        """True when calls to `host` of `service` are sent to an operator-given base URL."""
        return host.lower() in self.by_host or service in self.by_service

    def describe(self) -> list[str]:
        """Lines for the start-up log."""
        return [f"{key} -> {url}" for key, url in {**self.by_service, **self.by_host}.items()]
