"""Community sharing, end to end in a real browser: share anonymously, subscribe, dispute, answer.

Alice owns org A and shares one of its lists anonymously through the list's visibility page.
Charlie owns org B (in a browser context of his own): he finds the list in the community
catalogue as from an anonymous member, subscribes, and disputes one of its entries without
revealing who he is. Alice sees the dispute on her list from "a member organisation" and rejects
it with a note; Charlie reads the outcome and the note. Every hash is random.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

import pytest
from django_scopes import scope, scopes_disabled
from playwright.sync_api import Page, expect

from hub.audit import Actor
from hub.models import Organization, User
from lists import services as list_services
from lists.models import HashList
from sharing.models import Dispute
from sharing.services import anonymous_publish
from tests.browser.helpers import ARTIFACTS, log_in, submit, watch_for_problems
from tests.factories import PASSWORD, OrganizationFactory

if TYPE_CHECKING:
    pass

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Org A's identifying strings: none may reach org B while A's list is anonymous.
A_NAME = "Quillfeather Trust Desk"
A_SLUG = "quillfeather"
# Org B's: none may reach org A, because Charlie does not reveal who disputes.
B_NAME = "Borealis Harbour Safety"
B_SLUG = "borealis-harbour"
LIST_NAME = "Escalations"
REJECTION_NOTE = "Reviewed twice by two analysts: the entry stays."


@pytest.fixture
def org_a(db: None) -> Organization:
    return OrganizationFactory.create(name=A_NAME, slug=A_SLUG)


@pytest.fixture
def org_b(db: None) -> Organization:
    return OrganizationFactory.create(name=B_NAME, slug=B_SLUG)


@pytest.fixture
def hashes() -> list[str]:
    return [secrets.token_hex(16) for _ in range(3)]


@pytest.fixture
def private_list(org_a: Organization, hashes: list[str]) -> HashList:
    """Org A's list, still private, holding three random MD5s."""
    actor = Actor(system="test")
    with scope(organization=org_a.pk):
        hash_list = list_services.list_create(
            org=org_a, name=LIST_NAME, category="csam", actor=actor
        )
        list_services.entry_add(
            hash_list=hash_list,
            items=[list_services.EntryInput("md5", h) for h in hashes],
            actor=actor,
        )
    return hash_list


def sidebar(page: Page, name: str) -> None:
    page.locator("nav.sidebar").get_by_role("link", name=name, exact=True).click()


def assert_absent(page: Page, *strings: str) -> None:
    html = page.content()
    for string in strings:
        assert string not in html, f"{string!r} appears on {page.url}"


