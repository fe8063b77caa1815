"""Logs: one line per mount with the identifying fields, text or JSON, never a secret or token.

Mounts go through the real socket (test backend `testmem`, whose values are `value-of-<name>`)
with a fake service-account token and nodePublishSecret in the request; the captured output at
the most verbose level must contain none of them. `testmem` needs no credential, so these never
reach a credential plugin here: tests/test_auth_e2e.py mounts with real credentials (a pod token
to STS, the temporary credential it issues, a nodePublishSecretRef AccessKey) at that level.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ack_test_backend
import grpc
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ack_secrets_provider.core.observability.logs import (
    _TRIGGERS,
    SDK_LOGGERS,
    configure,
    redact,
)
from ack_secrets_provider.core.server.driver_client import (
    PodRef,
    driver_attributes,
    running_provider,
)
from ack_secrets_provider.core.settings import ProviderSettings

FAKE_JWT = ("eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6"
            "ZGVmYXVsdDphcHAifQ.c2lnbmF0dXJlLW9mLXRoZS1mYWtlLXRva2Vu")
FAKE_AK_SECRET = "fakeAccessKeySecretValue0123456789"
NAMES = ("db/password", "api-key", "tls-cert")
SECRETS = [f"value-of-{name}" for name in NAMES] + [
    FAKE_JWT, FAKE_JWT.split(".")[1], FAKE_JWT.split(".")[2], FAKE_AK_SECRET,
    "s3cr3t", "secret-material-must-not-leak",
]
POD = PodRef(name="web-7d9f", namespace="shop")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    names = ("ack_secrets_provider", *SDK_LOGGERS)
    saved = (root.handlers[:], root.level,
             {name: (logging.getLogger(name).level, logging.getLogger(name).handlers[:],
                     logging.getLogger(name).propagate) for name in names})
    try:
        yield
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, (level, handlers, propagate) in saved[2].items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate


def run_mounts(tmp_path: Path) -> None:
    ack_test_backend.reset()
    objects = "".join(f"- {{objectName: {name}, objectType: testmem}}\n" for name in NAMES)
    objects += ("- objectName: json-config\n  objectType: testmem\n  jmesPath:\n"
                "    - {path: password, objectAlias: pw}\n")
    secrets = json.dumps({"access_key": "LTAIfakeid", "access_secret": FAKE_AK_SECRET})
    attributes = driver_attributes({"objects": objects}, pod=POD,
                                   tokens={"sts.aliyuncs.com": FAKE_JWT})
    with running_provider(ProviderSettings(), tmp_path) as provider:
        response = provider.mount(attributes, secrets=secrets)
        assert {f.contents for f in response.files} >= {s.encode() for s in SECRETS[:3]}
        for failing in ("missing-one", "crash-one"):
            bad = driver_attributes(
                {"objects": f"- {{objectName: {failing}, objectType: testmem}}\n"}, pod=POD,
                tokens={"sts.aliyuncs.com": FAKE_JWT})
            with pytest.raises(grpc.RpcError):
                provider.mount(bad, secrets=secrets)
    # Whatever an SDK logger would print at debug level (signed URLs) stays muted.
    logging.getLogger("urllib3.connectionpool").debug(
        "GET /?SecurityToken=%s&Signature=abc HTTP/1.1", FAKE_JWT)
    logging.getLogger("darabonba-core").debug("Authorization: Bearer %s", FAKE_JWT)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_most_verbose_logs_hold_no_secret_value_or_token(
    tmp_path: Path, log_format: str, restore_logging: None
) -> None:
    stream = io.StringIO()
    configure(10, log_format, stream)
    run_mounts(tmp_path)
    output = stream.getvalue()
    assert "mount succeeded" in output and "mount failed" in output
    assert "mounted versions" in output  # the debug level is really on
    for secret in SECRETS:
        assert secret not in output, f"{secret!r} leaked into the {log_format} logs"


def test_json_mount_line_has_the_identifying_fields(
    tmp_path: Path, restore_logging: None
) -> None:
    stream = io.StringIO()
    configure(0, "json", stream)
    run_mounts(tmp_path)
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    ok = [line for line in lines if line["msg"] == "mount succeeded"]
    assert len(ok) == 1
    line = ok[0]
    assert {k: line[k] for k in ("pod", "namespace", "spc", "objects", "files", "result")} == {
        "pod": POD.name, "namespace": POD.namespace, "spc": "app-secrets", "objects": 4,
        "files": 5, "result": "OK",
    }
    assert isinstance(line["duration_ms"], float) and line["level"] == "info"
    # operations.md's example line: a UTC timestamp to the millisecond, the logger's name
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    assert line["logger"] == "ack_secrets_provider.mount"
    failed = [line for line in lines if line["msg"].startswith("mount failed")]
    assert [f["result"] for f in failed] == ["NOT_FOUND", "INTERNAL"]
    assert all(f["pod"] == POD.name and "duration_ms" in f for f in failed)
    assert not any(line["level"] == "debug" for line in lines)  # -v=0: no debug lines
    crashed = [line for line in lines if line.get("exception") == "RuntimeError"]
    assert crashed and "message withheld" in crashed[0]["stack"]


def test_a_successful_mount_decodes_its_attributes_once(
    tmp_path: Path, restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mount line takes the pod from the request the mount service parsed: the observer
    does not decode the attributes JSON a second time (a failed mount still does)."""
    configure(0, "text", io.StringIO())
    attributes = driver_attributes(
        {"objects": "- {objectName: api-key, objectType: testmem}\n"}, pod=POD)
    decoded: list[str] = []
    loads = json.loads

    def counting(text: str, *args: Any, **kwargs: Any) -> Any:
        if text == attributes:
            decoded.append(text)
        return loads(text, *args, **kwargs)

    ack_test_backend.reset()
    with running_provider(ProviderSettings(), tmp_path) as provider:
        monkeypatch.setattr(json, "loads", counting)
        provider.mount(attributes, secrets=json.dumps(
            {"access_key": "LTAIfakeid", "access_secret": FAKE_AK_SECRET}))
        monkeypatch.undo()
    assert len(decoded) == 1


