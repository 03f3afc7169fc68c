"""The export equals what matches, after any sequence of changes through any entry point.

DESIGN.md invariant 8: replaying ``GET /api/v1/export`` from the start (or from any cursor given
out earlier, on top of what was replayed up to it) yields exactly the (list, hash) pairs that
``POST /api/v1/match`` matches against, for every organisation, whatever happened before: entries
added and removed through the API, the services and ``importhashes``; lists shared, unshared and
deleted; subscriptions by list and by category, with opt-outs; organisations created approved
(``createorg --approve``), approved and suspended; sources registered (``addsource``), fetched
(``fetchsource``, with upstream additions and deletions), opened to all or gated, and
entitlements granted and revoked; match policies turning sources, lists and categories off and
on, and single entries disabled and their disables ended. And the reconciler finds nothing to
repair.

Hypothesis draws the sequences (derandomized, so CI runs the same ones every time); each step is
checked, so a failure names the shortest sequence and the step that broke it.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import secrets
import tempfile
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone
from django_scopes import scope, scopes_disabled
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.api_auth import ApiKeyThrottle
from hub.audit import Actor
from hub.models import Organization
from hub.services import organization_create, organization_set_approved
from lists import services as list_services
from lists.models import HashList, Source
from sharing import policy, services
from sharing.services import access_drift
from tests.lists.feed_fixtures import Reply, Upstream
from tests.matching.test_export import replay as export_replay
from tests.matching.test_match_api import random_pdq
from tests.sharing.test_access import api

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="property test")
_names = itertools.count(1)


@pytest.fixture(autouse=True)
def _no_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each check replays every member's export in small pages: far more than 600 a minute.
    monkeypatch.setattr(ApiKeyThrottle, "THROTTLE_RATES", {"api_key": "1000000/min"})


def command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@dataclass
class Member:
    org: Organization
    client: Client
    lists: list[HashList]
    # Cursors this member was given after earlier steps, with what it had replayed up to them.
    cursors: list[tuple[str, frozenset[tuple[str, str, str]]]] = field(default_factory=list)


@dataclass
class Feed:
    source: Source
    path: str
    md5s: list[str]


@dataclass
class World:
    """The organisations, lists, sources and hashes of one example."""

    upstream: Upstream
    values: set[tuple[str, str]]
    members: list[Member] = field(default_factory=list)
    feeds: list[Feed] = field(default_factory=list)

    def new_member(self, *, approved: bool, by_command: bool = False) -> Member:
        n = next(_names)
        if by_command:
            args = ["createorg", "--name", f"Member {n}", "--slug", f"member-{n}"]
            command(*args, *(["--approve"] if approved else []))
            org = Organization.objects.get(slug=f"member-{n}")
        else:
            org = organization_create(
                name=f"Member {n}", slug=f"member-{n}", owner=None, actor=SYSTEM, approved=approved
            )
        with scope(organization=org.pk):
            lists = list(HashList.objects.filter(organization=org).order_by("category"))
        member = Member(org=org, client=api(org), lists=lists)
        self.members.append(member)
        return member

    def all_lists(self) -> list[HashList]:
        return [hl for m in self.members for hl in m.lists]

    def new_value(self, kind: int) -> tuple[str, str]:
        pair = ("pdq", random_pdq()) if kind % 2 else ("md5", secrets.token_hex(16))
        self.values.add(pair)
        return pair


def pick(items: list[Any], n: int) -> Any:
    return items[n % len(items)]


# --- the steps: each takes the world and two drawn numbers ------------------------------------


def add_by_api(world: World, a: int, b: int) -> None:
    hash_list = pick(world.all_lists(), a)
    owner = next(m for m in world.members if m.org.pk == hash_list.organization_id)
    values = [world.new_value(b + i) for i in range(1 + b % 3)]
    # Sometimes a hash another list holds already: the merged set keeps one.
    if b % 4 == 0 and world.values:
        values.append(sorted(world.values)[b % len(world.values)])
    response = owner.client.post(
        f"/api/v1/lists/{hash_list.public_id}/entries",
        {"entries": [{"type": t, "value": v} for t, v in values]},
        content_type="application/json",
    )
    assert response.status_code in (200, 404), response.content  # 404: a deleted list


def remove_by_api(world: World, a: int, b: int) -> None:
    if not world.values:
        return
    hash_list = pick(world.all_lists(), a)
    owner = next(m for m in world.members if m.org.pk == hash_list.organization_id)
    signal_type, value = sorted(world.values)[b % len(world.values)]
    response = owner.client.post(
        f"/api/v1/lists/{hash_list.public_id}/entries/remove",
        {"entries": [{"type": signal_type, "value": value}]},
        content_type="application/json",
    )
    assert response.status_code in (200, 404), response.content


def import_by_command(world: World, a: int, b: int) -> None:
    member = pick(world.members, a)
    hash_list = pick(member.lists, b)
    if hash_list.deleted_at is not None:
        return
    md5s = [world.new_value(0)[1] for _ in range(1 + b % 3)]
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as file:
        file.write("\n".join(md5s) + "\n")
        file.flush()
        command(
            "importhashes", "--org", member.org.slug, "--list", hash_list.public_id,
            "--type", "md5", file.name,
        )  # fmt: skip


def share(world: World, a: int, b: int) -> None:
    hash_list = pick(world.all_lists(), a)
    owner = next(m for m in world.members if m.org.pk == hash_list.organization_id)
    visibility = pick(["private", "open", "anonymous"], b)
    response = owner.client.patch(
        f"/api/v1/lists/{hash_list.public_id}",
        {"visibility": visibility},
        content_type="application/json",
    )
    # 403: an unapproved organisation may not share; 404: a deleted list.
    assert response.status_code in (200, 403, 404), response.content


def subscribe(world: World, a: int, b: int) -> None:
    member = pick(world.members, a)
    hash_list = pick(world.all_lists(), b)
    method = member.client.put if b % 3 else member.client.delete
    response = method(f"/api/v1/lists/{hash_list.public_id}/subscription")
    # 404: not in the caller's catalogue (its own, private, deleted); 403: not approved.
    assert response.status_code in (200, 204, 403, 404), response.content


def subscribe_category(world: World, a: int, b: int) -> None:
    member = pick(world.members, a)
    category = pick(["csam", "se"], b)
    method = member.client.put if b % 3 else member.client.delete
    response = method(f"/api/v1/subscriptions/categories/{category}")
    assert response.status_code in (200, 204, 403), response.content


def approve(world: World, a: int, b: int) -> None:
    member = pick(world.members, a)
    organization_set_approved(org=member.org, approved=bool(b % 3), actor=SYSTEM)


def create_org(world: World, a: int, b: int) -> None:
    world.new_member(approved=bool(a % 3), by_command=bool(b % 2))


def delete_list(world: World, a: int, b: int) -> None:
    member = pick(world.members, a)
    with scope(organization=member.org.pk):
        hash_list = list_services.list_create(
            org=member.org, name=f"Extra {next(_names)}", category=pick(["csam", "se"], b),
            actor=SYSTEM,
        )  # fmt: skip
    member.lists.append(hash_list)
    if b % 2:  # a list with entries, shared and subscribed to, then deleted
        add_by_api(world, len(world.all_lists()) - 1, b)
        share(world, len(world.all_lists()) - 1, 1)
        subscribe(world, a + 1, len(world.all_lists()) - 1)
        with scope(organization=member.org.pk):
            list_services.list_delete(hash_list=hash_list, reason="test", actor=SYSTEM)
        hash_list.refresh_from_db()


def add_source(world: World, a: int, b: int) -> None:
    n = next(_names)
    path = f"/feed-{n}.csv"
    md5s = [world.new_value(0)[1] for _ in range(2 + a % 3)]
    world.upstream.routes[path] = Reply(_csv(md5s))
    access = "all" if b % 2 else "granted"
    command(
        "addsource", "--name", f"Feed {n}", "--kind", "feed", "--access", access,
        "--url", f"{world.upstream.url}{path}",
    )  # fmt: skip
    world.feeds.append(Feed(Source.objects.get(name=f"Feed {n}"), path, md5s))


def fetch_source(world: World, a: int, b: int) -> None:
    if not world.feeds:
        return
    feed = pick(world.feeds, a)
    if b % 3 == 1 and feed.md5s:
        feed.md5s.pop(b % len(feed.md5s))  # an upstream deletion
    elif b % 3 == 2:
        feed.md5s.append(world.new_value(0)[1])
    world.upstream.routes[feed.path] = Reply(_csv(feed.md5s))
    command("fetchsource", feed.source.name, "--quiet")


def entitle(world: World, a: int, b: int) -> None:
    if not world.feeds:
        return
    feed = pick(world.feeds, a)
    member = pick(world.members, b)
    services.entitlement_set(source=feed.source, org=member.org, granted=bool(b % 2), actor=SYSTEM)


def source_access(world: World, a: int, b: int) -> None:
    if not world.feeds:
        return
    feed = pick(world.feeds, a)
    services.source_access_set(source=feed.source, access=pick(["all", "granted"], b), actor=SYSTEM)
    feed.source.refresh_from_db()


def policy_switch(world: World, a: int, b: int) -> None:
    """A member turns a shared list, a source or a category off or on (its match policy)."""
    member = pick(world.members, a)
    on = bool(b % 2)
    if b % 3 == 0 and world.feeds:
        source_id = pick(world.feeds, b).source.public_id
        body: dict[str, Any] = {"sources": [{"id": source_id, "enabled": on}]}
    elif b % 3 == 1:
        body = {"categories": {pick(["csam", "se"], b // 3): {"enabled": on}}}
    else:
        body = {"lists": [{"id": pick(world.all_lists(), b).public_id, "enabled": on}]}
    response = member.client.put("/api/v1/policy", body, content_type="application/json")
    # 400: a list or source it does not match (or its own list: always matched).
    assert response.status_code in (200, 400), response.content


def disable_entry(world: World, a: int, b: int) -> None:
    """A member stops matching one hash of a list it matches, until next week."""
    if not world.values:
        return
    member = pick(world.members, a)
    signal_type, value = sorted(world.values)[b % len(world.values)]
    lists = [hl for hl in world.all_lists() if hl.deleted_at is None]
    response = member.client.post(
        "/api/v1/policy/disabled-entries",
        {
            "list": pick(lists, a + b).public_id,
            "type": signal_type,
            "value": value,
            "until": (timezone.now() + dt.timedelta(days=7)).isoformat(),
        },
        content_type="application/json",
    )
    # 400: not a hash of a list it matches.
    assert response.status_code in (201, 400), response.content


def end_disables(world: World, a: int, b: int) -> None:
    """The beat job, as if the disables' dates had come."""
    policy.disables_end_due(now=timezone.now() + dt.timedelta(days=8))