def test_an_anonymous_list_is_shared_subscribed_to_disputed_and_the_dispute_rejected(
    page: Page,
    page_b: Page,
    alice: User,
    charlie: User,
    private_list: HashList,
    hashes: list[str],
) -> None:
    page_a = page
    problems_a = watch_for_problems(page_a)
    problems_b = watch_for_problems(page_b)
    a_identity = (A_NAME, A_SLUG, alice.email)
    b_identity = (B_NAME, B_SLUG, charlie.email)
    disputed = hashes[1]

    # 1. Alice opens her list from the Lists page: it is private.
    log_in(page_a, alice.email, PASSWORD)
    expect(page_a).to_have_url(re.compile(rf"/o/{A_SLUG}/$"))
    sidebar(page_a, "Lists")
    page_a.locator("main").get_by_role("link", name=LIST_NAME, exact=True).click()
    expect(page_a.locator("main h1")).to_contain_text(LIST_NAME)
    sharing = page_a.locator("#sharing")
    expect(sharing.locator(".badge")).to_have_text("Private")
    expect(sharing).to_contain_text(f"Only {A_NAME} sees and matches this list.")

    # 2. Its visibility page explains each choice; Anonymous without the confirmation is refused.
    sharing.get_by_role("link", name="Change who sees it").click()
    expect(page_a).to_have_url(re.compile(r"/community/lists/[^/]+/visibility/$"))
    expect(page_a.locator("main h1")).to_have_text(f"Who sees “{LIST_NAME}”")
    change = page_a.locator("#change")
    expect(change).to_contain_text("shown as from an anonymous member")
    change.get_by_role("radio", name="Anonymous").check()
    confirm = change.get_by_role(
        "checkbox", name="I have read what the community will and will not see with this choice."
    )
    expect(confirm).not_to_be_checked()
    with page_a.expect_response(lambda response: response.request.method == "POST") as refused:
        submit(page_a, "Change visibility")
    assert refused.value.status == 400
    expect(page_a.locator("#change")).to_contain_text("Tick the box to confirm the change.")
    expect(page_a.locator("#current .badge")).to_have_text("Private")
    with scopes_disabled():
        private_list.refresh_from_db()
    assert private_list.visibility == "private"

    # The refused form keeps the choice; ticking the box lets it through.
    # (Locators are lazy: ``change`` and ``confirm`` now find the re-rendered form.)
    expect(change.get_by_role("radio", name="Anonymous")).to_be_checked()
    confirm.check()
    submit(page_a, "Change visibility")
    expect(page_a).to_have_url(re.compile(rf"/o/{A_SLUG}/lists/{private_list.public_id}/$"))
    expect(page_a.locator("main .messages")).to_contain_text(f"“{LIST_NAME}” is now anonymous.")
    sharing = page_a.locator("#sharing")
    expect(sharing.locator(".badge")).to_have_text("Anonymous")
    expect(sharing).to_contain_text("see this list from an anonymous member")
    with scopes_disabled():
        private_list.refresh_from_db()
    assert private_list.visibility == "anonymous"
    # Others see an anonymous list from the next publication on (beat runs it every few minutes).
    anonymous_publish()

    # 3. Charlie finds it in the community catalogue, from an anonymous member.
    log_in(page_b, charlie.email, PASSWORD)
    expect(page_b).to_have_url(re.compile(rf"/o/{B_SLUG}/$"))
    sidebar(page_b, "Community")
    expect(page_b.locator("main h1")).to_have_text("Community lists")
    row = page_b.locator("table.catalogue tbody tr", has_text=LIST_NAME)
    expect(row).to_have_count(1)
    expect(row.locator(".contributor")).to_have_text("Anonymous member")
    expect(row.locator("td.num").first).to_have_text("3")
    expect(row.locator(".subscription")).to_contain_text("not subscribed")
    assert_absent(page_b, *a_identity)

    # 4. He subscribes.
    row.get_by_role("button", name="Subscribe", exact=True).click()
    expect(page_b.locator("main .messages")).to_contain_text(
        f"Subscribed to “{LIST_NAME}”: it is matched from now on."
    )
    row = page_b.locator("table.catalogue tbody tr", has_text=LIST_NAME)
    expect(row.locator(".subscription .badge")).to_have_text("subscribed")
    expect(row.get_by_role("button", name="Unsubscribe", exact=True)).to_be_visible()
    expect(row.locator("td.num").nth(1)).to_have_text("1")
    assert_absent(page_b, *a_identity)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page_b.screenshot(path=ARTIFACTS / "community-catalogue.png", full_page=True)

    # 5. He opens the list and disputes one entry, without revealing his organisation.
    row.get_by_role("link", name=LIST_NAME, exact=True).click()
    expect(page_b).to_have_url(re.compile(rf"/o/{B_SLUG}/community/{private_list.public_id}/$"))
    expect(page_b.locator(".contributor")).to_contain_text("Anonymous member")
    entries = page_b.locator("#entries tbody tr")
    expect(entries).to_have_count(3)
    assert_absent(page_b, *a_identity)
    entry = page_b.locator("#entries tbody tr", has_text=disputed)
    entry.get_by_role("link", name="Dispute").click()
    expect(page_b).to_have_url(re.compile(rf"/o/{B_SLUG}/disputes/new/{private_list.public_id}/"))
    expect(page_b.locator("main h1")).to_have_text("Dispute an entry")
    expect(page_b.locator("main .stats")).to_contain_text("Anonymous member")
    # The entry's type and value come filled in from the link.
    expect(page_b.locator("select[name=type]")).to_have_value("md5")
    expect(page_b.locator("input[name=value]")).to_have_value(disputed)
    assert_absent(page_b, *a_identity)
    page_b.get_by_role("radio", name="Wrong category").check()
    page_b.locator("textarea[name=note]").fill("This looks like SE rather than CSAM.")
    expect(
        page_b.get_by_role("checkbox", name="Show our organisation's name to the list's owner")
    ).not_to_be_checked()
    submit(page_b, "Send dispute")
    expect(page_b.locator("main .messages")).to_contain_text(
        "Your dispute was sent to the list's owner."
    )
    expect(page_b.locator("main h1 .badge")).to_have_text("Open")
    expect(page_b.locator("main")).to_contain_text(
        "The owner sees “A member organisation”, not our name."
    )
    assert_absent(page_b, *a_identity)
    with scopes_disabled():
        dispute = Dispute.objects.select_related("hash").get()
    assert str(dispute.hash) == f"md5:{disputed}"
    assert dispute.reason == "wrong_category"
    assert dispute.reveal is False

    # 6. Alice sees it on her shared list, from "A member organisation", and rejects it.
    sidebar(page_a, "Disputes")
    page_a.get_by_role(
        "link", name=re.compile(r"^Disputes on our shared lists \(1 open\)$")
    ).click()
    received = page_a.locator("table.disputes.received tbody tr")
    expect(received).to_have_count(1)
    expect(received).to_contain_text(LIST_NAME)
    expect(received).to_contain_text(disputed)
    expect(received).to_contain_text("Wrong category")
    expect(received).to_contain_text("This looks like SE rather than CSAM.")
    expect(received).to_contain_text("A member organisation")
    expect(received.locator(".badge.status-open")).to_have_text("Open")
    assert_absent(page_a, *b_identity)
    received.get_by_role("link", name=disputed).click()
    expect(page_a).to_have_url(re.compile(rf"/o/{A_SLUG}/disputes/{dispute.public_id}/$"))
    expect(page_a.locator("main .stats")).to_contain_text("A member organisation")
    assert_absent(page_a, *b_identity)
    page_a.get_by_label("Why the entry stays (the disputer reads this)").fill(REJECTION_NOTE)
    submit(page_a, "Reject the dispute")
    expect(page_a.locator("main .messages")).to_contain_text(
        "The dispute was rejected; the disputer will see your note."
    )
    expect(page_a.locator("main h1 .badge")).to_have_text("Rejected by the owner")
    expect(page_a.locator("main")).to_contain_text(REJECTION_NOTE)
    expect(page_a.locator("#resolve")).to_have_count(0)
    assert_absent(page_a, *b_identity)
    page_a.screenshot(path=ARTIFACTS / "dispute-rejected.png", full_page=True)

    # 7. Charlie reads the outcome and the note on his disputes page.
    sidebar(page_b, "Disputes")
    raised = page_b.locator("table.disputes.raised tbody tr")
    expect(raised).to_have_count(1)
    expect(raised).to_contain_text(LIST_NAME)
    expect(raised).to_contain_text("Anonymous member")
    expect(raised.locator(".badge.status-rejected")).to_have_text("Rejected by the owner")
    expect(raised.locator("td.note")).to_have_text(REJECTION_NOTE)
    assert_absent(page_b, *a_identity)
    raised.get_by_role("link", name=disputed).click()
    expect(page_b.locator("main h1 .badge")).to_have_text("Rejected by the owner")
    expect(page_b.locator("main")).to_contain_text(
        f"The owner\N{RIGHT SINGLE QUOTATION MARK}s note: {REJECTION_NOTE}"
    )
    assert_absent(page_b, *a_identity)

    with scopes_disabled():
        dispute.refresh_from_db()
    assert dispute.status == "rejected"
    assert dispute.resolution_note == REJECTION_NOTE
    assert problems_a == []
    assert problems_b == []