def test_text_mount_line_is_logfmt(tmp_path: Path, restore_logging: None) -> None:
    stream = io.StringIO()
    configure(4, "text", stream)
    run_mounts(tmp_path)
    line = next(li for li in stream.getvalue().splitlines() if "mount succeeded" in li)
    assert " INFO ack_secrets_provider.mount: mount succeeded " in line
    for field in (f"pod={POD.name}", f"namespace={POD.namespace}", "spc=app-secrets",
                  "objects=4", "files=5", "result=OK", "duration_ms="):
        assert field in line
    assert "DEBUG ack_secrets_provider.mount: mounted versions" in stream.getvalue()


#: the redactions as first written (before the one-scan fast path): redact must mask the same
_REFERENCE = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 <redacted>"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "<redacted-jwt>"),
    (re.compile(
        r"(?i)\b(security_?token|signature|access_?key_?secret|access_secret|"
        r"secret_?access_?key|password|oidc_?token)([\"']?\s*[=:]\s*[\"']?)([^&\s\"',;}]+)"),
     r"\1\2<redacted>"),
)
_PIECES = st.sampled_from([
    "Bearer ", "bearer\t", "eyJ", "abcd", ".", "SecurityToken", "security_token", "Signature",
    "AccessKeySecret", "access_secret", "secret_access_key", "password", "oidcToken", "=", ":",
    "'", '"', " ", "&", ",", "x", "7", "-", "_", "ack_secrets_provider.mount", "db-secrets",
    # characters the patterns match case-insensitively to an ASCII letter
    "\u017f", "\u212a", "\u0130", "\u0131", "acce\u017fs_\u017fecret", "S\u0131gnature",
])


@hsettings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join) | st.text(max_size=60))
def test_redact_masks_exactly_what_every_redaction_would(text: str) -> None:
    expected = text
    for pattern, replacement in _REFERENCE:
        expected = pattern.sub(replacement, expected)
    assert redact(text) == expected


