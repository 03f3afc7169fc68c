"""Anonymity (DESIGN.md, invariant 3): nothing org B can reach says who owns an anonymous list.

Org A ("Zebulon Quarantine Trust") shares a list anonymously. Everything that identifies A carries
a distinctive marker: its name and slug, its members' e-mail addresses and names, its API key's
name, the labels, notes and provenance of its entries, the ids of its private objects, and its
database row numbers (made distinctive on purpose). Org B subscribes to the list, matches against
it (a detection, a webhook delivery, impact for A), disputes entries (A rejects one with a note and
retracts another), and then requests every URL pattern of the hub, found through Django's URL
resolver (the same discovery as tests/test_permissions.py):

* each pattern with B's own ids, and every pattern that takes a ``list_id`` with A's anonymous
  list; GET and POST for pages, every method its view implements for the API;
* each pattern once more for each id it takes with A's private object of that kind (and A's slug
  for the organisation): the answer must be the one a made-up id gets, so B cannot even tell
  that the object exists;
* extra requests where a query or a body matters (match, export pages and cursors, CSV exports,
  validation errors naming the list, dispute pages, filters that could serve as an oracle).

No response body, header or redirected-to page may hold any of A's markers. A new URL pattern is
visited without editing this file; one whose URL kwargs cannot be filled fails with a message
saying where to add a value. Webhook payloads and the e-mail digest are checked by calling their
builders, and the order and counts of the catalogue by giving the same lists to other owners.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from _pytest.mark import ParameterSet
from django.conf import settings
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.http import HttpResponseBase
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django_scopes import scope, scopes_disabled
from PIL import Image

from hub import services as hub_services
from hub.audit import Actor
from hub.models import ApiKey, Membership, Organization, User
from hub.permissions import Role
from lists import services as list_services
from lists.hashtypes import compute_all, decode_image
from lists.models import HashList
from matching.digest import digests_send
from matching.models import Detection, WebhookDelivery, WebhookEndpoint
from matching.webhooks import (
    EVENT_DETECTION,
    EVENT_PING,
    webhook_create,
    webhook_headers,
    webhook_payload,
)
from sharing import disputes
from sharing import services as sharing_services
from sharing.models import Dispute
from tests.conftest import login, make_key
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.matching.test_match_api import flip, random_pdq
from tests.test_permissions import (
    OBJECT_MAKERS,
    OTHER_KWARGS,
    TENANT_KWARGS,
    Endpoint,
    _endpoints,
)

pytestmark = pytest.mark.django_db

ALL_SCOPES = [str(value) for value in ApiKey.Scope.values]

# --- org A's markers ------------------------------------------------------------------------------

A_NAME = "Zebulon Quarantine Trust"
A_SLUG = "zebulon-quarantine"
# Row numbers no other row of the suite has, so that any of them in a response is a leak.
A_ORG_PK = 90_417_263
A_USER_PKS = (90_417_271, 90_417_289)
URSULA = "ursula.vantablack@zebulon.example"
IGNATIUS = "ignatius.quillfeather@zebulon.example"
A_KEY_NAME = "zebulon-ingest-key"
A_LABELS = ["zebulon-intake", "zq-case-4471"]
# A shares the classification of its anonymous list: B sees "A1" with matches, never A's tags.
A_CLASSIFIED = ["A1", *A_LABELS]
A_USER_LABELS = ["vantablack-review"]
A_KEY_NOTE = "Zebulon triage: flagged by Ursula Vantablack"
A_USER_NOTE = "Escalated by the Zq night desk (ext. 4471)"
A_IMPORT_LABEL = "Zebulon nightly import"
A_PRIVATE_NOTE = "Zebulon private: from case zq-case-9902"
# Whatever identifies A, as text (compared case-insensitively).
A_MARKERS = (
    "zebulon",
    "quarantine trust",
    "vantablack",
    "ursula",
    "quillfeather",
    "ignatius",
    "zq-case",
    "zq night desk",
    "ext. 4471",
)
# What A shares on purpose: the anonymous list's name and description (neither names A).
SHARED_NAME = "Shared perceptual set"
SHARED_DESCRIPTION = "Hashes two reviewers confirmed."
# What A's people write to a disputer on purpose (the disputer reads it; it names no one).
REJECT_NOTE = "Checked again: the hash is right."
RETRACT_NOTE = "Removed after a second look."

B_NAME = "Borealis Safety"
B_SLUG = "borealis"
B_CONTENT_REF = "borealis-upload-77"

# --- the data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hashes:
    """A's hashes as text, by what becomes of them."""

    pdq: str  # added by A's key, labelled and noted
    md5: str  # added by A's key; also in A's private list
    sha256: str  # added by A's key
    phash: str  # added by A's person
    rejected: str  # md5, added by A's person; B disputes it, A rejects the dispute
    retracted: str  # sha1, added by A's person; B disputes it, A retracts it
    disputed: str  # pdq from A's nightly import; B's dispute stays open
    fresh: str  # md5, added by A's person; nobody disputes it yet
    image_pdq: str  # the PDQ of IMAGE, added by A's key
    corroborated: str  # md5 that org C's open list holds too
    private: str  # md5 only in A's private list


@dataclass
class World:
    a: Organization
    b: Organization
    hashes: Hashes
    image: bytes
    shared: HashList  # A's anonymous list
    a_private: HashList  # A's default CSAM list, with notes and labels
    a_ids: Mapping[str, str]  # URL kwarg -> an object of A's of that kind
    b_ids: Mapping[str, str]  # URL kwarg -> B's own object of that kind
    b_invitation_token: str
    b_key_secret: str
    b_session: str
    b_detection: Detection
    b_disputes: Mapping[str, str]  # "rejected", "retracted", "open" -> B's dispute ids
    markers: tuple[str, ...]  # A_MARKERS and A's random ids, prefixes
    numbers: tuple[int, ...]  # A's row numbers

    def api(self) -> Client:
        return Client(headers={"Authorization": f"Bearer {self.b_key_secret}"})

    def web(self) -> Client:
        client = Client()
        client.cookies[settings.SESSION_COOKIE_NAME] = self.b_session
        return client


