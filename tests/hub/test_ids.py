"""Public ids: URL-safe, one form whether made one at a time or in bulk; random, or ordered by
time and random after."""

from __future__ import annotations

import re
import time

from hub.lib.ids import (
    new_ordered_public_id,
    new_ordered_public_ids,
    new_public_id,
    new_public_ids,
)

FORM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{15}")  # never "-" first: it reads as an option


def test_bulk_ids_have_the_single_ids_form_and_are_distinct() -> None:
    ids = new_public_ids(5000)
    assert len(ids) == 5000
    assert all(FORM.fullmatch(public_id) for public_id in ids)
    assert len(set(ids)) == 5000
    assert FORM.fullmatch(new_public_id())


def test_no_ids_asked_gives_none_and_two_calls_differ() -> None:
    assert new_public_ids(0) == []
    assert set(new_public_ids(100)).isdisjoint(new_public_ids(100))


def test_no_id_begins_with_a_dash_which_a_command_line_reads_as_an_option() -> None:
    # One id in 64 would begin with "-" if nothing kept it from doing so.
    firsts = {public_id[0] for public_id in new_public_ids(20_000)}
    assert "-" not in firsts
    assert len(firsts) == 63


def test_ordered_ids_have_the_same_form_and_begin_with_the_time() -> None:
    earlier = new_ordered_public_ids(3000)
    assert all(FORM.fullmatch(public_id) for public_id in earlier)
    assert len(set(earlier)) == 3000
    assert len({public_id[:7] for public_id in earlier}) <= 2  # one millisecond, or two
    time.sleep(0.002)
    later = [new_ordered_public_id(), *new_ordered_public_ids(10)]
    # In code-point order (the database's order for them is the same; they are ASCII).
    assert max(earlier) < min(later)
    assert new_ordered_public_ids(0) == []


def test_ordered_ids_tell_the_millisecond_they_were_made_in_their_first_characters() -> None:
    before = time.time_ns() // 1_000_000
    public_id = new_ordered_public_id()
    after = time.time_ns() // 1_000_000
    alphabet = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
    stamp = 0
    for character in public_id[:7]:
        stamp = stamp * 64 + alphabet.index(character)
    assert before <= stamp <= after
