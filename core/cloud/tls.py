"""TLS trust for endpoints with a private CA (such as a service's dedicated instance gateways).

A backend decides which CA files an endpoint is trusted with (its own flags, CAs it ships as
package data); this module makes the SDK trust exactly those. Private gateways often present a
chain whose CA users have as an *intermediate* only. Go accepts an intermediate as a trust
anchor; OpenSSL does so only with `VERIFY_X509_PARTIAL_CHAIN`.

A client given CA files (`Config(ca=transport.ca_option(files))`) trusts exactly those, with the
partial-chain flag: core/cloud/transport.py builds that context for every SDK call and keeps
requests from adding its default bundle to it. tests/test_tls.py proves it with a root →
intermediate → server chain where only the intermediate is configured, and refuses a server whose
CA is in the process's default trust but not configured.

A CA file that cannot be loaded (missing, unreadable, no PEM certificate) is `CaBundleError`, a
FAILED_PRECONDITION naming the file: the SDK error mapper adds the service's CA setting
(`ServiceHints.tls_advice`). Without it the SDK reported a connection failure, retried forever.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from ack_secrets_provider.core.errors import FailedPrecondition

__all__ = ["CaBundleError", "ca_load_problem", "partial_chain_context"]


class CaBundleError(FailedPrecondition):
    """A CA file configured for an endpoint cannot be loaded (nothing was sent)."""


def ca_load_problem(exc: OSError) -> str:
    """Why a CA file could not be loaded: OpenSSL's reason (NO_CERTIFICATE_OR_CRL_FOUND: no PEM
    certificate in it) or the system's (No such file or directory, Permission denied)."""
    reason = getattr(exc, "reason", None)
    return str(reason or exc.strerror or type(exc).__name__)


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
        try:
            context.load_verify_locations(cafile=str(path))
        except OSError as exc:  # missing, unreadable, or no PEM certificate (ssl.SSLError)
            raise CaBundleError(
                f"the CA file {path} trusted for this endpoint cannot be loaded "
                f"({ca_load_problem(exc)})"
            ) from None
    return context
