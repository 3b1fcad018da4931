from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ari_app.core import numbers
from ari_app.core.numbers import is_e164, mask, normalize, require_e164, sanitize_for_log

STRICT = re.compile(r"^\+[1-9]\d{6,14}$", re.ASCII)


@pytest.mark.parametrize(
    "raw",
    ["8 (916) 123-45-67", "+7 916 1234567", "79161234567", "89161234567", "9161234567",
     " +7 (916) 123-45-67 ", "+7-916-123-45-67", "8.916.123.45.67"],
)
def test_one_client_many_spellings(raw: str) -> None:
    assert normalize(raw) == "+79161234567"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 202 555 0123", "RU", "+12025550123"),
        ("020 7946 0000", "GB", "+442079460000"),
        ("020 7946 0000", "gb", "+442079460000"),
        ("77011234567", "KZ", "+77011234567"),  # KZ shares +7: same rule
        ("74951234567", "RU", "+74951234567"),
    ],
)
def test_other_regions(raw: str, region: str, expected: str) -> None:
    assert normalize(raw, region) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None, "", "   ", "+", "anonymous", "Anonymous", "restricted", "unknown", "withheld",
        "100", "1001", "0", "+0123456789", "++79161234567", "7916+1234567",
        "${SHELL(x)}", "&PJSIP/x", "79161234567\r\nX-Header: y", "7916123\x004567",
        "+79161234567;ext=1", "sip:+79161234567@trunk", "٧٩١٦١٢٣٤٥٦٧",  # Arabic-Indic digits
        "7" * 65, "+7 916 123 45 67" * 5, "a" * 1024, "\u202e79161234567",
        "8 800 CALL-NOW",
    ],
)
def test_garbage_is_none(raw: str | None) -> None:
    assert normalize(raw) is None


@pytest.mark.parametrize("region", ["ZZ", "", "RUSSIA", "ру"])
def test_bad_region_is_none(region: str) -> None:
    assert normalize("89161234567", region) is None


def test_non_string_input_is_none() -> None:
    assert normalize(79161234567) is None  # type: ignore[arg-type]
    assert normalize("89161234567", None) is None  # type: ignore[arg-type]


def test_length_is_capped_before_parsing() -> None:
    padded = "+79161234567" + " " * (numbers.MAX_RAW_LEN - 12)
    assert normalize(padded) == "+79161234567"
    assert normalize(padded + " ") is None


def test_parsing_is_cached() -> None:
    before = numbers._normalize.cache_info().hits
    normalize("+7 916 765-43-21")
    normalize("+7 916 765-43-21")
    assert numbers._normalize.cache_info().hits > before


@given(st.text(max_size=300))
def test_normalize_never_raises_any_text(raw: str) -> None:
    result = normalize(raw)
    assert result is None or STRICT.fullmatch(result)


@given(st.text(alphabet="0123456789+ -().#*", max_size=40), st.sampled_from(["RU", "US", "GB", "DE", "KZ"]))
def test_normalize_phone_like_text(raw: str, region: str) -> None:
    result = normalize(raw, region)
    assert result is None or STRICT.fullmatch(result)
    if result is not None:
        assert normalize(result, region) == result  # E.164 output is a fixed point


@given(st.from_regex(r"\+?[0-9]{1,16}", fullmatch=True))
def test_normalize_digits_idempotent(raw: str) -> None:
    result = normalize(raw)
    assert result is None or (STRICT.fullmatch(result) and normalize(result) == result)


def test_is_e164_and_require() -> None:
    assert is_e164("+79161234567")
    for bad in ("79161234567", "+0123456", "+123456", "+1234567890123456", "+7916\n", None, 7):
        assert not is_e164(bad)
        with pytest.raises(ValueError):
            require_e164(bad)
    assert require_e164("+79161234567") == "+79161234567"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+79161234567", "***4567"),
        ("+12025550123", "***0123"),
        ("12345", "***2345"),
        ("1234", "***"),
        (None, "unidentified"),
        ("", "unidentified"),
    ],
)
def test_mask(number: str | None, expected: str) -> None:
    assert mask(number) == expected


@given(st.from_regex(r"\+[1-9][0-9]{9,14}", fullmatch=True))
def test_mask_keeps_only_the_last_four_digits(number: str) -> None:
    assert mask(number) == "***" + number[-4:]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+79161234567", "+79161234567"),
        ('a"b\'c\\d', 'a\\"b\\\'c\\\\d'),
        ("x\r\ny\x00", "x\\r\\ny\\x00"),
        ("Жук", "\\u0416\\u0443\\u043a"),
        (None, "<none>"),
        (12, "12"),
    ],
)
def test_sanitize_for_log(raw: object, expected: str) -> None:
    assert sanitize_for_log(raw) == expected


@given(st.text(max_size=2000), st.integers(min_value=0, max_value=200))
def test_sanitize_is_printable_and_bounded(raw: str, limit: int) -> None:
    out = sanitize_for_log(raw, limit)
    assert all(" " <= ch <= "~" for ch in out)
    assert len(out) <= limit + 3
    assert out == raw or len(raw) > 0
