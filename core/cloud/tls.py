"""TLS trust for endpoints with a private CA (dedicated KMS instance gateways).

A dedicated KMS gateway (`{kms-instance-id}.cryptoservice.kms.aliyuncs.com`) presents a chain
issued by "Private KMS <region> Second CA", itself issued by "Private KMS Root CA". What users
have (and what we ship, per region, as package data) is the *intermediate* only. Go accepts an
intermediate as a trust anchor; OpenSSL does so only with `VERIFY_X509_PARTIAL_CHAIN`.

The SDK (darabonba-core) has no setting for verify flags: `Config(ca=...)` only loads a file into
a default context. It keeps one process-wide `requests.Session` per
`<protocol>://<host>:<port>:pool=<size>` in `DaraCore._sessions` and creates it on first use.
`install_sdk_trust` puts our own session under that key first, mounted with an adapter whose
`ssl.SSLContext` trusts only the given CA files, with the partial-chain flag. This is the one
place that relies on that SDK detail; tests/test_tls.py proves it with a root → intermediate →
server chain where only the intermediate is configured. If a future SDK computed the key
differently, its own session (certifi roots, no partial chain) would be used and verification
would fail closed; it would never trust more than it should.
"""

from __future__ import annotations

import ssl
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from requests import Session
from requests.adapters import HTTPAdapter

__all__ = [
    "PrivateCaAdapter",
    "bundled_kms_ca",
    "install_sdk_trust",
    "partial_chain_context",
    "sdk_session_key",
]

_KMS_CA_PACKAGE = "ack_secrets_provider.backends.kms"


def bundled_kms_ca(region: str) -> Path | None:
    """The shipped CA (intermediate) of KMS instances in `region`, or None if we have none."""
    try:
        ref = resources.files(_KMS_CA_PACKAGE).joinpath("ca", f"{region}.pem")
    except ModuleNotFoundError:
        return None
    path = Path(str(ref))
    return path if path.is_file() else None


def partial_chain_context(ca_files: Sequence[str | Path]) -> ssl.SSLContext:
    """A client context trusting exactly `ca_files`, intermediates included as anchors.

    Host names are checked and TLS 1.2 is the minimum. The system roots are *not* loaded: a
    private gateway must be vouched for by its private CA.
    """
    if not ca_files:
        raise ValueError("partial_chain_context needs at least one CA file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    for path in ca_files:
        context.load_verify_locations(cafile=str(path))
    return context


class PrivateCaAdapter(HTTPAdapter):
    """A requests adapter that dials with a given SSLContext (pool size as the SDK's)."""

    def __init__(self, ssl_context: ssl.SSLContext, pool_size: int) -> None:
        self.ssl_context = ssl_context
        super().__init__(pool_connections=10, pool_maxsize=pool_size)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self.ssl_context
        super().init_poolmanager(*args, **kwargs)


def sdk_pool_size(max_idle_conns: int | None) -> int:
    """The pool size darabonba derives from `Config.max_idle_conns` (part of its session key)."""
    from darabonba.core import DaraCore

    return int(DaraCore._resolve_pool_maxsize({"maxIdleConns": max_idle_conns}))


def sdk_session_key(address: str, protocol: str, pool_size: int) -> str:
    """darabonba-core 1.0.x's session key for an endpoint `host:port` (request.port stays 80)."""
    return f"{protocol.lower()}://{address.rstrip('/')}:80:pool={pool_size}"


@dataclass
class _Installed:
    context: ssl.SSLContext
    ca_files: set[str]
    session: Session


_lock = threading.Lock()
#: gateway hosts come from SecretProviderClasses (partly pod-controlled): keep a bounded number
#: of sessions, least recently installed first out
MAX_INSTALLED = 256
_installed: OrderedDict[str, _Installed] = OrderedDict()


def install_sdk_trust(
    address: str, ca_files: Sequence[str | Path], *, max_idle_conns: int | None
) -> None:
    """Make the SDK's HTTPS calls to `address` trust exactly `ca_files` (partial chains allowed).

    Idempotent. If the same address is later installed with other CA files (two regions' CAs for
    one overridden address), they are added to the same context: trust is the union.
    """
    from darabonba.core import DaraCore

    pool_size = sdk_pool_size(max_idle_conns)
    key = sdk_session_key(address, "https", pool_size)
    wanted = {str(Path(p)) for p in ca_files}
    with _lock:
        entry = _installed.get(key)
        if entry is None:
            context = partial_chain_context(sorted(wanted))
            session = Session()
            session.trust_env = False  # no proxy or netrc surprises for a private gateway
            session.mount("https://", PrivateCaAdapter(context, pool_size))
            entry = _installed[key] = _Installed(context, set(wanted), session)
            while len(_installed) > MAX_INSTALLED:
                old_key, old = _installed.popitem(last=False)
                if DaraCore._sessions.get(old_key) is old.session:
                    del DaraCore._sessions[old_key]
                old.session.close()
        else:
            _installed.move_to_end(key)
            for path in sorted(wanted - entry.ca_files):
                entry.context.load_verify_locations(cafile=path)
                entry.ca_files.add(path)
        # (Re)assert ours, also over a session the SDK may have created on an earlier call.
        DaraCore._sessions[key] = entry.session