def _noise_png() -> bytes:
    """A synthetic image of random pixels (never real material); PDQ rates noise highly."""
    image = Image.frombytes("RGB", (96, 96), secrets.token_bytes(96 * 96 * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _image_pdq(data: bytes) -> str:
    computed = compute_all(
        decode_image(
            data,
            max_bytes=settings.HASHHUB_MAX_UPLOAD_BYTES,
            max_pixels=settings.HASHHUB_MAX_IMAGE_PIXELS,
        )
    )
    assert not computed["pdq"].low_quality
    return computed["pdq"].text


def _member(org: Organization, email: str, role: Role, *, pk: int | None = None) -> User:
    user = UserFactory.create(email=email, **({"pk": pk} if pk else {}))
    MembershipFactory.create(organization=org, user=user, role=role)
    return user


def _add(
    hash_list: HashList, actor: Actor, *items: list_services.EntryInput, label: str | None = None
) -> None:
    with scope(organization=hash_list.organization_id):
        result = list_services.entry_add(
            hash_list=hash_list, items=list(items), actor=actor, label=label
        )
    assert not result.errors, result.errors


def _entry(signal_type: str, value: str, labels: list[str], note: str) -> list_services.EntryInput:
    return list_services.EntryInput(signal_type, value, labels=labels, note=note)


def _share(hash_list: HashList, visibility: str, actor: Actor) -> None:
    """Share the list; an anonymous one as others see it after the next publication."""
    with scope(organization=hash_list.organization_id):
        sharing_services.list_visibility_set(
            hash_list=hash_list, visibility=visibility, actor=actor
        )
    if visibility == "anonymous":
        sharing_services.anonymous_publish()


def _new_list(org: Organization, name: str, category: str = "csam", description: str = "") -> Any:
    with scope(organization=org.pk):
        return list_services.list_create(
            org=org, name=name, category=category, description=description, actor=SYSTEM
        )


def _subscribe(org: Organization, hash_list: HashList) -> None:
    with scope(organization=org.pk):
        sharing_services.subscription_list_set(
            org=org, public_id=hash_list.public_id, subscribed=True, actor=SYSTEM
        )


def _subscribe_category(org: Organization, category: str) -> None:
    with scope(organization=org.pk):
        sharing_services.subscription_category_set(
            org=org, category=category, subscribed=True, actor=SYSTEM
        )


def _default_list(org: Organization, category: str = "csam") -> HashList:
    with scope(organization=org.pk):
        return HashList.objects.get(organization=org, category=category, is_default=True)


SYSTEM = Actor(system="test")


def _build_world() -> World:
    a = OrganizationFactory.create(pk=A_ORG_PK, name=A_NAME, slug=A_SLUG)
    ursula = _member(a, URSULA, Role.OWNER, pk=A_USER_PKS[0])
    User.objects.filter(pk=ursula.pk).update(name="Ursula Vantablack")
    ignatius = _member(a, IGNATIUS, Role.ANALYST, pk=A_USER_PKS[1])
    a_key, _ = make_key(a, ALL_SCOPES, name=A_KEY_NAME)
    by_key = Actor(api_key=a_key)
    by_ursula = Actor(user=ursula)
    with scope(organization=a.pk):
        a_invitation, _ = hub_services.invitation_create(
            org=a, email="new.hire@zebulon.example", role=Role.VIEWER, granter=Role.OWNER,
            actor=by_ursula,
        )  # fmt: skip

    image = _noise_png()
    hashes = Hashes(
        pdq=random_pdq(),
        md5=secrets.token_hex(16),
        sha256=secrets.token_hex(32),
        phash=secrets.token_hex(8),
        rejected=secrets.token_hex(16),
        retracted=secrets.token_hex(20),
        disputed=random_pdq(),
        fresh=secrets.token_hex(16),
        image_pdq=_image_pdq(image),
        corroborated=secrets.token_hex(16),
        private=secrets.token_hex(16),
    )
    shared = _new_list(a, SHARED_NAME, description=SHARED_DESCRIPTION)
    _add(
        shared, by_key,
        _entry("pdq", hashes.pdq, A_CLASSIFIED, A_KEY_NOTE),
        _entry("md5", hashes.md5, A_CLASSIFIED, A_KEY_NOTE),
        _entry("sha256", hashes.sha256, A_LABELS, A_KEY_NOTE),
        _entry("pdq", hashes.image_pdq, A_CLASSIFIED, A_KEY_NOTE),
        _entry("md5", hashes.corroborated, A_LABELS, A_KEY_NOTE),
    )  # fmt: skip
    _add(
        shared, by_ursula,
        _entry("phash", hashes.phash, A_USER_LABELS, A_USER_NOTE),
        _entry("md5", hashes.rejected, A_USER_LABELS, A_USER_NOTE),
        _entry("sha1", hashes.retracted, A_USER_LABELS, A_USER_NOTE),
        _entry("md5", hashes.fresh, A_USER_LABELS, A_USER_NOTE),
    )  # fmt: skip
    _add(
        shared, Actor(user=ignatius), _entry("pdq", hashes.disputed, A_LABELS, A_USER_NOTE),
        label=A_IMPORT_LABEL,
    )  # fmt: skip
    _share(shared, "anonymous", by_ursula)
    sharing_services.list_share_classification_set(hash_list=shared, share=True, actor=by_ursula)
    a_private = _default_list(a)
    _add(
        a_private, by_key,
        _entry("md5", hashes.private, A_LABELS, A_PRIVATE_NOTE),
        _entry("md5", hashes.md5, A_LABELS, A_PRIVATE_NOTE),
    )  # fmt: skip

    # Org C shares openly (its name is public), org D anonymously; both hold B's interest too.
    c = OrganizationFactory.create(name="Cobalt Open Exchange", slug="cobalt")
    open_list = _new_list(c, "Open signals")
    _add(open_list, SYSTEM, _entry("md5", hashes.corroborated, [], ""))
    _share(open_list, "open", SYSTEM)
    d = OrganizationFactory.create(name="Dunlin Review Group", slug="dunlin")
    d_list = _new_list(d, "Another anonymous set", category="se")
    _add(d_list, SYSTEM, _entry("md5", secrets.token_hex(16), [], ""))
    _share(d_list, "anonymous", SYSTEM)

    b = OrganizationFactory.create(name=B_NAME, slug=B_SLUG)
    brenda = _member(b, "brenda@borealis.example", Role.OWNER)
    b_key, b_secret = make_key(b, ALL_SCOPES, name="borealis key")
    with scope(organization=b.pk):
        b_invitation, b_token = hub_services.invitation_create(
            org=b, email="new.hire@borealis.example", role=Role.VIEWER, granter=Role.OWNER,
            actor=Actor(user=brenda),
        )  # fmt: skip
        endpoint, _ = webhook_create(
            org=b, url="https://8.8.8.8/borealis-hook", description="review pipeline",
            actor=Actor(user=brenda),
        )  # fmt: skip
    _add(_default_list(b), SYSTEM, _entry("md5", secrets.token_hex(16), ["borealis"], "ours"))
    _subscribe(b, shared)
    _subscribe(b, open_list)
    _subscribe_category(b, "se")

    api_b = Client(headers={"Authorization": f"Bearer {b_secret}"})
    matched = api_b.post(
        "/api/v1/match",
        {
            "hashes": [
                {"type": "pdq", "value": flip(hashes.pdq, 3)},
                {"type": "md5", "value": hashes.md5},
                {"type": "sha256", "value": hashes.sha256},
                {"type": "phash", "value": hashes.phash},
                {"type": "md5", "value": hashes.rejected},
                {"type": "sha1", "value": hashes.retracted},
                {"type": "pdq", "value": hashes.disputed},
                {"type": "md5", "value": hashes.corroborated},
                {"type": "md5", "value": hashes.private},
            ],
            "content_ref": B_CONTENT_REF,
        },
        content_type="application/json",
    )
    assert matched.status_code == 200, matched.content
    with scope(organization=b.pk):
        detection = Detection.objects.get(public_id=matched.json()["detection"])
        WebhookDelivery.objects.create(
            organization=b, endpoint=endpoint, detection=detection, event=EVENT_DETECTION,
            event_id="evt-borealis-1", status=WebhookDelivery.Status.FAILED,
            response_status=500, error="The receiver answered HTTP 500.",
        )  # fmt: skip

    def dispute(signal_type: str, value: str) -> str:
        response = api_b.post(
            "/api/v1/disputes",
            {
                "list": shared.public_id, "type": signal_type, "value": value,
                "reason": "not_csam", "note": "We think this is a false positive.",
            },
            content_type="application/json",
        )  # fmt: skip
        assert response.status_code == 201, response.content
        return str(response.json()["id"])

    b_disputes = {
        "rejected": dispute("md5", hashes.rejected),
        "retracted": dispute("sha1", hashes.retracted),
        "open": dispute("pdq", hashes.disputed),
    }
    with scope(organization=a.pk):
        disputes.dispute_reject(
            org=a, public_id=b_disputes["rejected"], note=REJECT_NOTE, actor=by_ursula
        )
        disputes.dispute_retract(
            org=a, public_id=b_disputes["retracted"], note=RETRACT_NOTE, actor=by_ursula
        )

    # One object of each kind a URL names, for both: A's must stay out of B's reach.
    url_kwargs = {kwarg for endpoint in _endpoints().values() for kwarg in endpoint.kwargs}
    made = {
        org.pk: {k: make(org) for k, make in OBJECT_MAKERS.items() if k in url_kwargs}
        for org in (a, b)
    }
    with scopes_disabled():
        a_ids = {
            **made[a.pk],
            "list_id": a_private.public_id,  # A's private list, with A's notes and labels
            "member_id": Membership.objects.get(organization=a, user=ursula).public_id,
            "invitation_id": a_invitation.public_id,
            "key_id": a_key.public_id,
        }
        b_ids = {
            **made[b.pk],
            "list_id": _default_list(b).public_id,
            "member_id": Membership.objects.get(organization=b, user=brenda).public_id,
            "invitation_id": b_invitation.public_id,
            "key_id": b_key.public_id,
            "detection_id": detection.public_id,
            "endpoint_id": endpoint.public_id,
            "dispute_id": b_disputes["open"],
        }
        a_private_ids = [hl.public_id for hl in HashList.objects.filter(organization=a)]
        a_private_ids.remove(shared.public_id)
        # The lists an id maker shared anonymously for A are shared on purpose, like ``shared``.
        a_private_ids = [
            public_id
            for public_id in a_private_ids
            if HashList.objects.get(public_id=public_id).visibility == "private"
        ]
    markers = (
        *A_MARKERS,
        a_key.prefix,
        *(value for kwarg, value in a_ids.items() if kwarg not in ("list_id",)),
        *a_private_ids,
    )
    return World(
        a=a,
        b=b,
        hashes=hashes,
        image=image,
        shared=shared,
        a_private=a_private,
        a_ids=a_ids,
        b_ids=b_ids,
        b_invitation_token=b_token,
        b_key_secret=b_secret,
        b_session=login(brenda).cookies[settings.SESSION_COOKIE_NAME].value,
        b_detection=detection,
        b_disputes=b_disputes,
        markers=tuple(dict.fromkeys(markers)),
        numbers=(A_ORG_PK, *A_USER_PKS),
    )


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    """Built once for this file in a transaction rolled back at its end; each test runs in a
    savepoint of it (as in tests/test_permissions.py), so every request starts from this data."""
    fast_hasher = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with (
        django_db_blocker.unblock(),
        override_settings(PASSWORD_HASHERS=fast_hasher),
        transaction.atomic(),
    ):
        yield _build_world()
        transaction.set_rollback(True)


# --- the checks ---------------------------------------------------------------------------------


def _text(response: HttpResponseBase) -> str:
    streamed = response.streaming
    body = b"".join(response.streaming_content) if streamed else response.content  # type: ignore[attr-defined]
    headers = "\n".join(f"{name}: {value}" for name, value in response.items())
    cookies = "\n".join(morsel.OutputString() for morsel in response.cookies.values())
    return f"{headers}\n{cookies}\n\n{body.decode(errors='replace')}"


def _leaks(text: str, world: World, sent: str = "") -> list[str]:
    """A's markers and row numbers in ``text``, but not those the request itself carried."""
    lowered, sent_lowered = text.lower(), sent.lower()
    found = [m for m in world.markers if m.lower() in lowered and m.lower() not in sent_lowered]
    found += [
        f"row number {number}"
        for number in world.numbers
        if re.search(rf"(?<![0-9A-Za-z]){number}(?![0-9A-Za-z])", text) and str(number) not in sent
    ]
    return found


def _assert_nothing_of_a(
    response: HttpResponseBase, world: World, what: str, sent: str = ""
) -> str:
    text = _text(response)
    assert response.status_code < 500, f"{what}: {response.status_code}\n{text[:2000]}"
    leaked = _leaks(text, world, sent)
    if leaked:
        where = [text[max(0, text.lower().find(m.lower()) - 200) :][:400] for m in leaked[:2]]
        pytest.fail(f"{what} reveals the owner of an anonymous list: {leaked}\n{where}")
    return text


def _assert_not_signed_out(response: HttpResponseBase, what: str) -> None:
    # A request that lost B's login would answer the login page and prove nothing.
    location = response.get("Location", "")
    assert not location.startswith("/accounts/login/"), f"{what}: B's session was lost"


def _follow(client: Client, response: HttpResponseBase, world: World, what: str, sent: str) -> None:
    """Check the page a redirect leads to as well: messages about the action show there."""
    location = response.get("Location", "")
    if response.status_code in (301, 302, 303) and location.startswith("/"):
        followed = client.get(location)
        _assert_nothing_of_a(followed, world, f"{what} -> {location}", sent)


# --- requests -----------------------------------------------------------------------------------

# Values for the URL kwargs that name nobody's object (tests/test_permissions.py's OTHER_KWARGS).
PLAIN_KWARGS: dict[str, Callable[[World], str]] = {
    "token": lambda w: w.b_invitation_token,  # B's own invitation link
    "key": lambda w: "MQ:1tXyzA:not-a-real-signature",
    "uidb36": lambda w: "1",
    "pk": lambda w: "1",
    "rest": lambda w: f"v1/lists/{w.shared.public_id}/nothing-here",
    "category": lambda w: "csam",
    # Staff pages of upstream sources: B is not staff, so any id is refused alike.
    "source_id": lambda w: "no-such-source",
    "run_id": lambda w: "no-such-run",
    # Staff's match-rate holds (issue 19): B is not staff either.
    "hold_id": lambda w: "no-such-hold",
}
MADE_UP = {"org_slug": "no-such-org", "slug": "no-such-org"}
MADE_UP_ID = "nosuchobject0000"


def _is_api(endpoint: Endpoint) -> bool:
    return endpoint.route.startswith(("api/", "hma/"))  # hma/: the HMA facade (issue 20)


def _methods(endpoint: Endpoint) -> list[str]:
    if not _is_api(endpoint):
        return ["GET", "POST"]
    view_class = getattr(endpoint.callback, "view_class", None)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    if view_class is None:
        return ["GET", "POST"]
    return [m for m in methods if hasattr(view_class, m.lower())] or ["GET"]


def _object_kwargs(endpoint: Endpoint) -> list[str]:
    return [k for k in endpoint.kwargs if k not in TENANT_KWARGS and k not in PLAIN_KWARGS]


def _values(endpoint: Endpoint, world: World, variant: str) -> dict[str, str]:
    """The URL kwargs: B's ids, with one replaced as ``variant`` says."""
    values: dict[str, str] = {}
    for kwarg in endpoint.kwargs:
        if kwarg in TENANT_KWARGS:
            values[kwarg] = world.b.slug
        elif kwarg in PLAIN_KWARGS:
            values[kwarg] = PLAIN_KWARGS[kwarg](world)
        elif kwarg in world.b_ids and kwarg in world.a_ids:
            values[kwarg] = world.b_ids[kwarg]
        else:
            pytest.fail(
                f"{endpoint.key}: URL kwarg {kwarg!r} has no value in the anonymity sweep: add an "
                "object maker to OBJECT_MAKERS in tests/test_permissions.py (or, for a kwarg that "
                "names nobody's object, a value to PLAIN_KWARGS in tests/sharing/test_anonymity.py)"
            )
    kind, _, kwarg = variant.partition(":")
    if variant == "shared_list":
        values["list_id"] = world.shared.public_id
    elif kind == "a" and kwarg == "org":
        values.update({k: world.a.slug for k in endpoint.kwargs if k in TENANT_KWARGS})
    elif kind == "a":
        values[kwarg] = world.a_ids[kwarg]
    elif kind == "missing" and kwarg == "org":
        values.update({k: MADE_UP[k] for k in endpoint.kwargs if k in TENANT_KWARGS})
    elif kind == "missing":
        values[kwarg] = MADE_UP_ID
    return values


def _path(endpoint: Endpoint, values: Mapping[str, str]) -> str:
    if endpoint.name and endpoint.key == endpoint.name:
        return reverse(endpoint.name, kwargs=dict(values))
    if not endpoint.plain_route:
        pytest.fail(f"{endpoint.route}: name this regex pattern so its URL can be reversed")
    path = endpoint.route
    for kwarg, value in values.items():
        path = re.sub(rf"<(?:\w+:)?{re.escape(kwarg)}>", value.replace("\\", r"\\"), path)
    return "/" + path


def _form(world: World) -> dict[str, str]:
    """One POSTed form that fills the fields of every page, pointed at A's shared list."""
    return {
        "list": world.shared.public_id,
        "type": "md5",
        "value": world.hashes.fresh,
        "reason": "not_csam",
        "note": "B's note",
        "subscribed": "1",
        "category": "csam",
        "visibility": "anonymous",
        "confirm": "on",
        "ignore_disputed": "on",
        "action": "confirm",
        "name": "Borealis renamed",
        "description": "",
        "url": "https://8.8.8.8/another-hook",
        "email": "someone@borealis.example",
        "role": "viewer",
        "reveal": "",
    }


def _body(world: World) -> dict[str, Any]:
    """One JSON body for every API method, naming A's shared list and holding A's hashes."""
    h = world.hashes
    hashes = [
        {"type": "pdq", "value": flip(h.pdq, 5)},
        {"type": "md5", "value": h.md5},
        {"type": "sha256", "value": h.sha256},
        {"type": "phash", "value": h.phash},
        {"type": "pdq", "value": h.disputed},
        {"type": "md5", "value": h.private},
    ]
    return {
        "list": world.shared.public_id,
        "type": "md5",
        "value": h.fresh,
        "reason": "not_csam",
        "hashes": hashes,
        "entries": hashes,
        "name": "Borealis list",
        "category": "csam",
        "description": "",
    }


def _send(
    client: Client,
    method: str,
    url: str,
    *,
    api: bool,
    query: Mapping[str, str] | None = None,
    data: Any = None,
    headers: Mapping[str, str] | None = None,
    multipart: bool = False,
) -> HttpResponseBase:
    """GET with a query; the API gets JSON bodies (or a multipart form), pages a form."""
    if method == "GET":
        return client.get(url, query or {}, headers=headers)
    if api and not multipart:
        body = "" if data is None else json.dumps(data)
        return client.generic(method, url, body, content_type="application/json", headers=headers)
    return client.post(url, data or {}, headers=headers)


# --- the sweep: every URL pattern ---------------------------------------------------------------


def _variants(endpoint: Endpoint) -> list[str]:
    variants = ["own"]
    if "list_id" in endpoint.kwargs:
        variants.append("shared_list")
    if any(k in TENANT_KWARGS for k in endpoint.kwargs):
        variants.append("a:org")
    variants += [f"a:{kwarg}" for kwarg in _object_kwargs(endpoint)]
    return variants


def _sweep_cases() -> Iterator[ParameterSet]:
    for key, endpoint in sorted(_endpoints().items()):
        for method in _methods(endpoint):
            for variant in _variants(endpoint):
                yield pytest.param(key, method, variant, id=f"{key}-{method}-{variant}")


SWEEP_CASES = list(_sweep_cases())


def _error_code(response: HttpResponseBase) -> str | None:
    if not response.get("Content-Type", "").startswith("application/json"):
        return None
    body = json.loads(response.content)  # type: ignore[attr-defined]
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


@pytest.mark.parametrize(("key", "method", "variant"), SWEEP_CASES)
def test_no_url_pattern_reveals_the_owner_of_an_anonymous_list(
    key: str, method: str, variant: str, world: World
) -> None:
    endpoint = _endpoints()[key]
    api = _is_api(endpoint)
    values = _values(endpoint, world, variant)
    url = _path(endpoint, values)
    client = world.api() if api else world.web()
    data = None if method == "GET" else (_body(world) if api else _form(world))
    response = _send(client, method, url, api=api, data=data)
    what = f"{method} {url}"
    # The ids of A's private objects that B names in the URL are B's to know; nothing else is.
    _assert_nothing_of_a(response, world, what, sent=url)
    if not api:
        _assert_not_signed_out(response, what)
    _follow(client, response, world, what, sent=url)
    if variant.startswith("a:"):
        # A's private object must answer exactly as an object that does not exist.
        control_url = _path(endpoint, _values(endpoint, world, "missing:" + variant[2:]))
        control = _send(client, method, control_url, api=api, data=data)
        assert (response.status_code, _error_code(response)) == (
            control.status_code,
            _error_code(control),
        ), f"{what} answers unlike {method} {control_url}: A's object is discoverable"


def test_the_sweep_visits_every_url_pattern_with_every_list_id_it_takes() -> None:
    swept = {param.values[0] for param in SWEEP_CASES}
    assert swept == set(_endpoints()), "every URL pattern is swept"
    with_lists = {p.values[0] for p in SWEEP_CASES if p.values[2] == "shared_list"}
    assert with_lists == {k for k, e in _endpoints().items() if "list_id" in e.kwargs}
    # A kwarg that names nobody's object in tests/test_permissions.py needs a value here too.
    assert set(OTHER_KWARGS) <= set(PLAIN_KWARGS), set(OTHER_KWARGS) - set(PLAIN_KWARGS)


def test_the_world_holds_a_s_markers_where_b_must_not_see_them(world: World) -> None:
    """The sweep proves something only if A's markers are there to leak."""
    with scopes_disabled():
        entries = list(world.shared.entries.all())
        labels = {label for entry in entries for label in entry.labels}
        notes = {entry.note for entry in entries}
        provenance = {entry.added_by_label for entry in entries}
        removed_by = {entry.removed_by_label for entry in entries if entry.removed_seq}
        dispute = Dispute.objects.get(public_id=world.b_disputes["rejected"])
    assert set(A_LABELS) | set(A_USER_LABELS) <= labels
    assert {A_KEY_NOTE, A_USER_NOTE} <= notes
    assert {URSULA, A_IMPORT_LABEL} <= provenance
    assert any(A_KEY_NAME in label for label in provenance)
    assert removed_by == {URSULA}
    assert dispute.resolved_by_label == URSULA
    assert world.shared.visibility == "anonymous"
    assert world.a.pk == A_ORG_PK


# --- extra requests where the query or the body matters ------------------------------------------


@dataclass(frozen=True)
class Step:
    key: str  # the URL pattern
    method: str = "GET"
    variant: str = "own"  # as in the sweep: "own", "shared_list", ...
    kwargs: Callable[[World], Mapping[str, str]] | None = None  # URL kwargs to override
    query: Callable[[World], Mapping[str, str]] | None = None
    data: Callable[[World], Any] | None = None
    headers: Mapping[str, str] | None = None
    multipart: bool = False  # the API body as a multipart form (an image upload), not JSON
    status: int | None = None  # the answer B must get (so the step reaches what it aims at)


def _dispute_body(
    list_id: Callable[[World], str],
    signal_type: str,
    value: Callable[[World], str],
    reason: str = "other",
) -> Callable[[World], Any]:
    return lambda w: {
        "list": list_id(w),
        "type": signal_type,
        "value": value(w),
        "reason": reason,
        "note": "B's note",
    }


B_STATES = ("rejected", "retracted", "open")


def _b_dispute(state: str) -> Callable[[World], Mapping[str, str]]:
    return lambda w: {"dispute_id": w.b_disputes[state]}


def _shared_id(w: World) -> str:
    return w.shared.public_id


def _match_body(w: World) -> dict[str, Any]:
    return {**_body(w), "content_ref": "borealis-upload-78"}


EXTRA: dict[str, list[Step]] = {
    "match every kind of A's hash": [Step("api_match", "POST", data=_match_body, status=200)],
    "match with a radius above the maximum": [
        Step(
            "api_match",
            "POST",
            data=lambda w: {**_body(w), "max_distance": {"pdq": 999}},
            status=400,
        ),
    ],
    "match with malformed items": [
        Step(
            "api_match",
            "POST",
            status=200,
            data=lambda w: {"hashes": [{"type": "pdq", "value": "zz"}, {"type": "nope"}, 7]},
        ),
    ],
    "match an image that A's list holds": [
        Step(
            "api_match_image",
            "POST",
            status=200,
            multipart=True,
            data=lambda w: {"image": io.BytesIO(w.image), "content_ref": "img-1"},
        ),
    ],
    "export from the start": [Step("api_export", status=200)],
    "export one item a page": [Step("api_export", query=lambda w: {"limit": "1"}, status=200)],
    "export with a bad cursor": [
        Step("api_export", query=lambda w: {"cursor": "not-a-cursor"}, status=400),
    ],
    "export with a bad limit": [Step("api_export", query=lambda w: {"limit": "x"}, status=400)],
    "community lists in the API": [
        Step("api_lists", query=lambda w: {"tier": "community"}, status=200),
        Step("api_lists", query=lambda w: {"category": "csam"}, status=200),
        Step("api_lists", query=lambda w: {"tier": "nobody"}, status=400),
        Step("api_lists", query=lambda w: {"category": "nothing"}, status=400),
    ],
    "change A's shared list": [
        Step(
            "api_list", "PATCH", "shared_list", data=lambda w: {"visibility": "private"}, status=403
        ),
        Step(
            "api_list",
            "PATCH",
            "shared_list",
            data=lambda w: {"share_classification": False},
            status=403,
        ),
        Step(
            "list_visibility",
            "POST",
            "shared_list",
            data=lambda w: {"form": "share_classification"},
            status=404,
        ),
        Step("api_list", "PATCH", "shared_list", data=lambda w: {"name": "Mine now"}, status=403),
        Step("api_list", "PATCH", "shared_list", data=lambda w: {"visibility": 5}, status=403),
    ],
    "page through A's shared list": [
        Step("api_list_entries", variant="shared_list", query=lambda w: {"limit": "1"}, status=200),
        Step(
            "api_list_entries", variant="shared_list", query=lambda w: {"type": "pdq"}, status=200
        ),
        Step(
            "api_list_entries",
            variant="shared_list",
            query=lambda w: {"prefix": w.hashes.md5[:4]},
            status=200,
        ),
        Step("api_list_entries", variant="shared_list", query=lambda w: {"limit": "x"}, status=400),
        Step(
            "api_list_entries", variant="shared_list", query=lambda w: {"cursor": "zz"}, status=400
        ),
        Step(
            "api_list_entries", variant="shared_list", query=lambda w: {"prefix": "xyz"}, status=400
        ),
    ],
    "add to and remove from A's shared list": [
        Step("api_list_entries", "POST", "shared_list", data=_body, status=403),
        Step("api_list_entries_remove", "POST", "shared_list", data=_body, status=404),
    ],
    "unsubscribe and subscribe again": [
        Step("api_list_subscription", "DELETE", "shared_list", status=200),
        Step("api_list_subscription", "PUT", "shared_list", status=200),
        Step("api_export", status=200),
    ],
    "dispute through the API": [
        Step(
            "api_disputes",
            "POST",
            data=_dispute_body(_shared_id, "md5", lambda w: w.hashes.fresh),
            status=201,
        ),
        Step(
            "api_disputes",
            "POST",
            data=_dispute_body(_shared_id, "pdq", lambda w: w.hashes.disputed),
            status=409,
        ),
        Step(
            "api_disputes",
            "POST",
            data=_dispute_body(_shared_id, "md5", lambda w: w.hashes.rejected, "bogus"),
            status=400,
        ),
        Step(
            "api_disputes",
            "POST",
            data=_dispute_body(_shared_id, "md5", lambda w: "abc"),
            status=400,
        ),
        Step(
            "api_disputes",
            "POST",
            data=_dispute_body(_shared_id, "sha1", lambda w: w.hashes.retracted),
            status=404,
        ),
        Step("api_disputes", "POST", data=lambda w: [1, 2], status=400),
        Step("api_disputes", query=lambda w: {"status": "rejected"}, status=200),
        Step("api_disputes", query=lambda w: {"status": "retracted"}, status=200),
        Step("api_disputes", query=lambda w: {"limit": "1"}, status=200),
        Step("api_disputes", query=lambda w: {"cursor": "nope"}, status=400),
        Step("api_disputes", query=lambda w: {"status": "nope"}, status=400),
    ],
    "the catalogue": [
        Step("community", query=lambda w: {"category": "csam"}, status=200),
        Step("community", query=lambda w: {"category": "nothing"}, status=400),
    ],
    "A's shared list's page": [
        Step("community_list", variant="shared_list", query=lambda w: {"type": "pdq"}, status=200),
        Step(
            "community_list",
            variant="shared_list",
            query=lambda w: {"prefix": w.hashes.pdq[:3]},
            status=200,
        ),
        Step("community_list", variant="shared_list", query=lambda w: {"cursor": "zz"}, status=400),
        Step(
            "community_list", variant="shared_list", query=lambda w: {"prefix": "xyz"}, status=400
        ),
    ],
    "leave and join A's shared list from its page": [
        Step(
            "community_subscription",
            "POST",
            "shared_list",
            status=302,
            data=lambda w: {
                "subscribed": "0",
                "next": f"/o/{w.b.slug}/community/{w.shared.public_id}/",
            },
        ),
        Step(
            "community_subscription",
            "POST",
            "shared_list",
            data=lambda w: {"subscribed": "1"},
            status=302,
        ),
        Step(
            "community_subscription",
            "POST",
            "shared_list",
            data=lambda w: {"subscribed": "x"},
            status=400,
        ),
    ],
    "dispute from the pages": [
        Step(
            "dispute_new",
            variant="shared_list",
            query=lambda w: {"type": "md5", "value": w.hashes.fresh},
            status=200,
        ),
        Step(
            "dispute_new",
            "POST",
            "shared_list",
            status=302,
            data=lambda w: {"type": "md5", "value": w.hashes.fresh, "reason": "low_quality"},
        ),
        Step(
            "dispute_new",
            "POST",
            "shared_list",
            status=409,
            data=lambda w: {"type": "pdq", "value": w.hashes.disputed, "reason": "other"},
        ),
        Step(
            "dispute_new",
            "POST",
            "shared_list",
            status=404,
            data=lambda w: {"type": "md5", "value": w.hashes.private, "reason": "other"},
        ),
        Step(
            "dispute_new",
            "POST",
            "shared_list",
            status=400,
            data=lambda w: {"type": "md5", "value": "zz", "reason": "other"},
        ),
    ],
    "B's disputes": [
        Step("disputes", query=lambda w: {"tab": "raised"}, status=200),
        Step("disputes", query=lambda w: {"tab": "raised", "status": "rejected"}, status=200),
        Step("disputes", query=lambda w: {"tab": "received"}, status=200),
        Step("disputes", query=lambda w: {"tab": "nope"}, status=400),
        *(Step("dispute_detail", kwargs=_b_dispute(state), status=200) for state in B_STATES),
        Step("dispute_withdraw", "POST", status=302),
        Step("dispute_withdraw", "POST", status=409),
        Step("dispute_reject", "POST", data=lambda w: {"note": "no"}, status=404),
        Step("dispute_retract", "POST", status=404),
    ],
    "B's detections": [
        Step("detections", query=lambda w: {"tier": "community"}, status=200),
        Step("detections", query=lambda w: {"status": "new", "category": "csam"}, status=200),
        Step(
            "detections",
            query=lambda w: {"tier": "community"},
            headers={"HX-Request": "true"},
            status=200,
        ),
        Step("detections", query=lambda w: {"tier": "nope"}, status=400),
        Step("detections_chart", status=200),
        Step("detection_detail", status=200),
    ],
    "confirm B's detection into its own list and export that": [
        Step(
            "detection_review",
            "POST",
            data=lambda w: {"action": "confirm", "note": "ok"},
            status=302,
        ),
        Step("list_detail", status=200),
        Step("list_export", status=200),
        Step("lists", status=200),
        Step("audit_log", status=200),
        Step("dashboard", status=200),
    ],
    "mark B's detection a false positive": [
        Step("detection_review", "POST", data=lambda w: {"action": "false_positive"}, status=302),
        Step("allow_list", status=200),
    ],
    "hold B's detection for preservation, by page and by API": [
        Step(
            "detection_hold_place",
            "POST",
            data=lambda w: {"days": "30", "reason": "keep it"},
            status=302,
        ),
        Step("detection_hold_place", "POST", data=lambda w: {"days": "0"}, status=400),
        Step("detection_detail", status=200),
        Step("detections", status=200),
        Step("api_detection_holds", "POST", data=lambda w: {"days": 10}, status=201),
        Step("api_detection_holds", "POST", data=lambda w: {"days": "x"}, status=400),
        Step("api_detection_holds", status=200),
        Step("api_detection", status=200),
        Step("api_detections", status=200),
    ],
    "B's webhook and its deliveries": [
        Step("webhook_detail", status=200),
        Step("webhook_test", "POST", status=302),
        Step("webhooks", status=200),
    ],
    "the API's description": [Step("api_schema", status=200), Step("api_docs", status=200)],
}


def _extra_cases() -> Iterator[ParameterSet]:
    for name in EXTRA:
        yield pytest.param(name, id=name.replace(" ", "-"))


@pytest.mark.parametrize("name", list(_extra_cases()))
def test_requests_with_queries_and_bodies_reveal_nothing_of_the_owner(
    name: str, world: World
) -> None:
    web, api = world.web(), world.api()
    for step in EXTRA[name]:
        endpoint = _endpoints()[step.key]
        is_api = _is_api(endpoint)
        values = _values(endpoint, world, step.variant)
        values.update(step.kwargs(world) if step.kwargs else {})
        url = _path(endpoint, values)
        client = api if is_api else web
        query = step.query(world) if step.query else None
        data = step.data(world) if step.data else None
        response = _send(
            client,
            step.method,
            url,
            api=is_api,
            query=query,
            data=data,
            headers=step.headers,
            multipart=step.multipart,
        )
        what = f"{name}: {step.method} {url} {query or ''}"
        _assert_nothing_of_a(response, world, what)
        _follow(client, response, world, what, sent="")
        if step.status is not None:
            assert response.status_code == step.status, (what, response.status_code)


def test_extra_requests_name_real_url_patterns() -> None:
    unknown = {step.key for steps in EXTRA.values() for step in steps} - set(_endpoints())
    assert not unknown, f"EXTRA names URL patterns that no longer exist: {unknown}"


# --- what B sees of A's list: there to see, without its owner -----------------------------------


def test_b_sees_a_s_shared_list_its_entries_and_its_matches_as_anonymous(world: World) -> None:
    """The sweep above reaches A's list for real (so its silence about A means something)."""
    web, api = world.web(), world.api()
    shared = world.shared.public_id
    [item] = [i for i in api.get("/api/v1/lists").json()["lists"] if i["id"] == shared]
    assert (item["name"], item["contributor"], item["anonymous"]) == (SHARED_NAME, None, True)
    assert item["subscribed"] is True
    entries: list[dict[str, Any]] = []
    cursor = ""
    while True:  # every page of A's list, two entries at a time
        response = api.get(f"/api/v1/lists/{shared}/entries", {"limit": "2", "cursor": cursor})
        _assert_nothing_of_a(response, world, f"entries of A's list from {cursor!r}")
        entries += response.json()["entries"]
        cursor = response.json()["next_cursor"]
        if not cursor:
            break
    assert {e["value"] for e in entries} >= {world.hashes.md5, world.hashes.pdq}
    with scopes_disabled():
        assert len(entries) == world.shared.entries.filter(removed_seq__isnull=True).count()
    assert all(set(e) == {"id", "type", "value", "added_at"} for e in entries)
    page = web.get(f"/o/{B_SLUG}/community/{shared}/").content.decode()
    assert world.hashes.pdq in page and "Anonymous member" in page
    detection = web.get(f"/o/{B_SLUG}/detections/{world.b_detection.public_id}/")
    assert SHARED_NAME in detection.content.decode()
    exported = api.get("/api/v1/export", {"limit": "10000"}).json()["items"]
    mine = [i for i in exported if i["list"]["id"] == shared]
    assert mine and all(i["list"]["contributor"] is None for i in mine)
    assert all(i["list"]["anonymous"] is True for i in mine)
    # A shares its classification: B sees "A1" and none of A's tags, and no date at all.
    assert {tuple(i["labels"]) for i in mine} == {("A1",), ()}
    assert all(i["added"] is None and i["record_id"] is None for i in mine)
    image = api.post("/api/v1/match/image", {"image": io.BytesIO(world.image)})
    [hit] = [m for r in image.json()["results"] for m in r["matches"]]
    assert (hit["list"]["id"], hit["list"]["contributor"]) == (shared, None)
    assert (hit["labels"], hit["added"], hit["verification"]) == (["A1"], None, None)
    rejected = web.get(f"/o/{B_SLUG}/disputes/{world.b_disputes['rejected']}/").content.decode()
    assert REJECT_NOTE in rejected and SHARED_NAME in rejected


def test_labels_of_the_owner_are_no_oracle(world: World) -> None:
    """Filtering A's list by a label A uses answers as filtering by a label nobody uses."""
    web, api = world.web(), world.api()
    shared = world.shared.public_id
    for label in (*A_LABELS, *A_USER_LABELS):
        api_pages = [
            api.get(f"/api/v1/lists/{shared}/entries", {"label": wanted}).json()
            for wanted in (label, "no-such-label")
        ]
        assert api_pages[0] == api_pages[1] and api_pages[0]["entries"]
        web_rows = [
            re.findall(
                r'<code class="hash">(\w+)</code>',
                web.get(f"/o/{B_SLUG}/community/{shared}/", {"label": wanted}).content.decode(),
            )
            for wanted in (label, "no-such-label")
        ]
        assert web_rows[0] == web_rows[1] and web_rows[0]


def test_a_s_private_hashes_are_no_oracle(world: World) -> None:
    """A hash only in A's private list answers as a hash no one holds: to match and to dispute."""
    api = world.api()
    unknown = secrets.token_hex(16)
    answers = []
    for value in (world.hashes.private, unknown):
        matched = api.post(
            "/api/v1/match", {"hashes": [{"type": "md5", "value": value}]},
            content_type="application/json",
        ).json()["results"][0]  # fmt: skip
        disputed = api.post(
            "/api/v1/disputes",
            {"list": world.shared.public_id, "type": "md5", "value": value, "reason": "other"},
            content_type="application/json",
        )
        answers.append((matched["matches"], disputed.status_code, disputed.json()["error"]))
    assert answers[0] == answers[1]


# --- webhooks and the digest --------------------------------------------------------------------


def test_a_webhook_delivery_of_b_s_detection_carries_nothing_of_a(world: World) -> None:
    with scope(organization=world.b.pk):
        endpoint = WebhookEndpoint.objects.filter(organization=world.b).first()
        assert endpoint is not None
        for event, detection in ((EVENT_DETECTION, world.b_detection), (EVENT_PING, None)):
            body = webhook_payload(
                event=event, event_id="evt-1", organization=world.b, detection=detection,
                created=timezone.now(),
            )  # fmt: skip
            headers = webhook_headers(
                secret=endpoint.secret, event=event, event_id="evt-1", body=body
            )
            text = body.decode() + json.dumps(headers)
            assert not _leaks(text, world), (event, _leaks(text, world))
    payload = json.loads(
        webhook_payload(
            event=EVENT_DETECTION, event_id="evt-1", organization=world.b,
            detection=world.b_detection, created=timezone.now(),
        )
    )  # fmt: skip
    lists = [m["list"] for r in payload["detection"]["matches"] for m in r["matches"]]
    shared = [hl for hl in lists if hl["id"] == world.shared.public_id]
    assert shared and all(hl["contributor"] is None and hl["anonymous"] for hl in shared)


def test_the_digest_e_mailed_to_b_carries_nothing_of_a(world: World) -> None:
    mail.outbox.clear()
    assert digests_send(now=timezone.now() + timedelta(minutes=1)) >= 2
    to_b = [m for m in mail.outbox if "brenda@borealis.example" in m.to]
    assert len(to_b) == 1
    [message] = to_b
    assert message.to == ["brenda@borealis.example"]
    assert isinstance(message, EmailMultiAlternatives)
    parts = [str(message.subject), str(message.body)]
    parts += [str(content) for content, _ in message.alternatives]
    assert B_NAME in message.subject
    leaked = _leaks("\n".join(parts), world)
    assert not leaked, leaked
    # And A's own digest goes to A's people only.
    to_a = [m for m in mail.outbox if A_NAME in m.subject]
    assert to_a and all(set(m.to) <= {URSULA} for m in to_a)


# --- order and counts do not single the owner out -----------------------------------------------


def _as_b_sees_it(world: World, value: str) -> dict[str, Any]:
    """B's view of the community, with every random id replaced by the list's name."""
    api, web = world.api(), world.web()
    lists = api.get("/api/v1/lists", {"tier": "community"}).json()["lists"]
    names = {item["id"]: item["name"] for item in lists}
    catalogue = [
        {k: v for k, v in item.items() if k not in ("id", "last_change")} for item in lists
    ]
    page = web.get(f"/o/{B_SLUG}/community/").content.decode()
    on_page = sorted(names, key=lambda public_id: page.find(public_id))
    assert all(public_id in page for public_id in names)
    matched = api.post(
        "/api/v1/match", {"hashes": [{"type": "md5", "value": value}]},
        content_type="application/json",
    ).json()["results"][0]["matches"]  # fmt: skip
    exported = api.get("/api/v1/export", {"limit": "10000"}).json()["items"]
    return {
        "catalogue": catalogue,
        "page": [names[public_id] for public_id in on_page],
        "matches": [{**m, "list": {**m["list"], "id": names[m["list"]["id"]]}} for m in matched],
        # Sorted: within a publication, anonymous lists' changes come in random order.
        "export": sorted(
            (i["op"], i["type"], i["value"], names.get(i["list"]["id"], i["list"]["id"]))
            for i in exported
            if i["list"]["id"] in names
        ),
        "subscribers": {item["name"]: item["subscribers"] for item in lists},
    }


def test_the_catalogue_order_and_counts_are_the_same_whoever_owns_which_list(
    world: World,
) -> None:
    """Three anonymous lists, given to A, C and D in every order: B sees the very same thing.

    The owners take part like any other member (A and E subscribe to the whole CSAM category,
    B to one list), so a count that left an owner out of its own list's subscribers would show
    which list belongs to a category subscriber.
    """
    c = OrganizationFactory.create(name="Cormorant Org", slug="cormorant")
    d = OrganizationFactory.create(name="Dipper Org", slug="dipper")
    e = OrganizationFactory.create(name="Egret Org", slug="egret")
    shared_value = secrets.token_hex(16)
    contents = {
        name: [shared_value, *(secrets.token_hex(16) for _ in range(size))]
        for name, size in (("Alpha set", 2), ("Beta set", 3), ("Gamma set", 2))
    }
    seen = []
    for owners in itertools.permutations([world.a, c, d]):
        with transaction.atomic():
            made = {}
            for (name, values), owner in zip(contents.items(), owners, strict=True):
                made[name] = _new_list(owner, name)
                _add(made[name], SYSTEM, *(_entry("md5", v, [], "") for v in values))
                _share(made[name], "anonymous", SYSTEM)
            for org in (world.a, e):
                _subscribe_category(org, "csam")
            _subscribe(world.b, made["Beta set"])
            seen.append(_as_b_sees_it(world, shared_value))
            transaction.set_rollback(True)
    for other in seen[1:]:
        assert other == seen[0]
    page = seen[0]["page"]
    assert page.index("Alpha set") < page.index("Beta set") < page.index("Gamma set")
    # A and E cover every CSAM list by category; B subscribes to Beta only.
    assert seen[0]["subscribers"]["Beta set"] == 3
    assert seen[0]["subscribers"]["Alpha set"] == seen[0]["subscribers"]["Gamma set"] == 2


def test_corroboration_does_not_tell_whose_anonymous_lists_hold_a_hash(world: World) -> None:
    """An open list of O and two anonymous lists hold the same hash; O also holds it privately.

    However the anonymous lists are given out (to O, to others, both to one), B's match of the
    hash is the same: its corroboration must not show that an anonymous list shares an owner
    with the open list, or with the other anonymous list.
    """
    osprey = OrganizationFactory.create(name="Osprey Open", slug="osprey")
    plover = OrganizationFactory.create(name="Plover Org", slug="plover")
    quail = OrganizationFactory.create(name="Quail Org", slug="quail")
    value = secrets.token_hex(16)
    _add(_default_list(osprey), SYSTEM, _entry("md5", value, [], ""))
    open_list = _new_list(osprey, "Osprey signals")
    _add(open_list, SYSTEM, _entry("md5", value, [], ""))
    _share(open_list, "open", SYSTEM)
    _subscribe(world.b, open_list)
    seen = []
    for quiet_owner, still_owner in itertools.product([osprey, plover, quail], repeat=2):
        with transaction.atomic():
            for name, owner in (("Quiet set", quiet_owner), ("Still set", still_owner)):
                anonymous = _new_list(owner, name)
                _add(anonymous, SYSTEM, _entry("md5", value, [], ""))
                _share(anonymous, "anonymous", SYSTEM)
                _subscribe(world.b, anonymous)
            seen.append(_as_b_sees_it(world, value)["matches"])
            transaction.set_rollback(True)
    for other in seen[1:]:
        assert other == seen[0]
    assert [m["list"]["id"] for m in seen[0]] == ["Osprey signals", "Quiet set", "Still set"]


# --- a list made private after it was anonymous -------------------------------------------------


def test_an_anonymous_list_made_private_leaves_the_feed_without_naming_its_owner(
    world: World,
) -> None:
    api = world.api()
    shared = world.shared.public_id

    def pull(cursor: str = "") -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        while True:
            response = api.get("/api/v1/export", {"cursor": cursor, "limit": "3"})
            _assert_nothing_of_a(response, world, f"export from {cursor!r}")
            page = response.json()
            items += page["items"]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                return items, cursor

    def live(items: list[dict[str, Any]]) -> set[tuple[str, str]]:
        pairs: set[tuple[str, str]] = set()
        for item in items:
            if item["list"]["id"] == shared:
                pair = (item["type"], item["value"])
                (pairs.add if item["op"] == "add" else pairs.discard)(pair)
        return pairs

    before, cursor = pull()
    live_before = live(before)
    assert ("pdq", world.hashes.pdq) in live_before
    adds = [i for i in before if i["list"]["id"] == shared and i["op"] == "add"]
    assert adds and all(i["list"]["contributor"] is None for i in adds)

    with scope(organization=world.a.pk):
        hash_list = HashList.objects.get(pk=world.shared.pk)
    _share(hash_list, "private", Actor(user=User.objects.get(email=URSULA)))

    since, _ = pull(cursor)
    again, _ = pull()
    for items in (since, again):
        removes = [i for i in items if i["list"]["id"] == shared and i["op"] == "remove"]
        assert removes, "the feed tells B to drop the list"
        assert all(i["list"]["contributor"] is None and i["list"]["anonymous"] for i in removes)
        assert all(i["list"]["id"] != shared or i["list"]["anonymous"] for i in items)
    assert not live(again), "replayed from the start, nothing of the list is live"
    assert not live(before + since), "replayed from the old cursor, nothing of it is live"
    assert {(i["type"], i["value"]) for i in since if i["op"] == "remove"} >= live_before
    # And B no longer matches it, nor finds it.
    assert api.get(f"/api/v1/lists/{shared}").status_code == 404
    matched = api.post(
        "/api/v1/match", {"hashes": [{"type": "md5", "value": world.hashes.md5}]},
        content_type="application/json",
    )  # fmt: skip
    assert matched.json()["results"][0]["matches"] == []
    _assert_nothing_of_a(matched, world, "match after the list went private")