def _csv(md5s: list[str]) -> str:
    return "type,value\n" + "".join(f"md5,{value}\n" for value in md5s)


STEPS = [
    add_by_api, remove_by_api, import_by_command, share, subscribe, subscribe_category,
    approve, create_org, delete_list, add_source, fetch_source, entitle, source_access,
    policy_switch, disable_entry, end_disables,
]  # fmt: skip


# --- what is checked after each step -----------------------------------------------------------


Pairs = frozenset[tuple[str, str, str]]


def replay(client: Client, cursor: str = "", start: Pairs = frozenset()) -> tuple[Pairs, str]:
    live, cursor = export_replay(client, cursor, limit=20, start=start)
    return frozenset(live), cursor


def matched(client: Client, values: set[tuple[str, str]]) -> Pairs:
    """(list id, type, value) of every list that matches each known hash exactly."""
    found: set[tuple[str, str, str]] = set()
    ordered = sorted(values)
    for start in range(0, len(ordered), 1000):
        chunk = ordered[start : start + 1000]
        response = client.post(
            "/api/v1/match",
            {"hashes": [{"type": t, "value": v} for t, v in chunk]},
            content_type="application/json",
        )
        assert response.status_code == 200, response.content
        for result in response.json()["results"]:
            for hit in result["matches"]:
                if hit["matched_value"] == result["value"]:
                    found.add((hit["list"]["id"], result["type"], result["value"]))
    return frozenset(found)


