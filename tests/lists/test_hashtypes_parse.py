"""Parsing and formatting hash values, and the registry that names the signal types."""

from __future__ import annotations

import ast
import base64
import secrets
from pathlib import Path
from typing import Any

import pytest

from hub.errors import ServiceError
from lists.hashtypes import (
    ComputedHash,
    DecodedImage,
    ExactSignalType,
    HashParseError,
    PerceptualSignalType,
    SignalType,
    SignalTypeRegistry,
    UnknownSignalTypeError,
    all_signal_types,
    get_signal_type,
)

ALL_TYPES = all_signal_types()
BY_NAME = pytest.mark.parametrize("signal_type", ALL_TYPES, ids=lambda t: t.name)
HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "pdq": 64, "phash": 16, "photodna": 288}


def random_text(signal_type: SignalType) -> str:
    return secrets.token_bytes(signal_type.byte_length).hex()


def parse_error(signal_type: SignalType, text: Any) -> HashParseError:
    with pytest.raises(HashParseError) as caught:
        signal_type.parse(text)
    return caught.value


def test_the_registry_lists_every_type_in_a_stable_order() -> None:
    names = [t.name for t in all_signal_types()]
    assert names == ["md5", "sha1", "sha256", "pdq", "phash", "photodna"]
    assert [t.name for t in all_signal_types()] == names


def test_each_type_describes_itself_as_the_hashtypes_endpoint_lists_it() -> None:
    described = {t.name: t.describe() for t in ALL_TYPES}
    assert described["md5"] == {
        "type": "md5",
        "kind": "exact",
        "bits": 128,
        "default_max_distance": 0,
        "max_distance": 0,
    }
    assert described["pdq"]["kind"] == "perceptual"
    assert (described["pdq"]["default_max_distance"], described["pdq"]["max_distance"]) == (31, 31)
    assert (described["phash"]["default_max_distance"], described["phash"]["max_distance"]) == (
        10,
        10,
    )
    assert described["photodna"] == {
        "type": "photodna",
        "kind": "opaque",
        "bits": 1152,
        "default_max_distance": 0,
        "max_distance": 0,
    }


@BY_NAME
def test_it_knows_each_types_hex_length(signal_type: SignalType) -> None:
    assert signal_type.byte_length * 2 == HEX_LENGTHS[signal_type.name]


@BY_NAME
def test_it_trims_whitespace_and_accepts_upper_case(signal_type: SignalType) -> None:
    text = random_text(signal_type)
    assert signal_type.parse(f" \t{text.upper()}\r\n ") == bytes.fromhex(text)


@BY_NAME
def test_it_formats_values_as_lowercase_hex(signal_type: SignalType) -> None:
    value = secrets.token_bytes(signal_type.byte_length)
    assert signal_type.to_text(value) == value.hex()
    assert signal_type.to_text(signal_type.parse(value.hex().upper())) == value.hex()


@BY_NAME
def test_it_rejects_a_value_one_character_short(signal_type: SignalType) -> None:
    error = parse_error(signal_type, random_text(signal_type)[:-1])
    assert error.code == "wrong_length"
    assert str(HEX_LENGTHS[signal_type.name]) in error.message


@BY_NAME
def test_it_rejects_a_value_one_character_long(signal_type: SignalType) -> None:
    error = parse_error(signal_type, random_text(signal_type) + "a")
    assert error.code == "wrong_length"


@BY_NAME
def test_it_rejects_a_non_hex_character_and_says_where(signal_type: SignalType) -> None:
    text = random_text(signal_type)
    error = parse_error(signal_type, text[:5] + "g" + text[6:])
    assert error.code == "bad_characters"
    assert "'g'" in error.message
    assert "position 6" in error.message
    assert error.details == {"position": 6}


@pytest.mark.parametrize("name", ["md5", "sha1", "sha256", "pdq", "phash"])
def test_it_rejects_a_prefix_as_bad_characters(name: str) -> None:
    signal_type = get_signal_type(name)
    error = parse_error(signal_type, "0x" + random_text(signal_type))
    assert error.code == "bad_characters"
    assert "'x'" in error.message


@BY_NAME
def test_it_rejects_inner_whitespace(signal_type: SignalType) -> None:
    text = random_text(signal_type)
    error = parse_error(signal_type, text[:8] + " " + text[8:])
    assert error.code == "bad_characters"


@BY_NAME
@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_it_rejects_an_empty_value(signal_type: SignalType, text: str) -> None:
    assert parse_error(signal_type, text).code == "empty_value"


