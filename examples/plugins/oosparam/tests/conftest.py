"""Guards for the plugin's own tests, so they are safe when run on their own too.

The Alibaba SDKs read proxies and credentials from the environment: those are removed before
anything imports them, and an audit hook fails any connection that is not to loopback (the
emulator). Run from the provider's repository, its tests/conftest.py adds the same guard.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

for _name in list(os.environ):
    if _name.startswith(("ALIBABA_CLOUD_", "ALICLOUD_")) or _name.lower() in {
        "http_proxy", "https_proxy", "all_proxy", "access_key_id", "secret_access_key",
    }:
        del os.environ[_name]
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
os.environ["NO_PROXY"] = "*"


def _loopback(host: object) -> bool:
    if host is None or host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "socket.connect":
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6) and isinstance(
                address, tuple) and not _loopback(address[0]):
            raise RuntimeError(f"the oosparam tests may only reach loopback, not {address!r}")
    elif event == "socket.getaddrinfo" and not _loopback(args[0]):
        raise RuntimeError(f"the oosparam tests may only resolve loopback, not {args[0]!r}")


sys.addaudithook(_audit)