def check(world: World, step: str) -> None:
    for member in world.members:
        live, cursor = replay(member.client)
        assert live == matched(member.client, world.values), (
            f"after {step}: the export of {member.org.slug} differs from what it matches"
        )
        for earlier, seen in member.cursors:
            resumed, _ = replay(member.client, earlier, seen)
            assert resumed == live, f"after {step}: resuming {member.org.slug}'s export differs"
        member.cursors = [*member.cursors[-2:], (cursor, live)]
    with scopes_disabled():
        drift = access_drift()
    assert len(drift) == 0, f"after {step}: the access log drifted from the rules: {drift}"


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(STEPS),
            st.integers(min_value=0, max_value=50),
            st.integers(min_value=0, max_value=50),
        ),
        min_size=1,
        max_size=14,
    )
)
def test_the_export_replays_to_what_matches_after_any_sequence_of_changes(
    upstream: Upstream, steps: list[Any]
) -> None:
    # Each example rolls back what it did (the change sequence too), so examples are independent
    # and Hypothesis can shrink a failure to the few steps that cause it.
    with transaction.atomic():
        world = World(upstream, set())
        world.new_member(approved=True)
        world.new_member(approved=True)
        world.new_member(approved=False)
        add_source(world, 0, 1)  # one source open to all from the start
        check(world, "setup")
        done: list[str] = []
        for number, (step, a, b) in enumerate(steps, 1):
            step(world, a, b)
            done.append(f"{step.__name__} {a} {b}")
            check(world, f"step {number} of [{'; '.join(done)}]")
        transaction.set_rollback(True)
