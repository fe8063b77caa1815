"""Example tests of file-name rules and permissions (core/mount/paths.py)."""

from __future__ import annotations

import pytest

from ack_secrets_provider.core.mount.paths import (
    PathTranslation,
    driver_path_problem,
    parse_driver_permission,
    parse_file_permission,
    parse_path_translation,
)


@pytest.mark.parametrize("path", ["a", "app/db/pass", "ab/cd", ".hidden", "a..b", "x/...", "密码"])
def test_paths_the_driver_accepts(path: str) -> None:
    assert driver_path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty"),
        (".", "volume itself"),
        ("/etc/passwd", "relative"),
        ("..", "'..' element"),
        ("a/../b", "'..' element"),
        ("..data", "must not start with '..'"),
        ("...", "must not start with '..'"),
        ("./a", "clean form"),
        ("a//b", "clean form"),
        ("a/", "clean form"),
        ("a/./b", "clean form"),
        ("a\x00b", "NUL"),
        ("x" * 256, "longer than 255 bytes"),
        ("é" * 128, "longer than 255 bytes"),  # 128 characters, 256 bytes
        ("/".join(["a" * 200] * 21), "longer than 4096 bytes"),
    ],
)
def test_paths_the_driver_refuses(path: str, reason: str) -> None:
    problem = driver_path_problem(path)
    assert problem is not None and reason in problem


def test_limits_are_inclusive() -> None:
    assert driver_path_problem("x" * 255) is None
    assert driver_path_problem("é" * 127) is None  # 254 bytes
    assert driver_path_problem("/".join(["a" * 255] * 16)) is None  # 4095 bytes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "_"),
        ("", "_"),
        ("_", "_"),
        ("-", "-"),
        (".", "."),
        ("False", None),
        ("false", None),
        ("FALSE", None),
        ("fAlSe", None),
    ],
)
def test_path_translation_values(value: str | None, expected: str | None) -> None:
    assert parse_path_translation(value) == PathTranslation(expected)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("__", "single character"),
        ("no", "single character"),
        ("/", "would not translate"),
        (" ", "printable, non-space"),
        ("\t", "printable, non-space"),
        ("\\", "printable"),
        ("\x00", "printable"),
    ],
)
def test_bad_path_translation_values(value: str, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        parse_path_translation(value)


def test_translation_apply() -> None:
    assert PathTranslation("_").apply("/a/b") == "_a_b"
    assert PathTranslation(None).apply("/a/b") == "a/b"
    assert PathTranslation(None).apply("//a") == "a"  # as the Go provider's TrimLeft


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("0440", 0o440),
        ("0o440", 0o440),
        ("0O644", 0o644),
        ("0644", 0o644),
        ("00644", 0o644),
        ("0777", 0o777),
        ("0", 0),
        ("00", 0),
        ("1", 1),
        ("288", 0o440),
        ("420", 0o644),
        ("511", 0o777),
    ],
)
def test_file_permission_forms(value: str, mode: int) -> None:
    assert parse_file_permission(value) == mode


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("644", 'did you mean "0644"'),
        ("512", "out of range"),
        ("01000", "out of range"),
        ("0o1000", "out of range"),
        ("0888", "not a file mode"),
        ("0x1a4", "not a file mode"),
        ("rw-r--r--", "not a file mode"),
        ("", "not a file mode"),
        (" 0440", "not a file mode"),
        ("0440\n", "not a file mode"),
        ("+420", "not a file mode"),
        ("-1", "not a file mode"),
        ("٤٢٠", "not a file mode"),
        ("000644", "not a file mode"),
        ("0440.0", "not a file mode"),
    ],
)
def test_file_permission_refusals(value: str, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        parse_file_permission(value)


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ('"420"', 0o644),
        ("420", 0o644),
        ('"0"', 0),
        ('"511"', 0o777),
        (' "292" ', 0o444),
    ],
)
def test_driver_permission_forms(value: str, mode: int) -> None:
    assert parse_driver_permission(value) == mode


@pytest.mark.parametrize(
    "value",
    [
        '"0644"',
        '"512"',
        "512",
        '"-1"',
        "420.0",
        "true",
        "null",
        '"٤٢٠"',
        "",
        '"420',
        "[420]",
    ],
)
def test_driver_permission_refusals(value: str) -> None:
    with pytest.raises(ValueError, match="permission"):
        parse_driver_permission(value)
