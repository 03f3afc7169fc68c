from __future__ import annotations

import secrets
import threading

import pytest
from django.db import connection
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import AuditEvent, Organization
from lists import changes, services
from lists.models import Entry, Hash, HashList
from lists.services import EntryInput, entry_add, entry_remove

pytestmark = pytest.mark.django_db

ALICE = Actor(system="alice's test")


def pdq() -> str:
    return secrets.token_hex(32)


def md5() -> str:
    return secrets.token_hex(16)


def test_a_new_organisation_has_its_own_csam_and_se_lists(
    org_a: Organization, a_scope: None
) -> None:
    lists = {(hl.name, hl.category) for hl in HashList.objects.filter(organization=org_a)}
    assert lists == {("CSAM", "csam"), ("SE", "se")}


def test_adding_is_idempotent_and_shares_one_hash_row(csam_a: HashList, se_a: HashList) -> None:
    value = pdq()
    first = entry_add(
        hash_list=csam_a, items=[EntryInput("pdq", value, ("a1", "Cat"))], actor=ALICE
    )
    assert (first.added, first.already_present, first.errors) == (1, 0, [])
    again = entry_add(hash_list=csam_a, items=[EntryInput("PDQ", value.upper())], actor=ALICE)
    assert (again.added, again.already_present) == (0, 1)
    entry_add(hash_list=se_a, items=[EntryInput("pdq", value)], actor=ALICE)
    assert Hash.objects.filter(value=bytes.fromhex(value)).count() == 1
    entry = Entry.objects.get(hash_list=csam_a)
    assert entry.labels == ["A1", "cat"]
    assert entry.added_by_label == "alice's test"


def test_duplicates_within_one_batch_count_once(csam_a: HashList) -> None:
    value = md5()
    result = entry_add(hash_list=csam_a, items=[EntryInput("md5", value)] * 3, actor=ALICE)
    assert (result.added, result.already_present) == (1, 2)


def test_bad_items_are_reported_by_index_and_the_rest_are_added(csam_a: HashList) -> None:
    items = [
        EntryInput("pdq", pdq()),
        EntryInput("pdq", "abc"),
        EntryInput("crc32", "00"),
        EntryInput("md5", md5(), ("not a label!",)),
        EntryInput("md5", md5()),
    ]
    result = entry_add(hash_list=csam_a, items=items, actor=ALICE)
    assert result.added == 2
    assert [(e.index, e.code) for e in result.errors] == [
        (1, "wrong_length"),
        (2, "unknown_type"),
        (3, "bad_label"),
    ]
    assert all(e.message for e in result.errors)


def test_removal_is_a_tombstone_and_readding_revives_with_new_provenance(csam_a: HashList) -> None:
    value = pdq()
    entry_add(hash_list=csam_a, items=[EntryInput("pdq", value)], actor=ALICE)
    removed = entry_remove(
        hash_list=csam_a, items=[EntryInput("pdq", value)], reason="false positive", actor=ALICE
    )
    assert (removed.removed, removed.not_present) == (1, 0)
    tomb = Entry.objects.get(hash_list=csam_a)
    assert tomb.removed_seq is not None and tomb.removed_seq > tomb.added_seq
    assert tomb.removed_reason == "false positive"
    again = entry_remove(hash_list=csam_a, items=[EntryInput("pdq", value)], reason="", actor=ALICE)
    assert (again.removed, again.not_present) == (0, 1)
    bob = Actor(system="bob's test")
    entry_add(hash_list=csam_a, items=[EntryInput("pdq", value)], actor=bob)
    rows = list(Entry.objects.filter(hash_list=csam_a).order_by("added_seq"))
    assert len(rows) == 2
    assert rows[0].removed_seq is not None
    assert rows[1].removed_seq is None and rows[1].added_by_label == "bob's test"
    assert rows[1].added_seq > rows[0].removed_seq


def test_every_change_gets_the_next_number_of_one_sequence(
    csam_a: HashList, se_a: HashList
) -> None:
    start = changes.sequence_last()
    values = [pdq() for _ in range(5)]
    entry_add(hash_list=csam_a, items=[EntryInput("pdq", v) for v in values], actor=ALICE)
    entry_add(hash_list=se_a, items=[EntryInput("pdq", values[0])], actor=ALICE)
    entry_remove(hash_list=csam_a, items=[EntryInput("pdq", values[1])], reason="", actor=ALICE)
    seqs = sorted(
        [s for s in Entry.objects.values_list("added_seq", flat=True) if s > start]
        + [s for s in Entry.objects.values_list("removed_seq", flat=True) if s and s > start]
    )
    assert seqs == list(range(start + 1, start + 8))
    assert changes.sequence_last() == start + 7


