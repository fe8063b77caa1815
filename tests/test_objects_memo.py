"""The memo of parsed `objects` texts: it answers exactly what the pure parser answers for that
text and translation, never another text's result, keeps no refusal, and stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from strategies import arbitrary_objects_text  # tests/strategies.py (on pytest's pythonpath)

from ack_secrets_provider.core.errors import InvalidArgument
from ack_secrets_provider.core.mount.objects_memo import ObjectsMemo
from ack_secrets_provider.core.mount.paths import PathTranslation
from ack_secrets_provider.core.mount.spec import (
    DEFAULT_LIMITS,
    ObjectSpec,
    ObjectTypes,
    parse_objects,
)

KEEP = PathTranslation(replacement=None)
UNDERSCORE = PathTranslation()


def kms(name: str) -> str:
    return f"- objectName: {name}\n  objectType: kms\n"


def everything(objects: tuple[ObjectSpec, ...]) -> list[object]:
    """Every field of the specs, including those left out of ObjectSpec's equality."""
    return [(spec, dict(spec.fields), spec.warnings, dict(spec.raw)) for spec in objects]


def parsed(text: str | None, translation: PathTranslation = UNDERSCORE) -> object:
    try:
        return everything(parse_objects(text, translation, ObjectTypes.ANY, DEFAULT_LIMITS))
    except InvalidArgument as exc:
        return ("refused", exc.message)


def through(memo: ObjectsMemo, text: str | None,
            translation: PathTranslation = UNDERSCORE) -> object:
    try:
        return everything(memo(text, translation))
    except InvalidArgument as exc:
        return ("refused", exc.message)


def test_an_unchanged_text_reuses_its_parse() -> None:
    memo = ObjectsMemo(ObjectTypes.ANY, DEFAULT_LIMITS)
    first = memo(kms("app/db"), UNDERSCORE)
    assert memo(kms("app/db"), UNDERSCORE) is first
    assert everything(first) == parsed(kms("app/db"))
    assert len(memo) == 1


def test_another_text_or_translation_never_gets_anothers_result() -> None:
    memo = ObjectsMemo(ObjectTypes.ANY, DEFAULT_LIMITS)
    texts = [kms("app/db"), kms("app/db2"), kms("app/db") + "\n", kms("app/db").replace(
        "kms", "oos")]
    for text in texts:
        for translation in (UNDERSCORE, KEEP):
            assert through(memo, text, translation) == parsed(text, translation)
    assert [spec.file_name for spec in memo(kms("app/db"), KEEP)] == ["app/db"]
    assert [spec.file_name for spec in memo(kms("app/db"), UNDERSCORE)] == ["app_db"]


def test_a_refused_text_is_refused_every_time_and_not_kept() -> None:
    memo = ObjectsMemo(ObjectTypes.ANY, DEFAULT_LIMITS)
    bad = "- objectName: a\n  objectName: b\n"
    for _ in range(2):
        with pytest.raises(InvalidArgument):
            memo(bad, UNDERSCORE)
    assert len(memo) == 0


def test_the_memo_is_bounded() -> None:
    memo = ObjectsMemo(ObjectTypes.ANY, DEFAULT_LIMITS, max_bytes=4000)
    for i in range(50):
        memo(kms(f"app/secret-{i}"), UNDERSCORE)
    assert 0 < len(memo) <= 4000 // 1024
    huge = "".join(kms(f"app/s{i}") for i in range(200))  # larger than the whole bound
    assert through(memo, huge) == parsed(huge)


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(arbitrary_objects_text(), st.sampled_from([kms("a"), kms("b")])),
                min_size=1, max_size=6),
       st.lists(st.booleans(), min_size=6, max_size=6))
def test_the_memo_answers_what_the_parser_answers(texts: list[str], keep: list[bool]) -> None:
    memo = ObjectsMemo(ObjectTypes.ANY, DEFAULT_LIMITS)
    for _ in range(2):  # the second pass is served from the memo
        for text, keep_slash in zip(texts, keep, strict=False):
            translation = KEEP if keep_slash else UNDERSCORE
            assert through(memo, text, translation) == parsed(text, translation)