def test_redact_skips_only_lines_no_redaction_can_match() -> None:
    """redact returns a line as is when its casefolded text has none of the trigger words; safe
    only if every character a pattern matches case-insensitively to a trigger's letter casefolds
    to that letter (Unicode has a few, such as the long s and the Kelvin sign)."""
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    for letter in sorted(set("".join(_TRIGGERS))):
        for match in re.finditer(re.escape(letter), everything, re.IGNORECASE):
            assert match.group().casefold() == letter, (letter, hex(ord(match.group())))
    # each trigger word is in every match of its patterns, however the match is spelt
    assert redact("X-Acs-\u017fignature: abc") == "X-Acs-\u017fignature: <redacted>"
    assert redact("ACCESS_KEY_SECRET=abc") == "ACCESS_KEY_SECRET=<redacted>"


def test_redact_masks_tokens_and_signed_parameters() -> None:
    text = redact(f"GET /?AccessKeyId=LTAI&SecurityToken=tok123&Signature=sig456 "
                  f"Authorization: Bearer {FAKE_JWT} access_key_secret='{FAKE_AK_SECRET}' "
                  f"raw {FAKE_JWT}")
    for secret in ("tok123", "sig456", FAKE_JWT, FAKE_AK_SECRET):
        assert secret not in text
    assert "AccessKeyId=LTAI" in text  # identifiers stay readable


#: the SDK, credentials and HTTP client loggers operations.md names (Tea/darabonba,
#: alibabacloud_credentials, urllib3, requests, aiohttp), by the names those libraries log under
SDK_LOGGER_NAMES = ("alibabacloud-tea", "darabonba-core", "credentials",
                    "alibabacloud_credentials", "urllib3.connectionpool", "requests", "aiohttp")


@pytest.mark.parametrize("verbosity", [0, 3, 4, 5, 10])
def test_verbosity_follows_the_operations_table(verbosity: int, restore_logging: None) -> None:
    """operations.md: -v 0-3 info; 4 adds the provider's debug lines; 5 and above every other
    library's, except the SDK, credentials and HTTP client loggers, at WARNING at every level."""
    stream = io.StringIO()
    configure(verbosity, "text", stream)
    provider = logging.getLogger("ack_secrets_provider.mount")
    provider.info("provider-info")
    provider.debug("provider-debug")
    logging.getLogger("stevedore.extension").debug("library-debug")
    for name in SDK_LOGGER_NAMES:
        logging.getLogger(name).info(f"sdk-info {name}")
        logging.getLogger(name).warning(f"sdk-warning {name}")
    output = stream.getvalue()
    assert "provider-info" in output
    assert ("provider-debug" in output) == (verbosity >= 4)
    assert ("library-debug" in output) == (verbosity >= 5)
    for name in SDK_LOGGER_NAMES:
        assert f"sdk-info {name}\n" not in output and f"sdk-warning {name}\n" in output


def test_a_mount_without_a_pod_logs_no_pod_or_namespace(
    tmp_path: Path, restore_logging: None
) -> None:
    """operations.md: `pod` and `namespace` are absent for the secret-sync controller, which
    mounts without a pod; `spc` is still there (a failed mount's line likewise)."""
    stream = io.StringIO()
    configure(0, "json", stream)
    objects = "- {objectName: db/password, objectType: testmem}\n"
    with running_provider(ProviderSettings(), tmp_path) as provider:
        provider.mount(driver_attributes({"objects": objects}, pod=None))
        with pytest.raises(grpc.RpcError):
            provider.mount(driver_attributes(
                {"objects": "- {objectName: missing-db, objectType: testmem}\n"}, pod=None))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()
             if '"ack_secrets_provider.mount"' in line]
    assert [line["msg"].split(":")[0] for line in lines] == ["mount succeeded", "mount failed"]
    for line in lines:
        assert line["spc"] == "app-secrets" and "pod" not in line and "namespace" not in line


def test_text_values_with_spaces_or_quotes_are_json_quoted(restore_logging: None) -> None:
    """operations.md: text lines are logfmt-style, "values with spaces or quotes are
    JSON-quoted" (so a value cannot pass for another field)."""
    stream = io.StringIO()
    configure(0, "text", stream)
    logging.getLogger("ack_secrets_provider.mount").info("mount succeeded", extra={"mount": {
        "spc": "app secrets", "pod": 'web"7d9f', "namespace": "shop"}})
    line = stream.getvalue().rstrip("\n")
    assert line.endswith(' spc="app secrets" pod="web\\"7d9f" namespace=shop')