def test_changes_are_audited_once_per_batch(csam_a: HashList) -> None:
    entry_add(hash_list=csam_a, items=[EntryInput("md5", md5()) for _ in range(3)], actor=ALICE)
    with scopes_disabled():
        event = AuditEvent.objects.get(action="entries.added")
    assert event.metadata == {"added": 3, "already_present": 0, "rejected": 0}
    assert event.target_id == csam_a.public_id


def test_deleting_a_list_tombstones_every_entry(org_a: Organization, a_scope: None) -> None:
    extra = services.list_create(org=org_a, name="Extra", category="se", actor=ALICE)
    entry_add(hash_list=extra, items=[EntryInput("md5", md5()) for _ in range(4)], actor=ALICE)
    assert services.list_delete(hash_list=extra, reason="merged", actor=ALICE) == 4
    assert not Entry.objects.filter(hash_list=extra, removed_seq__isnull=True).exists()
    extra.refresh_from_db()
    assert extra.deleted_at is not None
    with pytest.raises(ServiceError) as error:
        entry_add(hash_list=extra, items=[EntryInput("md5", md5())], actor=ALICE)
    assert error.value.code == "list_deleted"


def test_the_own_csam_and_se_lists_cannot_be_deleted(csam_a: HashList) -> None:
    with pytest.raises(ServiceError) as error:
        services.list_delete(hash_list=csam_a, reason="", actor=ALICE)
    assert error.value.code == "default_list"


@pytest.mark.parametrize(
    ("name", "category", "code"),
    [
        ("", "csam", "invalid_name"),
        ("x" * 121, "se", "invalid_name"),
        ("CSAM", "csam", "name_taken"),
        ("New", "nsfw", "invalid_category"),
    ],
)
def test_list_creation_rejects_bad_input(
    org_a: Organization, a_scope: None, name: str, category: str, code: str
) -> None:
    with pytest.raises(ServiceError) as error:
        services.list_create(org=org_a, name=name, category=category, actor=ALICE)
    assert error.value.code == code


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_commit_in_sequence_order_and_a_reader_sees_every_change_once() -> None:
    """Two threads add while a reader polls `seq > last seen`: nothing skipped or repeated."""
    from tests.factories import OrganizationFactory

    org = OrganizationFactory.create(slug="concurrent")
    with scope(organization=org.pk):
        target = HashList.objects.get(organization=org, category="csam")
    per_writer, batches = 40, 10
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with scope(organization=org.pk):
                for _ in range(batches):
                    entry_add(
                        hash_list=target,
                        items=[EntryInput("md5", md5()) for _ in range(per_writer // batches)],
                        actor=ALICE,
                    )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    seen: list[int] = []
    done = threading.Event()

    def reader() -> None:
        last = 0
        try:
            while True:
                finished = done.is_set()
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT added_seq FROM lists_entry WHERE added_seq > %s ORDER BY added_seq",
                        [last],
                    )
                    batch = [row[0] for row in cursor.fetchall()]
                seen.extend(batch)
                if batch:
                    last = batch[-1]
                if finished:
                    break
        finally:
            connection.close()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert errors == []
    assert len(seen) == 2 * per_writer
    assert len(set(seen)) == len(seen)
    with scope(organization=org.pk):
        assert sorted(seen) == sorted(
            Entry.objects.filter(hash_list=target).values_list("added_seq", flat=True)
        )


def test_the_list_counters_always_equal_a_real_count(csam_a: HashList) -> None:
    from django.db.models import Count

    from lists.selectors import list_stats

    values = [pdq() for _ in range(6)]
    entry_add(hash_list=csam_a, items=[EntryInput("pdq", v) for v in values], actor=ALICE)
    entry_add(hash_list=csam_a, items=[EntryInput("md5", md5()) for _ in range(3)], actor=ALICE)
    entry_remove(
        hash_list=csam_a, items=[EntryInput("pdq", v) for v in values[:2]], reason="", actor=ALICE
    )
    entry_add(hash_list=csam_a, items=[EntryInput("pdq", values[0])], actor=ALICE)
    csam_a.refresh_from_db()
    real = dict(
        Entry.objects.filter(hash_list=csam_a, removed_seq__isnull=True)
        .values_list("hash__signal_type")
        .annotate(n=Count("id"))
    )
    stats = list_stats(lists=[csam_a])[csam_a.pk]
    assert stats.by_type == real == {"pdq": 5, "md5": 3}
    assert stats.size == 8
    assert stats.last_change is not None
