"""Property tests: every signal type round-trips its values and measures distance sensibly."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lists.hashtypes import HashParseError, SignalType, all_signal_types

# Few examples keep the suite fast; no example database so nothing is written into the checkout.
fast = settings(max_examples=40, deadline=None, database=None)

ALL_TYPES = all_signal_types()
PERCEPTUAL = [t for t in ALL_TYPES if t.kind == "perceptual"]
BY_NAME = pytest.mark.parametrize("signal_type", ALL_TYPES, ids=lambda t: t.name)
PERCEPTUAL_BY_NAME = pytest.mark.parametrize("signal_type", PERCEPTUAL, ids=lambda t: t.name)


def values(signal_type: SignalType) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=signal_type.byte_length, max_size=signal_type.byte_length)


def canonical_texts(signal_type: SignalType) -> st.SearchStrategy[str]:
    length = signal_type.byte_length * 2
    return st.text(alphabet="0123456789abcdef", min_size=length, max_size=length)


@BY_NAME
@fast
@given(data=st.data())
def test_parsing_the_text_of_any_value_gives_the_value_back(
    signal_type: SignalType, data: st.DataObject
) -> None:
    value = data.draw(values(signal_type))
    assert signal_type.parse(signal_type.to_text(value)) == value


@BY_NAME
@fast
@given(data=st.data())
def test_a_canonical_text_survives_parse_and_format_unchanged(
    signal_type: SignalType, data: st.DataObject
) -> None:
    text = data.draw(canonical_texts(signal_type))
    assert signal_type.to_text(signal_type.parse(text)) == text


@BY_NAME
@fast
@given(data=st.data())
def test_case_and_surrounding_whitespace_do_not_change_the_value(
    signal_type: SignalType, data: st.DataObject
) -> None:
    text = data.draw(canonical_texts(signal_type))
    before = data.draw(st.text(alphabet=" \t\r\n", max_size=3))
    after = data.draw(st.text(alphabet=" \t\r\n", max_size=3))
    assert signal_type.parse(before + text.upper() + after) == signal_type.parse(text)


@BY_NAME
@fast
@given(text=st.text(max_size=400))
def test_any_text_either_parses_or_gets_a_parse_error_never_a_crash(
    signal_type: SignalType, text: str
) -> None:
    try:
        value = signal_type.parse(text)
    except HashParseError as error:
        assert error.code in {"empty_value", "bad_characters", "wrong_length"}
    else:
        assert len(value) == signal_type.byte_length


@fast
@given(value=st.binary(min_size=144, max_size=144))
def test_photodna_base64_in_either_alphabet_parses_to_the_same_value(value: bytes) -> None:
    photodna = next(t for t in ALL_TYPES if t.name == "photodna")
    standard = base64.b64encode(value).decode()
    urlsafe = base64.urlsafe_b64encode(value).decode()
    assert photodna.parse(standard) == photodna.parse(urlsafe) == value
    assert photodna.to_text(photodna.parse(standard)) == value.hex()


@BY_NAME
@fast
@given(data=st.data())
def test_distance_is_a_metric_bounded_by_the_bit_count(
    signal_type: SignalType, data: st.DataObject
) -> None:
    a, b, c = (data.draw(values(signal_type)) for _ in range(3))
    assert signal_type.distance(a, a) == 0
    assert signal_type.distance(a, b) == signal_type.distance(b, a)
    assert signal_type.distance(a, c) <= signal_type.distance(a, b) + signal_type.distance(b, c)
    assert 0 <= signal_type.distance(a, b) <= signal_type.bits
    assert (signal_type.distance(a, b) == 0) == (a == b)


@PERCEPTUAL_BY_NAME
@fast
@given(data=st.data())
def test_perceptual_distance_is_the_number_of_differing_bits(
    signal_type: SignalType, data: st.DataObject
) -> None:
    a = data.draw(values(signal_type))
    flips = data.draw(st.sets(st.integers(0, signal_type.bits - 1), max_size=signal_type.bits))
    b = bytearray(a)
    for bit in flips:
        b[bit // 8] ^= 0x80 >> (bit % 8)
    assert signal_type.distance(a, bytes(b)) == len(flips)
