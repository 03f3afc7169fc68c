"""The sharing pages: catalogue, a community list, subscriptions, visibility, impact, staff reveal.

Alice owns org A (which shares), Bob is a viewer in org A, Charlie owns org B (the subscriber),
Steve is hub staff. Hashes are random: no real material.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import secrets
from typing import Any

import pytest
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization, User
from hub.permissions import Role
from hub.services import organization_set_approved
from lists import services as list_services
from lists.models import HashList
from lists.services import EntryInput
from sharing import selectors, services
from sharing.models import SharingPreferences, Subscription
from sharing.views import ImpactChart, tick_step
from tests.conftest import _member, login
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")


# --- helpers ------------------------------------------------------------------------------------


def new_list(
    org: Organization, name: str, category: str = "csam", description: str = ""
) -> HashList:
    with scope(organization=org.pk):
        return list_services.list_create(
            org=org, name=name, category=category, description=description, actor=SYSTEM
        )


def add(hash_list: HashList, *items: EntryInput, by: User | None = None) -> None:
    actor = Actor(user=by) if by else SYSTEM
    with scope(organization=hash_list.organization_id):
        result = list_services.entry_add(hash_list=hash_list, items=items, actor=actor)
    assert not result.errors, result.errors


def md5() -> str:
    return secrets.token_hex(16)


def share(hash_list: HashList, visibility: str = "open") -> None:
    """Share the list; an anonymous one as others see it after the next publication."""
    with scope(organization=hash_list.organization_id):
        services.list_visibility_set(hash_list=hash_list, visibility=visibility, actor=SYSTEM)
    if visibility == "anonymous":
        services.anonymous_publish()


def subscribed_pairs(org: Organization) -> set[int]:
    """The list pks ``org`` has community access to now."""
    return {list_pk for _, list_pk in selectors.access_pairs(orgs=[org.pk])}


def own_default(org: Organization, category: str = "csam") -> HashList:
    with scope(organization=org.pk):
        return HashList.objects.get(organization=org, category=category, is_default=True)


def text(response: Any) -> str:
    return response.content.decode()


def reload(hash_list: HashList) -> HashList:
    with scopes_disabled():
        return HashList.objects.get(pk=hash_list.pk)


def audit_actions(org: Organization) -> list[str]:
    with scopes_disabled():
        return list(
            AuditEvent.objects.filter(organization=org)
            .order_by("id")
            .values_list("action", flat=True)
        )


def shown_values(response: Any) -> list[str]:
    return re.findall(r'<code class="hash">([0-9a-f]+)</code>', text(response))


def next_link(response: Any) -> str | None:
    found = re.search(r'href="(\?[^"]*)" rel="next"', text(response))
    return html.unescape(found.group(1)) if found else None


@pytest.fixture
def org_c(db: None) -> Organization:
    return OrganizationFactory.create(name="Cinder Open Collective", slug="cinder")


# --- the catalogue ------------------------------------------------------------------------------


def test_the_catalogue_names_open_contributors_and_hides_anonymous_ones(
    org_a: Organization, alice: User, org_c: Organization, charlie_client: Client
) -> None:
    anonymous = new_list(org_a, "Quiet escalations", description="hashes from escalations")
    add(anonymous, EntryInput("md5", md5()), EntryInput("md5", md5()), by=alice)
    share(anonymous, "anonymous")
    open_list = new_list(org_c, "Cinder shared SE", category="se")
    add(open_list, EntryInput("md5", md5()))
    share(open_list, "open")

    response = charlie_client.get("/o/org-b/community/")

    assert response.status_code == 200
    page = text(response)
    assert "Quiet escalations" in page
    assert "Cinder shared SE" in page
    assert "Cinder Open Collective" in page  # an open list names its contributor
    assert "Anonymous member" in page
    # Nothing of the anonymous owner: its name, slug, people, the list's own ids are fine.
    for secret in ("Org A", "org-a", "alice@example.test"):
        assert secret not in page
    assert f"/o/org-b/community/{anonymous.public_id}/" in page


def test_the_catalogue_leaves_out_private_lists_and_own_lists(
    org_a: Organization, org_b: Organization, charlie_client: Client, alice_client: Client
) -> None:
    new_list(org_a, "Kept to ourselves")
    shared = new_list(org_a, "Given to all")
    share(shared)
    b_shared = new_list(org_b, "From B")
    share(b_shared)

    b_page = text(charlie_client.get("/o/org-b/community/"))
    a_page = text(alice_client.get("/o/org-a/community/"))

    assert "Kept to ourselves" not in b_page
    assert "Given to all" in b_page
    assert "From B" not in b_page  # B's own list is not in B's catalogue
    assert "From B" in a_page
    assert "Given to all" not in a_page


def test_the_catalogue_filters_by_category(org_a: Organization, charlie_client: Client) -> None:
    share(new_list(org_a, "Alpha list", "csam"))
    share(new_list(org_a, "Beta list", "se"))

    response = charlie_client.get("/o/org-b/community/?category=se")

    assert "Beta list" in text(response)
    assert "Alpha list" not in text(response)
    assert charlie_client.get("/o/org-b/community/?category=nope").status_code == 400


def test_the_catalogue_shows_size_by_type_and_subscriber_count(
    org_a: Organization, org_c: Organization, charlie_client: Client
) -> None:
    hash_list = new_list(org_a, "Counted")
    add(hash_list, EntryInput("md5", md5()), EntryInput("md5", md5()))
    add(hash_list, EntryInput("sha1", secrets.token_hex(20)))
    share(hash_list)
    with scope(organization=org_c.pk):
        services.subscription_list_set(
            org=org_c, public_id=hash_list.public_id, subscribed=True, actor=SYSTEM
        )

    page = text(charlie_client.get("/o/org-b/community/"))

    row = page[page.index("Counted") :].split("</tr>")[0]
    assert '<td class="num">3</td>' in row
    assert "md5 2" in row
    assert "sha1 1" in row
    assert '<td class="num">1</td>' in row  # org C subscribes


def test_an_unapproved_org_sees_an_explanation_and_no_lists(
    org_a: Organization, org_b: Organization, charlie_client: Client
) -> None:
    share(new_list(org_a, "Shared with approved members"))
    organization_set_approved(org=org_b, approved=False, actor=SYSTEM)

    response = charlie_client.get("/o/org-b/community/")

    assert response.status_code == 200
    assert "awaiting approval" in text(response)
    assert "staff must approve" in text(response)
    assert "Shared with approved members" not in text(response)


# --- subscriptions ------------------------------------------------------------------------------


def test_subscribing_and_unsubscribing_one_list(
    org_a: Organization, org_b: Organization, charlie_client: Client
) -> None:
    hash_list = new_list(org_a, "Shared")
    share(hash_list)
    url = f"/o/org-b/community/{hash_list.public_id}/subscription/"

    response = charlie_client.post(url, {"subscribed": "1"})

    assert response.status_code == 302
    assert response["Location"] == "/o/org-b/community/"
    assert hash_list.pk in subscribed_pairs(org_b)
    page = text(charlie_client.get("/o/org-b/community/"))
    assert "subscribed</span>" in page
    assert "Unsubscribe" in page

    charlie_client.post(url, {"subscribed": "0"})

    assert hash_list.pk not in subscribed_pairs(org_b)
    assert audit_actions(org_b)[-2:] == ["subscription.added", "subscription.removed"]
    assert "subscription.added" not in audit_actions(org_a)  # the owner never learns who


def test_subscribing_returns_to_the_page_it_came_from_but_never_elsewhere(
    org_a: Organization, charlie_client: Client
) -> None:
    hash_list = new_list(org_a, "Shared")
    share(hash_list)
    url = f"/o/org-b/community/{hash_list.public_id}/subscription/"
    detail = f"/o/org-b/community/{hash_list.public_id}/"

    back = charlie_client.post(url, {"subscribed": "1", "next": detail})
    elsewhere = charlie_client.post(url, {"subscribed": "0", "next": "https://evil.example/"})

    assert back["Location"] == detail
    assert elsewhere["Location"] == "/o/org-b/community/"


def test_subscribing_to_a_private_or_own_list_is_404(
    org_a: Organization, org_b: Organization, charlie_client: Client
) -> None:
    private = new_list(org_a, "Private")
    own = new_list(org_b, "Own")
    share(own)

    for hash_list in (private, own):
        url = f"/o/org-b/community/{hash_list.public_id}/subscription/"
        assert charlie_client.post(url, {"subscribed": "1"}).status_code == 404
    with scopes_disabled():
        assert not Subscription.objects.filter(organization=org_b).exists()


def test_a_category_subscription_includes_a_list_shared_later(
    org_a: Organization, org_b: Organization, charlie_client: Client
) -> None:
    before = new_list(org_a, "Shared before")
    share(before)

    response = charlie_client.post(
        "/o/org-b/community/subscriptions/category/", {"category": "csam", "subscribed": "1"}
    )

    assert response.status_code == 302
    assert before.pk in subscribed_pairs(org_b)
    later = new_list(org_a, "Shared later")
    share(later, "anonymous")
    assert later.pk in subscribed_pairs(org_b)
    page = text(charlie_client.get("/o/org-b/community/"))
    assert "Subscribed to all shared CSAM lists" in page
    assert page.count("via the whole category") == 2
    se_list = new_list(org_a, "Shared SE", "se")
    share(se_list)
    assert se_list.pk not in subscribed_pairs(org_b)


def test_unsubscribing_one_list_of_a_subscribed_category_sticks(
    org_a: Organization, org_b: Organization, charlie_client: Client
) -> None:
    hash_list = new_list(org_a, "Shared")
    share(hash_list)
    charlie_client.post(
        "/o/org-b/community/subscriptions/category/", {"category": "csam", "subscribed": "1"}
    )

    charlie_client.post(
        f"/o/org-b/community/{hash_list.public_id}/subscription/", {"subscribed": "0"}
    )

    assert hash_list.pk not in subscribed_pairs(org_b)
    charlie_client.post(
        "/o/org-b/community/subscriptions/category/", {"category": "csam", "subscribed": "0"}
    )
    assert "Subscribed to all shared CSAM lists" not in text(
        charlie_client.get("/o/org-b/community/")
    )


def test_a_category_subscription_needs_a_valid_category(
    org_b: Organization, charlie_client: Client
) -> None:
    response = charlie_client.post(
        "/o/org-b/community/subscriptions/category/", {"category": "cats", "subscribed": "1"}
    )

    assert response.status_code == 400
    with scopes_disabled():
        assert not Subscription.objects.filter(organization=org_b).exists()


def test_an_unapproved_org_cannot_subscribe(
    org_a: Organization, org_b: Organization, charlie_client: Client
) -> None:
    organization_set_approved(org=org_b, approved=False, actor=SYSTEM)

    response = charlie_client.post(
        "/o/org-b/community/subscriptions/category/",
        {"category": "csam", "subscribed": "1"},
        follow=True,
    )

    assert response.status_code == 200
    assert "must be approved" in text(response)
    with scopes_disabled():
        assert not Subscription.objects.filter(organization=org_b).exists()


def test_a_viewer_reads_the_catalogue_but_cannot_subscribe(
    org_a: Organization, org_b: Organization, bob_client: Client
) -> None:
    hash_list = new_list(org_b, "B shares")
    add(hash_list, EntryInput("md5", md5()))
    share(hash_list)

    catalogue = bob_client.get("/o/org-a/community/")
    detail = bob_client.get(f"/o/org-a/community/{hash_list.public_id}/")
    one = bob_client.post(
        f"/o/org-a/community/{hash_list.public_id}/subscription/", {"subscribed": "1"}
    )
    category = bob_client.post(
        "/o/org-a/community/subscriptions/category/", {"category": "csam", "subscribed": "1"}
    )
    preferences = bob_client.post("/o/org-a/community/preferences/", {"ignore_disputed": "on"})

    assert catalogue.status_code == 200
    assert "B shares" in text(catalogue)
    assert "Subscribe</button>" not in text(catalogue)  # no button the viewer cannot use
    assert detail.status_code == 200
    assert (one.status_code, category.status_code, preferences.status_code) == (403, 403, 403)
    with scopes_disabled():
        assert not Subscription.objects.filter(organization=org_a).exists()
        assert not SharingPreferences.objects.filter(organization=org_a).exists()


def test_the_ignore_disputed_preference_is_saved_and_audited(
    org_b: Organization, charlie_client: Client
) -> None:
    response = charlie_client.post("/o/org-b/community/preferences/", {"ignore_disputed": "on"})

    assert response.status_code == 302
    assert selectors.ignores_disputed(org=org_b)
    assert "sharing.preferences_changed" in audit_actions(org_b)
    checkbox = r'<input[^>]*name="ignore_disputed"[^>]*>'
    assert "checked" in re.findall(checkbox, text(charlie_client.get("/o/org-b/community/")))[0]

    charlie_client.post("/o/org-b/community/preferences/", {})

    assert not selectors.ignores_disputed(org=org_b)
    assert "checked" not in re.findall(checkbox, text(charlie_client.get("/o/org-b/community/")))[0]


# --- one community list -------------------------------------------------------------------------


def test_a_community_list_shows_live_entries_and_nothing_of_the_owner(
    org_a: Organization, alice: User, charlie_client: Client
) -> None:
    hash_list = new_list(org_a, "Anonymous one", description="collected from reports")
    live, gone = md5(), md5()
    add(
        hash_list,
        EntryInput("md5", live, labels=["A1", "secret-tag"], note="seen in ticket 4711"),
        EntryInput("md5", gone),
        by=alice,
    )
    with scope(organization=org_a.pk):
        list_services.entry_remove(
            hash_list=hash_list,
            items=[EntryInput("md5", gone)],
            reason="mistake",
            actor=SYSTEM,
        )
    share(hash_list, "anonymous")

    response = charlie_client.get(f"/o/org-b/community/{hash_list.public_id}/")

    assert response.status_code == 200
    page = text(response)
    assert shown_values(response) == [live]
    assert "collected from reports" in page
    assert "Anonymous member" in page
    for secret in ("Org A", "org-a", "alice@example.test", "secret-tag", "ticket 4711"):
        assert secret not in page, secret
    # The owner's label, as a word: random ids and tokens on the page may contain "A1" by chance.
    assert not re.search(r"\bA1\b", page)
    dispute = f"/o/org-b/disputes/new/{hash_list.public_id}/?type=md5&amp;value={live}"
    assert dispute in page


def test_a_community_list_pages_by_keyset(org_a: Organization, charlie_client: Client) -> None:
    hash_list = new_list(org_a, "Big")
    values = [md5() for _ in range(105)]
    add(hash_list, *(EntryInput("md5", value) for value in values))
    share(hash_list)
    url = f"/o/org-b/community/{hash_list.public_id}/"

    first = charlie_client.get(url)
    link = next_link(first)
    assert link is not None
    second = charlie_client.get(url + link)

    assert len(shown_values(first)) == 100
    assert len(shown_values(second)) == 5
    assert set(shown_values(first)) | set(shown_values(second)) == set(values)
    assert next_link(second) is None
    assert charlie_client.get(url + "?cursor=not-a-cursor").status_code == 400


def test_a_community_list_filters_by_prefix(org_a: Organization, charlie_client: Client) -> None:
    hash_list = new_list(org_a, "Searchable")
    wanted = "ab" + md5()[2:]
    other = "cd" + md5()[2:]
    add(hash_list, EntryInput("md5", wanted), EntryInput("md5", other))
    share(hash_list)

    response = charlie_client.get(f"/o/org-b/community/{hash_list.public_id}/?prefix=ab")

    assert shown_values(response) == [wanted]


def test_a_private_or_missing_list_is_404_to_another_org(
    org_a: Organization, charlie_client: Client
) -> None:
    private = new_list(org_a, "Private")
    add(private, EntryInput("md5", md5()))

    assert charlie_client.get(f"/o/org-b/community/{private.public_id}/").status_code == 404
    assert charlie_client.get("/o/org-b/community/no-such-list/").status_code == 404


def test_a_list_of_an_unapproved_owner_is_404(org_a: Organization, charlie_client: Client) -> None:
    hash_list = new_list(org_a, "Shared")
    share(hash_list)
    organization_set_approved(org=org_a, approved=False, actor=SYSTEM)

    assert charlie_client.get(f"/o/org-b/community/{hash_list.public_id}/").status_code == 404
    assert "Shared" not in text(charlie_client.get("/o/org-b/community/"))


def test_the_owner_previews_its_own_list_as_the_community_sees_it(
    org_a: Organization, alice: User, alice_client: Client
) -> None:
    hash_list = new_list(org_a, "Ours")
    add(hash_list, EntryInput("md5", md5(), note="private note"), by=alice)
    share(hash_list, "anonymous")

    response = alice_client.get(f"/o/org-a/community/{hash_list.public_id}/")

    assert response.status_code == 200
    assert "as other organisations see it" in text(response)
    assert "Anonymous member" in text(response)
    assert "private note" not in text(response)
    assert "alice@example.test" not in text(response).split("<main>")[1]
    assert "/disputes/new/" not in text(response)


# --- visibility ---------------------------------------------------------------------------------


def test_the_visibility_page_explains_every_choice(
    org_a: Organization, alice_client: Client
) -> None:
    hash_list = new_list(org_a, "Mine")

    response = alice_client.get(f"/o/org-a/community/lists/{hash_list.public_id}/visibility/")

    assert response.status_code == 200
    page = html.unescape(text(response))
    for explained in services.VISIBILITY_EXPLAINED.values():
        assert explained in page
    assert 'name="confirm"' in page


def test_changing_visibility_needs_the_confirmation(
    org_a: Organization, alice_client: Client
) -> None:
    hash_list = new_list(org_a, "Mine")
    url = f"/o/org-a/community/lists/{hash_list.public_id}/visibility/"

    refused = alice_client.post(url, {"visibility": "anonymous"})

    assert refused.status_code == 400
    assert "Tick the box to confirm" in text(refused)
    assert reload(hash_list).visibility == "private"

    done = alice_client.post(url, {"visibility": "anonymous", "confirm": "on"})

    assert done.status_code == 302
    assert done["Location"] == f"/o/org-a/lists/{hash_list.public_id}/"
    assert reload(hash_list).visibility == "anonymous"
    assert audit_actions(org_a)[-1] == "list.visibility_changed"


def test_a_viewer_sees_the_visibility_but_cannot_change_it(
    org_a: Organization, bob_client: Client
) -> None:
    hash_list = new_list(org_a, "Mine")
    url = f"/o/org-a/community/lists/{hash_list.public_id}/visibility/"

    page = bob_client.get(url)
    refused = bob_client.post(url, {"visibility": "open", "confirm": "on"})

    assert page.status_code == 200
    assert 'name="confirm"' not in text(page)
    assert refused.status_code == 403
    assert reload(hash_list).visibility == "private"


def test_an_admin_may_change_visibility(org_a: Organization) -> None:
    admin = _member(org_a, "ada@example.test", Role.ADMIN)
    hash_list = new_list(org_a, "Mine")

    response = login(admin).post(
        f"/o/org-a/community/lists/{hash_list.public_id}/visibility/",
        {"visibility": "open", "confirm": "on"},
    )

    assert response.status_code == 302
    assert reload(hash_list).visibility == "open"


def test_another_orgs_list_has_no_visibility_or_impact_page(
    org_a: Organization, charlie_client: Client
) -> None:
    hash_list = new_list(org_a, "A's")
    share(hash_list)
    base = f"/o/org-b/community/lists/{hash_list.public_id}"

    assert charlie_client.get(f"{base}/visibility/").status_code == 404
    assert (
        charlie_client.post(
            f"{base}/visibility/", {"visibility": "private", "confirm": "on"}
        ).status_code
        == 404
    )
    assert charlie_client.get(f"{base}/impact/").status_code == 404
    assert reload(hash_list).visibility == "open"


def test_an_unapproved_org_is_told_it_cannot_share_yet(
    org_a: Organization, alice_client: Client
) -> None:
    organization_set_approved(org=org_a, approved=False, actor=SYSTEM)
    hash_list = new_list(org_a, "Mine")

    response = alice_client.post(
        f"/o/org-a/community/lists/{hash_list.public_id}/visibility/",
        {"visibility": "open", "confirm": "on"},
    )

    assert response.status_code == 403
    assert "must be approved by the hub" in html.unescape(text(response))
    assert reload(hash_list).visibility == "private"


def test_the_list_page_shows_its_visibility_and_links_to_it(
    org_a: Organization, alice_client: Client
) -> None:
    hash_list = new_list(org_a, "Mine")
    share(hash_list, "anonymous")

    page = text(alice_client.get(f"/o/org-a/lists/{hash_list.public_id}/"))

    assert 'id="sharing"' in page
    assert "Anonymous</span>" in page
    assert f"/o/org-a/community/lists/{hash_list.public_id}/visibility/" in page
    assert f"/o/org-a/community/lists/{hash_list.public_id}/impact/" in page


# --- impact and the overview --------------------------------------------------------------------


@pytest.mark.clock
def test_the_impact_page_charts_recorded_matches(
    org_a: Organization, org_b: Organization, alice_client: Client
) -> None:
    hash_list = new_list(org_a, "Shared")
    share(hash_list)
    with scope(organization=org_b.pk):
        services.subscription_list_set(
            org=org_b, public_id=hash_list.public_id, subscribed=True, actor=SYSTEM
        )
    services.impact_record(list_pks=[hash_list.pk, hash_list.pk, hash_list.pk])

    response = alice_client.get(f"/o/org-a/community/lists/{hash_list.public_id}/impact/")

    assert response.status_code == 200
    page = text(response)
    weeks = re.findall(r'data-week="([0-9-]+)" data-matches="(\d+)"', page)
    assert len(weeks) == 12
    assert weeks[-1][1] == "3"
    assert all(count == "0" for _, count in weeks[:-1])
    assert "(3 in all)" in page
    assert "1 organisation matches against it now" in page
    assert "Org B" not in page and "org-b" not in page  # counts only, never who


def test_a_viewer_may_read_the_impact_page(org_a: Organization, bob_client: Client) -> None:
    hash_list = new_list(org_a, "Shared")
    share(hash_list)

    assert (
        bob_client.get(f"/o/org-a/community/lists/{hash_list.public_id}/impact/").status_code == 200
    )


@pytest.mark.clock
def test_the_overview_lists_own_lists_with_subscribers_and_matches(
    org_a: Organization, org_b: Organization, org_c: Organization, alice_client: Client
) -> None:
    shared = new_list(org_a, "Shared widely")
    share(shared, "anonymous")
    for org in (org_b, org_c):
        with scope(organization=org.pk):
            services.subscription_list_set(
                org=org, public_id=shared.public_id, subscribed=True, actor=SYSTEM
            )
    services.impact_record(list_pks=[shared.pk] * 7)

    response = alice_client.get("/o/org-a/community/shared/")

    assert response.status_code == 200
    page = text(response)
    row = page[page.index(f'data-list="{shared.public_id}"') :].split("</tr>")[0]
    assert re.search(r'class="num subscribers">\s*2\s*<', row)
    assert re.search(r'class="num matches">7<', row)
    assert f"/o/org-a/community/lists/{shared.public_id}/impact/" in row
    assert f"/o/org-a/community/lists/{shared.public_id}/visibility/" in row
    # Shared lists come first, then the private ones (the default CSAM and SE lists).
    assert page.index(shared.public_id) < page.index(own_default(org_a).public_id)


def test_the_chart_scale_has_round_ticks() -> None:
    assert [tick_step(peak) for peak in (0, 5, 6, 11, 40, 101)] == [1, 1, 2, 5, 10, 50]
    monday = dt.date(2026, 1, 5)
    chart = ImpactChart.of([(monday + dt.timedelta(weeks=i), i) for i in range(12)])
    # A peak of 11 rounds up to 15 in steps of 5; 192 units of height make 12.8 per match.
    assert [tick.value for tick in chart.ticks] == [0, 5, 10, 15]
    assert chart.total == sum(range(12))
    assert chart.bars[0].height == 0
    assert (chart.bars[-1].height, chart.bars[-1].y) == (140.8, 63.2)
    assert chart.bars[-1].y + chart.bars[-1].height == chart.baseline


# --- staff --------------------------------------------------------------------------------------


def test_only_staff_reach_the_staff_lists_page(
    org_a: Organization, alice_client: Client, staff_client: Client
) -> None:
    hash_list = new_list(org_a, "Shared")
    share(hash_list, "anonymous")

    assert alice_client.get("/staff/lists/").status_code == 404
    assert (
        alice_client.post(
            f"/staff/lists/{hash_list.public_id}/reveal/", {"reason": "curious"}
        ).status_code
        == 404
    )
    assert Client().get("/staff/lists/").status_code == 302
    staff_page = staff_client.get("/staff/lists/")
    assert staff_page.status_code == 200
    assert "Shared" in text(staff_page)
    assert "Org A" not in text(staff_page)  # anonymous: not even staff see it without a reveal
    assert "list.owner_revealed" not in audit_actions(org_a)


def test_looking_a_list_up_shows_it_but_not_its_anonymous_owner(
    org_a: Organization, staff_client: Client
) -> None:
    hash_list = new_list(org_a, "Shared")
    share(hash_list, "anonymous")

    found = staff_client.get(f"/staff/lists/?list={hash_list.public_id}")
    missing = staff_client.get("/staff/lists/?list=nope")

    assert found.status_code == 200
    assert "Reveal owner" in text(found)
    assert "Org A" not in text(found)
    assert missing.status_code == 404


def test_revealing_an_owner_needs_a_reason_and_is_audited_for_the_owner(
    org_a: Organization, alice_client: Client, staff_client: Client
) -> None:
    hash_list = new_list(org_a, "Shared")
    share(hash_list, "anonymous")
    url = f"/staff/lists/{hash_list.public_id}/reveal/"

    refused = staff_client.post(url, {"reason": "   "})

    assert refused.status_code == 400
    assert "Org A" not in text(refused)
    assert "list.owner_revealed" not in audit_actions(org_a)

    revealed = staff_client.post(url, {"reason": "court order 12/2026"})

    assert revealed.status_code == 200
    assert "Owner: <strong>Org A</strong>" in text(revealed)
    assert revealed["Cache-Control"] == "no-store"
    assert audit_actions(org_a)[-1] == "list.owner_revealed"
    audit_page = text(alice_client.get("/o/org-a/audit/"))
    assert "list.owner_revealed" in audit_page
    assert "court order 12/2026" in audit_page
    assert "steve@example.test" in audit_page
    assert staff_client.get(url).status_code == 405