@BY_NAME
@pytest.mark.parametrize("value", [None, 42, b"abcd"])
def test_it_rejects_a_value_that_is_not_text(signal_type: SignalType, value: object) -> None:
    assert parse_error(signal_type, value).code == "not_a_string"


def test_parse_errors_are_service_errors_a_view_answers_with_400() -> None:
    error = parse_error(get_signal_type("pdq"), "abc")
    assert isinstance(error, ServiceError)
    assert error.status == 400
    assert error.message.endswith(".")


def test_it_rejects_bad_pdq_length_with_a_sentence_naming_both_lengths() -> None:
    error = parse_error(get_signal_type("pdq"), "ab" * 31)
    assert error.message == "PDQ hashes are 64 hex characters long; this one has 62."
    assert error.details == {"expected_length": 64, "length": 62}


PHOTODNA = get_signal_type("photodna")
# 0xfb 0xff bytes encode to "+" and "/" in standard base64, so the two alphabets differ.
PHOTODNA_VALUE = bytes([0xFB, 0xFF, 0x00, 0x10]) * 36


def test_photodna_hex_and_base64_parse_to_the_same_canonical_hex() -> None:
    standard = base64.b64encode(PHOTODNA_VALUE).decode()
    urlsafe = base64.urlsafe_b64encode(PHOTODNA_VALUE).decode()
    assert standard != urlsafe
    forms = [
        PHOTODNA_VALUE.hex(),
        PHOTODNA_VALUE.hex().upper(),
        standard,
        urlsafe,
        f"  {standard}\n",
        standard + "==",
    ]
    assert {PHOTODNA.to_text(PHOTODNA.parse(form)) for form in forms} == {PHOTODNA_VALUE.hex()}


def test_photodna_in_decimal_bytes_parses_to_the_same_canonical_hex() -> None:
    decimal = ",".join(str(byte) for byte in PHOTODNA_VALUE)
    spaced = ", ".join(str(byte) for byte in PHOTODNA_VALUE)
    assert {PHOTODNA.to_text(PHOTODNA.parse(form)) for form in (decimal, spaced)} == {
        PHOTODNA_VALUE.hex()
    }


@pytest.mark.parametrize(
    ("values", "code", "details"),
    [
        (["1"] * 143, "wrong_length", {"expected_length": 144, "length": 143}),
        (["1"] * 145, "wrong_length", {"expected_length": 144, "length": 145}),
        (["1"] * 9 + ["256"] + ["1"] * 134, "bad_characters", {"position": 10}),
        (["1"] * 3 + ["-1"] + ["1"] * 140, "bad_characters", {"position": 4}),
        (["0x1f"] + ["1"] * 143, "bad_characters", {"position": 1}),
        (["1"] * 143 + [""], "bad_characters", {"position": 144}),
        # int() refuses 4,301 digits or more with ValueError: it answered 500 (issue 18).
        (["1"] * 5 + ["9" * 4301] + ["1"] * 138, "bad_characters", {"position": 6}),
        (["1"] * 7 + ["0001"] + ["1"] * 136, "bad_characters", {"position": 8}),
    ],
)
def test_photodna_decimal_that_is_not_144_bytes_is_refused_with_the_place(
    values: list[str], code: str, details: dict[str, int]
) -> None:
    error = parse_error(PHOTODNA, ",".join(values))
    assert (error.code, error.details) == (code, details)


def test_photodna_base64_is_192_characters_without_padding() -> None:
    assert len(base64.b64encode(PHOTODNA_VALUE)) == 192
    assert not base64.b64encode(PHOTODNA_VALUE).endswith(b"=")


def test_photodna_rejects_base64_of_the_wrong_length() -> None:
    text = base64.b64encode(PHOTODNA_VALUE[:-3]).decode()
    error = parse_error(PHOTODNA, text)
    assert error.code == "wrong_length"
    assert "288 hex or 192 base64 characters" in error.message


def test_photodna_rejects_a_character_outside_both_alphabets() -> None:
    text = base64.b64encode(PHOTODNA_VALUE).decode()
    error = parse_error(PHOTODNA, text[:10] + "*" + text[11:])
    assert error.code == "bad_characters"
    assert error.details == {"position": 11}


def test_photodna_hex_with_a_non_hex_character_is_bad_characters() -> None:
    # "x" is a base64 character, but 288 characters can only be hex.
    error = parse_error(PHOTODNA, "0x" + PHOTODNA_VALUE.hex()[2:])
    assert error.code == "bad_characters"
    assert error.details == {"position": 2}


def test_photodna_rejects_a_stray_character_in_an_odd_length_value() -> None:
    assert parse_error(PHOTODNA, "abc!def").code == "bad_characters"


