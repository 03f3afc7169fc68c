"""The review queue as an analyst uses it, in a real browser (issue 19).

Alice owns org A. She ticks two detections in the queue and confirms them in one action; "select
all" ticks every row of the page. On one detection's page she moves with the keyboard (j to the
older one), finds that typing "d" in the note does nothing, and dismisses with the "d" key. Every
hash is random.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django_scopes import scopes_disabled
from playwright.sync_api import Page, expect

from hub.models import AuditEvent, Organization, User
from matching.models import Detection
from tests.browser.helpers import log_in, watch_for_problems
from tests.factories import PASSWORD
from tests.matching.test_review import make_detection

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

T0 = datetime(2030, 5, 6, 12, 0, tzinfo=UTC)


def status_of(detection: Detection) -> str:
    with scopes_disabled():
        return Detection.objects.get(pk=detection.pk).status


def test_alice_confirms_two_detections_at_once_and_reviews_one_by_keyboard(
    page: Page, alice: User, org_a: Organization
) -> None:
    problems = watch_for_problems(page)
    oldest, middle, newest = (
        make_detection(org_a, created=T0 + timedelta(minutes=n), content_ref=f"item-{n}")
        for n in range(3)
    )
    log_in(page, alice.email, PASSWORD)

    # The queue: select all ticks every row, then two are chosen by hand and confirmed.
    page.goto("/o/org-a/detections/")
    rows = page.locator('input[name="detection"]')
    expect(rows).to_have_count(3)
    page.locator("[data-select-all]").check()
    for index in range(3):
        expect(rows.nth(index)).to_be_checked()
    page.locator("[data-select-all]").uncheck()
    page.locator(f'input[name="detection"][value="{newest.public_id}"]').check()
    page.locator(f'input[name="detection"][value="{middle.public_id}"]').check()
    expect(page.locator("[data-selected-count]")).to_have_text("2 selected:")
    page.locator(".bulk-actions").get_by_role("button", name="Confirm", exact=True).click()

    expect(page.locator("body")).to_contain_text("Confirmed 2 detections.")
    assert (status_of(newest), status_of(middle), status_of(oldest)) == (
        "confirmed",
        "confirmed",
        "new",
    )
    with scopes_disabled():
        confirmed = set(
            AuditEvent.objects.filter(organization=org_a, action="detection.confirmed").values_list(
                "target_id", flat=True
            )
        )
    assert confirmed == {newest.public_id, middle.public_id}

    # One detection: j goes to the older one; a "d" typed in the note is only text.
    page.goto(f"/o/org-a/detections/{middle.public_id}/")
    expect(page.locator("#review-shortcuts")).to_contain_text("dismiss")
    page.keyboard.press("j")
    expect(page).to_have_url(re.compile(rf"/detections/{oldest.public_id}/$"))
    page.locator("#review-note").fill("")
    page.locator("#review-note").press("d")
    expect(page.locator("#review-note")).to_have_value("d")
    assert status_of(oldest) == "new"
    page.locator("#review-note").blur()
    page.keyboard.press("d")

    expect(page.locator("body")).to_contain_text("Dismissed.")
    assert status_of(oldest) == "dismissed"
    assert problems == []
