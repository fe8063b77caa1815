"""Logging set-up: text (logfmt-style) or JSON lines, klog-compatible `-v` levels.

`-v=0..3` → INFO, `-v=4` → DEBUG for our loggers, `-v>=5` → DEBUG everywhere except the loggers
of the SDK and HTTP stacks (Tea/darabonba, alibabacloud_credentials, urllib3, requests,
aiohttp): they log request lines whose query strings carry signatures and security tokens, or
signed headers, so they stay at WARNING whatever the level. The chart's `logVerbosity` is passed
as `-v`, so its existing values keep their meaning (0 = normal, 4+ = debug).

As a second line of defence every formatted line goes through `redact`, which masks bearer
tokens, JWTs and `SecurityToken=`/`Signature=`/`AccessKeySecret=`-style pairs should any code
ever format one into a message or a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
import traceback
from types import TracebackType
from typing import Any, TextIO

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

#: loggers of the SDK and HTTP stacks that may print signed URLs, Authorization headers or tokens
SDK_LOGGERS = (
    "credentials", "darabonba-core", "alibabacloud-tea", "alibabacloud_credentials",
    "urllib3", "requests", "aiohttp", "charset_normalizer",
)

_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i:\b(bearer)\s+[A-Za-z0-9._~+/=-]+)"), r"\1 <redacted>"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "<redacted-jwt>"),
    (re.compile(
        r"(?i:\b(security_?token|signature|access_?key_?secret|access_secret|"
        r"secret_?access_?key|password|oidc_?token)([\"']?\s*[=:]\s*[\"']?)([^&\s\"',;}]+))"),
     r"\1\2<redacted>"),
)


#: words of which every match of a redaction above contains one, in its casefolded text:
#: a line with none of them (nearly every line, e.g. each mount's) is returned as is after a
#: casefold and a few substring tests, ~20x cheaper than scanning it with the patterns.
#: "access", not "secret", for the AccessKey secret spellings: "secret" is in our own logger
#: names. "gnature", not "signature": the patterns' case-insensitive "i" also matches "İ" and
#: "ı", which casefold does not turn into "i" (every letter here casefolds exactly as the
#: patterns match it; a test checks that over all of Unicode).
_TRIGGERS = ("bearer", "eyj", "token", "gnature", "access", "password")


def redact(text: str) -> str:
    """Mask credentials that look like tokens or signed-request parameters in `text`."""
    folded = text.casefold()
    if not any(word in folded for word in _TRIGGERS):
        return text
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def exception_text(exc_info: ExcInfo) -> str:
    """The traceback's frames and the exception type, without the exception's message.

    SDK exception texts can carry signed URLs or tokens; the frames say where it happened, and
    the provider's own errors are reported (with safe messages) by the log line itself.
    """
    etype, _value, tb = exc_info
    # Frames as file/line/function only: source lines could show literals of the failing call.
    frames = "".join(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}\n'
                     for frame in traceback.extract_tb(tb))
    return (f"Traceback (most recent call last):\n{frames}{etype.__module__}.{etype.__name__} "
            "(message withheld: exception texts may carry credentials)")


@functools.lru_cache(maxsize=4)
def _second(epoch_second: int) -> str:
    """The UTC date and time of one second; lines logged in the same second reuse it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_second))


def _timestamp(record: logging.LogRecord) -> str:
    return f"{_second(int(record.created))}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the mount fields if any."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        mount = getattr(record, "mount", None)
        if isinstance(mount, dict):
            for key, value in mount.items():
                payload.setdefault(key, redact(value) if isinstance(value, str) else value)
        if record.exc_info and record.exc_info[0] is not None:
            # The type and frames only: exception texts of SDKs can carry signed URLs.
            payload["exception"] = record.exc_info[0].__name__
            payload["stack"] = redact(exception_text(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


#: characters that make a logfmt value need quoting
_NEEDS_QUOTES = re.compile(r'[ "=\\\n\t]')


def _logfmt(value: object) -> str:
    text = str(value)
    if not text or _NEEDS_QUOTES.search(text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """`<ts> <LEVEL> <logger>: <message> key=value ...` (values quoted when needed)."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        mount = getattr(record, "mount", None)
        if isinstance(mount, dict):
            text += "".join(f" {key}={_logfmt(value)}" for key, value in mount.items())
        if record.exc_info and record.exc_info[0] is not None:
            text += "\n" + exception_text(record.exc_info)
        return redact(text)


def level_for(verbosity: int) -> tuple[int, int]:
    """(root level, provider level) for a klog `-v` verbosity."""
    return (logging.DEBUG if verbosity >= 5 else logging.INFO,
            logging.DEBUG if verbosity >= 4 else logging.INFO)


def configure(verbosity: int, log_format: str = "text",
              stream: TextIO | None = None) -> logging.Handler:
    """Install one handler on the root logger (stderr by default); returns it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root_level, provider_level = level_for(verbosity)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(root_level)
    logging.getLogger("ack_secrets_provider").setLevel(provider_level)
    for name in SDK_LOGGERS:
        sdk = logging.getLogger(name)
        sdk.handlers[:] = []
        sdk.setLevel(logging.WARNING)
        sdk.propagate = True
    return handler
