"""Every write path that changes what an organisation matches brings the access log in step.

The defects these tests were written for: a verified source registered with ``addsource --access
all`` and fetched was matched by every approved organisation but absent from their export, both
for organisations that existed before the source and for those made afterwards with
``createorg --approve``; a deleted shared list kept its subscribers' grants.
"""

from __future__ import annotations

import io
import secrets

import pytest
from django.core.management import call_command
from django_scopes import scope, scopes_disabled

from hub.models import Organization
from lists import services as list_services
from lists.models import HashList, Source
from sharing.models import AccessEvent
from sharing.services import access_drift
from tests.lists.feed_fixtures import Reply, Upstream
from tests.matching.test_export import replay
from tests.sharing.test_access import SYSTEM, api, hits, new_list, share, subscribe

pytestmark = pytest.mark.django_db


def command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def verified_feed(upstream: Upstream, md5s: list[str], *, access: str = "all") -> Source:
    upstream.routes["/verified.csv"] = Reply("type,value\n" + "".join(f"md5,{v}\n" for v in md5s))
    command(
        "addsource", "--name", "Hotline", "--kind", "feed", "--access", access,
        "--url", f"{upstream.url}/verified.csv",
    )  # fmt: skip
    command("fetchsource", "Hotline", "--quiet")
    return Source.objects.get(name="Hotline")


def exported_md5s(org: Organization) -> set[str]:
    live, _ = replay(api(org, ["export"]), limit=100)
    return {value for _, signal_type, value in live if signal_type == "md5"}


def no_drift() -> bool:
    with scopes_disabled():
        return len(access_drift()) == 0


def test_a_source_open_to_all_reaches_the_export_of_an_organisation_that_existed_before(
    org_a: Organization, upstream: Upstream
) -> None:
    md5s = [secrets.token_hex(16) for _ in range(3)]
    verified_feed(upstream, md5s)
    client = api(org_a)
    [hit] = hits(client, md5s[0], "md5")
    assert hit["list"]["tier"] == "verified"
    assert exported_md5s(org_a) == set(md5s)
    assert no_drift()


def test_an_organisation_created_approved_by_createorg_exports_the_open_sources(
    upstream: Upstream,
) -> None:
    md5s = [secrets.token_hex(16) for _ in range(3)]
    verified_feed(upstream, md5s)
    command("createorg", "--name", "Late Platform", "--slug", "late", "--approve")
    late = Organization.objects.get(slug="late")
    assert [m["list"]["tier"] for m in hits(api(late), md5s[1], "md5")] == ["verified"]
    assert exported_md5s(late) == set(md5s)
    assert no_drift()


def test_an_organisation_created_unapproved_gains_the_sources_only_when_approved(
    upstream: Upstream,
) -> None:
    md5s = [secrets.token_hex(16)]
    verified_feed(upstream, md5s)
    command("createorg", "--name", "Waiting Platform", "--slug", "waiting")
    waiting = Organization.objects.get(slug="waiting")
    assert hits(api(waiting), md5s[0], "md5") == []
    assert exported_md5s(waiting) == set()
    from hub.services import organization_set_approved

    organization_set_approved(org=waiting, approved=True, actor=SYSTEM)
    assert exported_md5s(waiting) == set(md5s)
    assert no_drift()


def test_an_upstream_deletion_reaches_the_export_as_a_removal(
    org_a: Organization, upstream: Upstream
) -> None:
    md5s = [secrets.token_hex(16) for _ in range(3)]
    verified_feed(upstream, md5s)
    assert exported_md5s(org_a) == set(md5s)
    upstream.routes["/verified.csv"] = Reply(
        "type,value\n" + "".join(f"md5,{v}\n" for v in md5s[1:])
    )
    command("fetchsource", "Hotline", "--quiet")
    assert exported_md5s(org_a) == set(md5s[1:])
    assert hits(api(org_a), md5s[0], "md5") == []


def test_deleting_a_shared_list_revokes_its_subscribers_access(
    org_a: Organization, org_b: Organization
) -> None:
    shared = new_list(org_a, "Shared for a while")
    md5 = secrets.token_hex(16)
    with scope(organization=org_a.pk):
        list_services.entry_add(
            hash_list=shared, items=[list_services.EntryInput("md5", md5)], actor=SYSTEM
        )
    share(shared, "open")
    subscribe(org_b, shared)
    assert exported_md5s(org_b) == {md5}
    with scope(organization=org_a.pk):
        list_services.list_delete(hash_list=shared, reason="retired", actor=SYSTEM)
    with scopes_disabled():
        latest = AccessEvent.objects.filter(organization=org_b, hash_list=shared).latest("seq")
    assert latest.granted is False
    assert exported_md5s(org_b) == set()
    assert hits(api(org_b), md5, "md5") == []
    assert no_drift()


def test_a_gated_source_reaches_only_the_granted_and_a_new_list_of_it_follows(
    org_a: Organization, org_b: Organization, upstream: Upstream
) -> None:
    from sharing.services import entitlement_set

    md5s = [secrets.token_hex(16)]
    source = verified_feed(upstream, md5s, access="granted")
    entitlement_set(source=source, org=org_b, granted=True, actor=SYSTEM)
    assert exported_md5s(org_a) == set()
    assert exported_md5s(org_b) == set(md5s)
    with scopes_disabled():
        # A list made for the source later (as ``source_lists`` does when one is missing) is
        # granted to the entitled organisation at once.
        HashList.objects.filter(source=source, category="se").delete()
        from lists.sources.services import source_lists

        made = source_lists(source)["se"]
        assert AccessEvent.objects.filter(organization=org_b, hash_list=made, granted=True)
        assert not AccessEvent.objects.filter(organization=org_a, hash_list=made)
    assert no_drift()
