"""Values of command-line flags, checked when the command starts (argparse `type=` functions).

Each function parses one kind of value or raises `argparse.ArgumentTypeError` with the form it
expects (files are checked when `serve` starts: `unreadable_file`); argparse adds the flag's
name, so a mistake such as `--region cn_hangzhou` stops
`serve` at start-up with "argument --region: ..." instead of failing every mount later with a
message that blames the SecretProviderClass.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from ack_secrets_provider.core.cloud.endpoints import parse_allowed_suffixes
from ack_secrets_provider.core.durations import parse_duration
from ack_secrets_provider.core.mount.arn import REGION_PATTERN

_HOST = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                   r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\Z")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
#: a path the health server matches exactly (it drops the query): no query, fragment or space
_URL_PATH = re.compile(r"^/[^?#\s]*\Z")
T = TypeVar("T")


#: what the official chart passes when the ACK marketplace did not replace its placeholder with
#: the cluster's region: "not set" (serve then discovers the region, core/cloud/region.py)
REGION_PLACEHOLDER = "__ACK_REGION_ID__"


def region_id(text: str) -> str:
    if text and text != REGION_PLACEHOLDER and not REGION_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a region id; use the form cn-hangzhou or ap-southeast-1")
    return text


def _checked_by(parse: Callable[[str], T], text: str) -> T:
    """`parse(text)`, its ValueError (which says what is wrong and the form) made argparse's."""
    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration(text: str) -> float:
    """A Go duration (`30s`, `1m30s`, `250ms`) or plain seconds, never negative."""
    return _checked_by(parse_duration, text)


def allowed_suffixes(text: str) -> tuple[str, ...]:
    """Comma-separated domains, or * (`core.cloud.endpoints.parse_allowed_suffixes`)."""
    return _checked_by(parse_allowed_suffixes, text)


def positive_duration(text: str) -> float:
    seconds = duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than 0s")
    return seconds


def port(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a TCP port; use a number from 1 to 65535, or 0 to disable")
    return number


def _integer(text: str, minimum: int, meaning: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} is not {meaning}")
    return number


def at_least_one(text: str) -> int:
    return _integer(text, 1, "a whole number of 1 or more")


def zero_or_more(text: str) -> int:
    return _integer(text, 0, "a whole number of 0 or more")


def rate(text: str) -> float:
    """Calls per second: a finite number of 0 (no limit) or more."""
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate; use calls per second such as 10 or 2.5, or 0 for no limit")
    return number


def listen_address(text: str) -> str:
    """An IP address to bind (0.0.0.0 for every interface)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address; use 0.0.0.0 (every interface), 127.0.0.1 or the "
            "pod's IP") from None
    return text


def host_name(text: str) -> str:
    """A host name without scheme or port, such as sts-vpc.cn-hangzhou.aliyuncs.com."""
    if not _HOST.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a host name; write the host alone, such as "
            "sts-vpc.cn-hangzhou.aliyuncs.com (no scheme, port or path)")
    return text


def url_path(text: str) -> str:
    """An HTTP path to serve, such as /healthz: what the kubelet's probe requests."""
    if not _URL_PATH.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an HTTP path; write it with its leading slash and nothing else, "
            "such as /healthz (no scheme, host, query or spaces)")
    return text


def base_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http(s) URL; use the form https://10.0.0.1:6443")
    return text


def namespaces(text: str) -> str:
    """Comma-separated Kubernetes namespace names (empty: none given)."""
    bad = [name.strip() for name in text.split(",")
           if name.strip() and not _NAMESPACE.match(name.strip())]
    if bad:
        raise argparse.ArgumentTypeError(
            f"{', '.join(repr(name) for name in bad)} is not a namespace name (lower-case "
            "letters, digits and '-'); separate namespaces with commas")
    return text


def unreadable_file(flag: str, path: str | None, kind: str = "file") -> str | None:
    """Why the file (or, `kind` "directory", the directory) `flag` names cannot be read, as
    argparse words it (None: it can, or none).

    Checked when `serve` starts rather than when the flags are parsed: parsing stays a pure
    function of the text (the chart's tests parse rendered arguments on another machine).
    """
    if not path:
        return None
    if kind == "directory":
        if not (os.path.isdir(path) and os.access(path, os.R_OK | os.X_OK)):
            return f"argument {flag}: {path!r} is not a readable directory"
    elif not (os.path.isfile(path) and os.access(path, os.R_OK)):
        return f"argument {flag}: {path!r} is not a readable file"
    return None
