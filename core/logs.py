"""Logging set-up: text or JSON lines, klog-compatible `-v` levels.

`-v=0..3` → INFO, `-v=4` → DEBUG for our loggers, `-v>=5` → DEBUG everywhere except the SDK's
own request loggers, which can print signed headers and tokens and therefore stay at WARNING.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Loggers the Alibaba SDK stack attaches handlers to; they may print Authorization headers.
SDK_LOGGERS = ("credentials", "darabonba-core", "alibabacloud-tea", "alibabacloud_credentials")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        mount = getattr(record, "mount", None)
        if isinstance(mount, dict):
            payload.update(mount)
        if record.exc_info and record.exc_info[0] is not None:
            payload["exception"] = record.exc_info[0].__name__
        return json.dumps(payload, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        mount = getattr(record, "mount", None)
        if isinstance(mount, dict):
            text += " " + " ".join(f"{key}={value}" for key, value in mount.items())
        return text


def configure(verbosity: int, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbosity >= 5 else logging.INFO)
    logging.getLogger("ack_secrets_provider").setLevel(
        logging.DEBUG if verbosity >= 4 else logging.INFO
    )
    for name in SDK_LOGGERS:
        sdk = logging.getLogger(name)
        sdk.handlers[:] = []
        sdk.setLevel(logging.WARNING)
        sdk.propagate = True
