"""Links from detections to the platform's moderation tool (issue 19): the template's check, the
quoting of content_ref, the settings form (owners and admins, audited), and the link on the
queue, the detection page and in the API.

Alice owns org A, Bob is a viewer in org A, Erin an admin in org A, Charlie owns org B.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import AuditEvent, Organization
from hub.permissions import Role
from matching.review_links import content_link, link_template_set, link_template_validate
from sharing.policy import policy_of
from tests.conftest import _member, login
from tests.matching.test_detections_api import api
from tests.matching.test_review import make_detection

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 5, 6, 12, 0, tzinfo=UTC)
TEMPLATE = "https://moderation.example/item/{content_ref}"
SETTINGS = "/o/org-a/review/settings/"


@pytest.mark.parametrize(
    "text",
    [
        "https://moderation.example/item/",  # no placeholder
        "ftp://moderation.example/{content_ref}",
        "javascript:alert(1)//{content_ref}",
        "https:///{content_ref}",  # no host
        "https://user:pw@moderation.example/{content_ref}",
        "https://moderation.example/{content_ref}/{other}",
        "https://moderation.example/{content_ref} x",
        "https://moderation.example:99999/{content_ref}",
        "https://moderation.example/" + "x" * 500 + "{content_ref}",
    ],
)
def test_it_refuses_a_template_that_is_not_a_safe_link(text: str) -> None:
    with pytest.raises(ServiceError) as refused:
        link_template_validate(text)
    assert refused.value.code == "invalid_link_template"
    assert refused.value.message


def test_it_accepts_http_and_https_templates_and_empty_for_none() -> None:
    assert link_template_validate(f"  {TEMPLATE} ") == TEMPLATE
    assert link_template_validate("http://tool.test/?q={content_ref}&x=1") == (
        "http://tool.test/?q={content_ref}&x=1"
    )
    assert link_template_validate("") == ""


def test_the_content_ref_is_quoted_whole() -> None:
    assert content_link(TEMPLATE, "abc-123") == "https://moderation.example/item/abc-123"
    assert content_link(TEMPLATE, "a/b?c=d#e f&g") == (
        "https://moderation.example/item/a%2Fb%3Fc%3Dd%23e%20f%26g"
    )
    assert content_link("https://t.test/{content_ref}", "//evil.test") == (
        "https://t.test/%2F%2Fevil.test"
    )
    assert content_link("", "abc") is None
    assert content_link(TEMPLATE, "") is None


def test_setting_it_is_audited_once_per_change(org_a: Organization) -> None:
    actor = Actor(system="test")
    assert link_template_set(org=org_a, template=TEMPLATE, actor=actor) == TEMPLATE
    assert link_template_set(org=org_a, template=TEMPLATE, actor=actor) == TEMPLATE
    assert link_template_set(org=org_a, template="", actor=actor) == ""
    with scopes_disabled():
        events = list(
            AuditEvent.objects.filter(organization=org_a, action="policy.link_template_set")
            .order_by("id")
            .values_list("metadata", flat=True)
        )
    assert events == [
        {"previous": "", "template": TEMPLATE},
        {"previous": TEMPLATE, "template": ""},
    ]
    with pytest.raises(ServiceError):
        link_template_set(org=org_a, template="nope", actor=actor)
    assert policy_of(org=org_a).link_template == ""


def test_owners_and_admins_set_it_on_the_settings_page_viewers_read_it(
    alice_client: Client, bob_client: Client, org_a: Organization
) -> None:
    erin = login(_member(org_a, "erin@example.test", Role.ADMIN))
    response = erin.post(SETTINGS, {"link_template": TEMPLATE})
    assert response.status_code == 302
    assert policy_of(org=org_a).link_template == TEMPLATE
    with scopes_disabled():
        [event] = AuditEvent.objects.filter(organization=org_a, action="policy.link_template_set")
    assert event.actor_user is not None and event.actor_user.email == "erin@example.test"

    refused = alice_client.post(SETTINGS, {"link_template": "ftp://x/{content_ref}"})
    assert refused.status_code == 400
    assert "must start with https://" in refused.content.decode()
    assert policy_of(org=org_a).link_template == TEMPLATE

    assert bob_client.post(SETTINGS, {"link_template": ""}).status_code == 403
    page = bob_client.get(SETTINGS).content.decode()
    assert TEMPLATE in page and "<form" not in page.split("<main")[-1].split("</main>")[0]


def test_detections_link_their_content_ref_on_the_pages_and_in_the_api(
    alice_client: Client, org_a: Organization, org_b: Organization
) -> None:
    link_template_set(org=org_a, template=TEMPLATE, actor=Actor(system="test"))
    linked = make_detection(org_a, created=T0, content_ref="post/42?x")
    bare = make_detection(org_a, created=T0)
    theirs = make_detection(org_b, created=T0, content_ref="post/42?x")
    href = "https://moderation.example/item/post%2F42%3Fx"

    queue = alice_client.get("/o/org-a/detections/").content.decode()
    assert f'href="{href}"' in queue
    anchor = queue.split(f'href="{href}"')[1].split(">")[0]
    assert 'rel="noopener noreferrer"' in anchor
    detail = alice_client.get(f"/o/org-a/detections/{linked.public_id}/").content.decode()
    assert f'href="{href}"' in detail

    client = api(org_a)
    body = client.get(f"/api/v1/detections/{linked.public_id}").json()
    assert body["content_link"] == href
    assert client.get(f"/api/v1/detections/{bare.public_id}").json()["content_link"] is None
    listed = {
        d["id"]: d["content_link"] for d in client.get("/api/v1/detections").json()["detections"]
    }
    assert listed == {linked.public_id: href, bare.public_id: None}
    # Org B has no template: its own detection with the same reference has no link.
    assert api(org_b).get(f"/api/v1/detections/{theirs.public_id}").json()["content_link"] is None
