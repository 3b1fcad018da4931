"""Property-based fuzzing of caller-ID normalisation and of how numbers reach logs.

normalize() is the gate between a SIP header the caller controls and everything else (Redis
keys, CRM queries, dialplan variables): it must never raise, must answer None or a strict
E.164 number, and must be idempotent on its own output.
"""
from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from ari_app.core.numbers import (
    is_e164,
    mask,
    normalize,
    require_e164,
    sanitize_for_log,
)
from ari_app.ops.logs import clean_text, mask_number

from tests.support.hostile_inputs import E164_RE, FUZZ, HOSTILE_CALLER_IDS, VALID_CALLER_IDS

REGIONS = st.sampled_from(["RU", "US", "GB", "DE", "KZ", "FR", "CN", "ru", "ZZ", "001", "", "XX", "RUS", "\x00",
                           "Ру"]) | st.text(max_size=4)
# Text shaped like what people and trunks write, so parsing gets past the first checks.
PHONE_LIKE = st.from_regex(r"\A\s?\+?[0-9 ()\-.]{0,30}\s?\Z")
DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=20)
NUMBER_SHAPES = st.one_of(
    st.text(),  # anything, including surrogates, NUL, RTL marks
    st.text(alphabet=st.characters(codec="ascii"), max_size=80),
    PHONE_LIKE,
    DIGITS,
    DIGITS.map(lambda d: "+" + d),
    DIGITS.map(lambda d: "8 (" + d[:3] + ") " + d[3:]),
    st.builds(lambda a, b: a + b, PHONE_LIKE, st.text(max_size=5)),  # a number plus junk
    st.sampled_from([h.text for h in HOSTILE_CALLER_IDS] + [h.replaced for h in HOSTILE_CALLER_IDS]),
    st.sampled_from([raw for raw, _ in VALID_CALLER_IDS]),
)
ANYTHING = st.none() | st.integers() | st.floats() | st.binary() | st.lists(st.text(), max_size=2) | NUMBER_SHAPES


@FUZZ
@given(raw=NUMBER_SHAPES, region=REGIONS)
@example(raw="+79161234567", region="RU")
@example(raw="89161234567", region="RU")
@example(raw="7" * 64, region="RU")
@example(raw="+" + "9" * 15, region="ZZ")
def test_normalize_never_raises_and_answers_strict_e164_or_none(raw: str, region: str) -> None:
    result = normalize(raw, region)
    assert result is None or E164_RE.fullmatch(result), repr(result)
    assert result is None or is_e164(result)
    if result is not None:
        assert normalize(result, region) == result  # idempotent on its own output
        assert normalize(result, "US") == result  # and E.164 does not depend on the region
        assert require_e164(result) == result


@FUZZ
@given(ANYTHING, st.none() | st.integers() | REGIONS)
def test_normalize_takes_any_object(raw: object, region: object) -> None:
    result = normalize(raw, region)  # type: ignore[arg-type]
    assert result is None or is_e164(result)


def test_every_hostile_caller_id_is_unidentified() -> None:
    for hostile in HOSTILE_CALLER_IDS:
        for text in (hostile.text, hostile.replaced):
            # Surrounding whitespace is dropped ("+79161234567\n\n" is that number); anything
            # else that is not a number in the usual separators is no number at all.
            expected = "+79161234567" if text.strip() == "+79161234567" else None
            assert normalize(text, "RU") == expected, hostile.name


def test_real_numbers_are_identified() -> None:
    for raw, e164 in VALID_CALLER_IDS:
        assert normalize(raw, "RU") == e164


@FUZZ
@given(ANYTHING)
def test_is_e164_and_require_e164_agree(value: object) -> None:
    if is_e164(value):
        assert require_e164(value) == value
        assert re.fullmatch(r"\+[1-9][0-9]{6,14}", value, re.ASCII)  # type: ignore[arg-type]
    else:
        try:
            require_e164(value)
        except ValueError as e:
            assert str(e) == "not a strict E.164 number"  # never echoes the input
        else:
            raise AssertionError("require_e164 accepted a non-E.164 value")


@FUZZ
@given(NUMBER_SHAPES)
def test_mask_never_raises_and_never_shows_the_whole_number(raw: str) -> None:
    masked = mask(raw)
    assert masked.isascii() and masked.isprintable()
    number = normalize(raw, "RU")
    if number is not None:
        national = number[2:]  # what identifies the subscriber
        assert national not in masked, (number, masked)


@FUZZ
@given(st.one_of(st.text(), st.binary(), st.integers(), st.none()), st.integers(0, 200))
def test_sanitize_for_log_is_printable_bounded_and_quote_safe(raw: object, limit: int) -> None:
    out = sanitize_for_log(raw, limit)
    assert out.isascii() and out.isprintable()
    assert len(out) <= max(limit, len("<none>")) + 3
    assert re.search(r'(?<!\\)["\']', out) is None or out == "<none>"  # quotes come escaped


@FUZZ
@given(NUMBER_SHAPES, st.booleans())
def test_log_masking_never_raises_and_keeps_control_characters_out(raw: str, mask_flag: bool) -> None:
    masked = mask_number(raw, mask=mask_flag)
    assert masked is not None and "\n" not in masked and "\r" not in masked
    text = clean_text(f"caller {raw} called", mask=True)
    assert not re.search(r"[\x00-\x1f\x7f\u2028\u2029]", text)
    number = normalize(raw, "RU")
    if number is not None and raw.strip().startswith("+"):
        assert number[2:] not in text  # a "+..." number in free text is masked