def test_photodna_rejects_more_padding_than_base64_allows() -> None:
    text = base64.b64encode(PHOTODNA_VALUE).decode() + "==="
    assert parse_error(PHOTODNA, text).code == "wrong_length"


def test_it_finds_a_type_by_name_in_any_case_and_trimmed() -> None:
    assert get_signal_type("pdq") is get_signal_type(" PDQ ")


def test_it_rejects_an_unknown_type_and_lists_the_known_ones() -> None:
    with pytest.raises(UnknownSignalTypeError) as caught:
        get_signal_type("crc32")
    error = caught.value
    assert isinstance(error, HashParseError)
    assert error.code == "unknown_type"
    assert error.message == (
        "Unknown hash type 'crc32'; this hub knows md5, sha1, sha256, pdq, phash, photodna."
    )
    assert error.details == {"known_types": ["md5", "sha1", "sha256", "pdq", "phash", "photodna"]}


@pytest.mark.parametrize("name", [None, 7, "", "x" * 10_000])
def test_it_rejects_a_type_name_that_is_not_a_known_string(name: Any) -> None:
    with pytest.raises(UnknownSignalTypeError) as caught:
        get_signal_type(name)
    assert caught.value.code == "unknown_type"
    assert len(caught.value.message) < 200


@pytest.mark.parametrize("name", ["md5", "sha1", "sha256", "photodna"])
def test_exact_and_opaque_types_are_zero_apart_only_when_equal(name: str) -> None:
    signal_type = get_signal_type(name)
    a = secrets.token_bytes(signal_type.byte_length)
    b = bytes([a[0] ^ 1]) + a[1:]
    assert signal_type.distance(a, a) == 0
    assert signal_type.distance(a, b) == signal_type.bits


def test_perceptual_distance_counts_differing_bits() -> None:
    pdq = get_signal_type("pdq")
    assert pdq.distance(bytes(32), bytes([0xFF, 0x01]) + bytes(30)) == 9
    assert pdq.distance(bytes(32), b"\xff" * 32) == 256


@BY_NAME
def test_distance_and_to_text_refuse_values_of_the_wrong_length(signal_type: SignalType) -> None:
    good = bytes(signal_type.byte_length)
    with pytest.raises(ValueError, match="bytes, not"):
        signal_type.distance(good, good[:-1])
    with pytest.raises(ValueError, match="bytes, not"):
        signal_type.to_text(good + b"\x00")


class Crc32(ExactSignalType):
    """A made-up type, to show that adding one is a class and a register call."""

    name = "crc32"
    label = "CRC-32"
    bits = 32

    def digest(self, data: bytes) -> bytes:
        import zlib

        return zlib.crc32(data).to_bytes(4, "big")


def test_a_new_type_plugs_in_with_one_register_call() -> None:
    registry = SignalTypeRegistry()
    registry.register(Crc32())
    assert registry.get("CRC32").parse("DEADBEEF") == bytes.fromhex("deadbeef")
    computed = registry.compute_all(DecodedImage(data=b"hello", image=None))  # type: ignore[arg-type]
    assert computed == {"crc32": ComputedHash("crc32", bytes.fromhex("3610a686"), "3610a686")}


def test_the_registry_refuses_a_duplicate_name() -> None:
    registry = SignalTypeRegistry()
    registry.register(Crc32())
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Crc32())


def test_the_registry_refuses_an_exact_type_that_claims_a_match_radius() -> None:
    class Fuzzy(Crc32):
        name = "fuzzy"
        max_distance = 3

    with pytest.raises(ValueError, match="matches exactly"):
        SignalTypeRegistry().register(Fuzzy())


def test_the_registry_refuses_a_default_radius_above_the_maximum() -> None:
    class Loose(PerceptualSignalType):
        name = "loose"
        label = "Loose"
        bits = 64
        default_max_distance = 12
        max_distance = 10

        def compute(self, image: DecodedImage) -> ComputedHash | None:
            return None

    with pytest.raises(ValueError, match="default_max_distance"):
        SignalTypeRegistry().register(Loose())


def test_the_registry_imports_nothing_of_the_project_but_hub_errors() -> None:
    package = Path(__file__).resolve().parents[2] / "lists" / "hashtypes"
    imported: set[str] = set()
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    project = {name for name in imported if name.split(".")[0] in {"hub", "sharing", "matching"}}
    assert project == {"hub.errors"}
    assert not {name for name in imported if name.split(".")[0] == "django"}
    assert not {name for name in imported if name.startswith("lists.") and ".hashtypes" not in name}
