"""Every URL of the hub, as every kind of caller: the permission table (STYLE.md, "pretix").

The URL patterns come from Django's resolver, not from a list kept by hand: a pattern with no row
in ``TABLE`` fails ``test_every_url_pattern_is_in_the_table``, and a row whose pattern is gone fails
``test_every_table_row_is_a_url_pattern``. So a new endpoint cannot skip this file.

Adding an endpoint is one line in ``TABLE``, keyed by its URL name (or, for an unnamed pattern,
its route string):

* a web page gets a ``Page`` with the answer for GET (and for POST when the view mutates) as each
  of anonymous, Alice (owner of org A), Bob (viewer in org A), Charlie (owner of org B) and Steve
  (hub staff, member of nothing); ``org_page(alice, bob)`` is the usual shape under ``/o/<slug>/``;
* an API endpoint gets an ``Api`` with the answer per method as a key of org A, a key of org B
  and, through ``scope=``, a key of org A that lacks the scope the endpoint needs; no key, a
  logged-in browser session and a revoked key default to 401.

URL kwargs are filled from ``Tenant.ids`` (the organisation's slug and ids of objects that belong
to org A; a new kind of object is one line in ``OBJECT_MAKERS``, and every row whose URL names one
is then also tried with org B's id, which must answer 404) and ``OTHER_KWARGS`` (tokens, keys).

Every persona has just logged in (Steve with his second factor): each case runs with Python's
clock at the moment the logins were made. A row whose view asks to re-authenticate (staff pages,
``hub.decorators.staff_required``; members' sensitive actions, ``reauthentication_required``) also
says, in ``stale_get``/``stale_post``, what each persona gets once the logins are older than every
re-authentication window; ``test_every_reauthentication_requirement_has_a_row`` sees to it. Staff
pages are also tried as a staff member without two-factor, who is sent to set it up.

An answer that is wrong today is written as what the code SHOULD answer, wrapped in ``Bug(...)``:
the case is a strict xfail until the code is fixed.

Beyond the status, each case checks that a refused request changed nothing, that outsiders'
responses carry nothing of org A, and that API errors have the one error shape.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, NamedTuple

import pyotp
import pytest
import time_machine
from _pytest.mark import ParameterSet
from allauth.mfa.totp.internal.auth import TOTP
from django.apps import apps as django_apps
from django.conf import settings
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.test.client import ClientHandler
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RoutePattern
from django_scopes import scope

from hub import services
from hub.audit import Actor
from hub.middleware import ORG_KWARG, ORG_URL_PREFIX
from hub.models import ApiKey, Invitation, Membership, Organization, User
from hub.permissions import Role
from tests.conftest import _member, login, make_key, make_staff
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

ALL_SCOPES = [str(value) for value in ApiKey.Scope.values]


# --- what a caller should get ---------------------------------------------------------------


@dataclass(frozen=True)
class Redirect:
    """A 302 to exactly this path (a query string such as ``?next=`` may follow)."""

    to: str


Status = int | Redirect


@dataclass(frozen=True)
class Bug:
    """What the code SHOULD answer but does not yet: a strict xfail, with the reason why."""

    should: Status
    reason: str


Expect = Status | Bug

LOGIN = Redirect("/accounts/login/")
REAUTH = Redirect("/accounts/reauthenticate/")  # allauth asks for the password again first
STAFF_REAUTH = Redirect("/accounts/2fa/reauthenticate/")  # staff confirm with the second factor
TO_MFA_SETUP = Redirect("/account/mfa-required/")
HOME = Redirect("/")
TO_ORG_A = Redirect("/o/org-a/")
TO_MEMBERS = Redirect("/o/org-a/members/")
TO_KEYS = Redirect("/o/org-a/keys/")
TO_CHANGE_PASSWORD = Redirect("/accounts/password/change/")
TO_COMMUNITY = Redirect("/o/org-a/community/")
TO_REPORT_A = Redirect("/o/org-a/reports/report-org-a/")


class Web(NamedTuple):
    """The answers of a web page, one per persona."""

    anonymous: Expect
    alice: Expect  # owner of org A
    bob: Expect  # viewer in org A
    charlie: Expect  # owner of org B
    staff: Expect  # Steve: hub staff, member of no organisation


WEB_PERSONAS = Web._fields
# Callers who must never see anything of org A (unless a row says it legitimately shows it).
WEB_OUTSIDERS = frozenset({"anonymous", "charlie"})


def everyone(answer: Expect) -> Web:
    return Web(answer, answer, answer, answer, answer)


def users(anonymous: Expect, user: Expect) -> Web:
    """A page that treats every logged-in person alike (allauth's account and MFA pages)."""
    return Web(anonymous, user, user, user, user)


def org_page(alice: Expect, bob: Expect) -> Web:
    """Under /o/<org_slug>/: log in first; non-members (Charlie, staff) get 404, never 403."""
    return Web(LOGIN, alice, bob, 404, 404)


def staff_page(steve: Expect) -> Web:
    """A staff page: log in first; everyone but hub staff gets 404."""
    return Web(LOGIN, 404, 404, 404, steve)


# A staff page once Steve's login is older than HASHHUB_STAFF_REAUTH_MINUTES, for GET and POST.
STAFF_STALE = staff_page(STAFF_REAUTH)


class Keys(NamedTuple):
    """The answers of one API method, one per caller (see API_PERSONAS)."""

    key_a: Expect  # a key of org A with every scope
    key_b: Expect  # a key of org B with every scope
    scope: str | None = None  # the scope the endpoint needs: adds a key of org A without it
    key_a_unscoped: Expect = 403
    no_key: Expect = 401
    session: Expect = 401  # Alice logged in to the web UI: a session is not an API key
    revoked_key: Expect = 401


API_PERSONAS = ("no_key", "session", "key_a", "key_a_unscoped", "key_b", "revoked_key")
API_OUTSIDERS = frozenset({"no_key", "key_b", "revoked_key"})


def public(answer: Expect) -> Keys:
    """An API URL that answers the same whoever calls (the schema, its docs, unknown paths)."""
    return Keys(answer, answer, no_key=answer, session=answer, revoked_key=answer)


@dataclass(frozen=True)
class Page:
    get: Web
    post: Web | None = None  # for views that mutate on POST (or only accept POST)
    data: Mapping[str, Any] = field(default_factory=dict)  # the POSTed form
    reveals_org_a: bool = False  # the page shows org A to outsiders on purpose
    # The answers once every login is older than its re-authentication window (see the docstring).
    stale_get: Web | None = None
    stale_post: Web | None = None
    # What makes the stale POST one that asks (for a view that asks only for some changes).
    stale_setup: Callable[[World], None] | None = None

    def methods(self) -> dict[str, Web]:
        return {"GET": self.get} | ({"POST": self.post} if self.post else {})

    def stale_methods(self) -> dict[str, Web]:
        answers = {"GET": self.stale_get, "POST": self.stale_post}
        return {method: web for method, web in answers.items() if web is not None}


@dataclass(frozen=True)
class Api:
    get: Keys | None = None
    post: Keys | None = None
    put: Keys | None = None
    patch: Keys | None = None
    delete: Keys | None = None
    data: Mapping[str, Any] = field(default_factory=dict)  # the JSON body of non-GET methods

    def methods(self) -> dict[str, Keys]:
        answers = {"GET": self.get, "POST": self.post, "PUT": self.put}
        answers |= {"PATCH": self.patch, "DELETE": self.delete}
        return {method: keys for method, keys in answers.items() if keys is not None}


# --- the table: one line per URL pattern ------------------------------------------------------

MD5_OF_NOTHING = "d41d8cd98f00b204e9800998ecf8427e"
ENTRIES = {"entries": [{"type": "md5", "value": MD5_OF_NOTHING}]}

# The upstream source and run of the staff pages (made in _build_world with these ids).
SOURCE_ID = "source-perm"
RUN_ID = "run-perm"
# The match-rate hold of the staff health page (made in _build_world with this id).
HOLD_ID = "hold-perm"

TABLE: dict[str, Page | Api] = {
    # hub: landing, health, organisations, invitations
    "home": Page(get=Web(LOGIN, TO_ORG_A, TO_ORG_A, Redirect("/o/org-b/"), Redirect("/orgs/new/"))),
    "healthz": Page(get=everyone(200)),
    "readyz": Page(get=everyone(200)),
    # Prometheus (hub.metrics): hub staff's sessions (or the metrics token, tests/hub/
    # test_metrics.py); everyone else gets 404, anonymous visitors too (no login page).
    "metrics": Page(get=Web(404, 404, 404, 404, 200)),
    "mfa_required": Page(get=users(LOGIN, 200)),
    "org_create": Page(
        get=users(LOGIN, 200),
        post=users(LOGIN, Redirect("/o/org-new/")),
        data={"name": "Org New", "slug": "org-new"},
    ),
    "invitation_accept": Page(
        get=everyone(200), post=Web(200, 400, 400, 400, 400), reveals_org_a=True
    ),
    # hub: one organisation's pages
    "dashboard": Page(get=org_page(200, 200)),
    # Only turning "require two-factor" off asks to re-authenticate: org A requires it for the
    # stale case (so Bob, without two-factor, is sent to set it up), and the form leaves it off.
    "org_settings": Page(
        get=org_page(200, 403),
        post=org_page(Redirect("/o/org-a/settings/"), 403),
        data={"name": "Renamed"},
        stale_post=Web(LOGIN, REAUTH, TO_MFA_SETUP, 404, 404),
        stale_setup=lambda world: _require_mfa_in_org_a(world),
    ),
    # Offboarding (issue 20): only an owner deletes, re-authenticated, typing the short name.
    "org_delete": Page(
        get=org_page(405, 405),
        post=org_page(HOME, 403),
        data={"confirm": "org-a"},
        stale_post=org_page(REAUTH, 403),
    ),
    # Any member leaves; Alice, the only owner, is refused (back to the members page, unchanged).
    "member_leave": Page(get=org_page(405, 405), post=org_page(TO_MEMBERS, HOME)),
    "members": Page(
        get=org_page(200, 200),
        post=org_page(TO_MEMBERS, 403),
        data={"email": "erin@example.test", "role": "viewer"},
    ),
    "member_role": Page(
        get=org_page(405, 405),
        post=org_page(TO_MEMBERS, 403),
        data={"role": "analyst"},
        stale_post=org_page(REAUTH, 403),
    ),
    "member_remove": Page(
        get=org_page(405, 405), post=org_page(TO_MEMBERS, 403), stale_post=org_page(REAUTH, 403)
    ),
    "invitation_revoke": Page(get=org_page(405, 405), post=org_page(TO_MEMBERS, 403)),
    "api_keys": Page(
        get=org_page(200, 403),
        post=org_page(201, 403),
        data={"name": "new key", "scopes": ["match"]},
        stale_get=org_page(200, 403),  # the page itself does not ask
        stale_post=org_page(REAUTH, 403),
    ),
    "api_key_revoke": Page(
        get=org_page(405, 405), post=org_page(TO_KEYS, 403), stale_post=org_page(REAUTH, 403)
    ),
    "api_key_rotate": Page(
        get=org_page(405, 405), post=org_page(201, 403), stale_post=org_page(REAUTH, 403)
    ),
    "audit_log": Page(get=org_page(200, 403)),
    # hub: staff
    "staff_organizations": Page(get=staff_page(200), stale_get=STAFF_STALE),
    "staff_organization_approve": Page(
        get=staff_page(405),
        post=staff_page(Redirect("/staff/organizations/")),
        data={"approved": "0"},
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    # Staff delete a suspended organisation and restore a deleted one (issue 20); org A is
    # approved and not deleted, so both are refused with a message, back to the list.
    "staff_organization_delete": Page(
        get=staff_page(405),
        post=staff_page(Redirect("/staff/organizations/")),
        data={"confirm": "org-a"},
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    "staff_organization_restore": Page(
        get=staff_page(405),
        post=staff_page(Redirect("/staff/organizations/")),
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    # Staff read and override one organisation's quotas (issue 18); the change is audited.
    "staff_organization_quotas": Page(
        get=staff_page(200),
        post=staff_page(Redirect("/staff/organizations/org-a/quotas/")),
        data={"lists": "60"},
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    # API
    "api_me": Api(get=Keys(200, 200)),
    "api_schema": Api(get=public(200)),
    "api_docs": Api(get=public(200)),
    "api_not_found": Api(get=public(404), post=public(404)),
    "api_hashtypes": Api(get=Keys(200, 200)),
    "api_lists": Api(
        get=Keys(200, 200),
        post=Keys(201, 201, scope="lists:write"),  # each key creates a list in its own org
        data={"name": "New list", "category": "se"},
    ),
    "api_list": Api(
        get=Keys(200, 404), patch=Keys(200, 404, scope="lists:write"), data={"name": "Renamed"}
    ),
    "api_list_entries": Api(
        get=Keys(200, 404, scope="lists:read"),
        post=Keys(200, 404, scope="lists:write"),
        data=ENTRIES,
    ),
    "api_list_entries_remove": Api(post=Keys(200, 404, scope="lists:write"), data=ENTRIES),
    # Org A's list is private: in nobody's catalogue (and an owner never subscribes to its own).
    "api_list_subscription": Api(
        put=Keys(404, 404, scope="lists:admin"), delete=Keys(404, 404, scope="lists:admin")
    ),
    "api_category_subscription": Api(
        put=Keys(200, 200, scope="lists:admin"), delete=Keys(200, 200, scope="lists:admin")
    ),
    # The match policy (issue 19): read with the match scope, changed with lists:admin.
    "api_policy": Api(
        get=Keys(200, 200, scope="match"),
        put=Keys(200, 200, scope="lists:admin"),
        data={"thresholds": {"pdq": 24}},
    ),
    # The hash is in nobody's list: refused alike (400 not_in_list) for every key.
    "api_policy_disabled_entries": Api(
        post=Keys(400, 400, scope="lists:admin"),
        data={"list": "none", "type": "md5", "value": MD5_OF_NOTHING, "until": "2099-01-01"},
    ),
    "api_policy_disabled_entry": Api(delete=Keys(200, 404, scope="lists:admin")),
    "api_match": Api(post=Keys(200, 200, scope="match"), data={"hashes": ENTRIES["entries"]}),
    # A JSON body carries no image: refused alike for every key that may match.
    "api_match_image": Api(post=Keys(400, 400, scope="match")),
    "api_export": Api(get=Keys(200, 200, scope="export")),
    # Reviewing detections by API (issue 19): each key sees its own organisation's detections.
    "api_detections": Api(get=Keys(200, 200, scope="review")),
    "api_detection": Api(get=Keys(200, 404, scope="review")),
    "api_detection_review": Api(
        post=Keys(200, 404, scope="review"), data={"action": "dismiss", "note": "by API"}
    ),
    # Preservation holds (issue 21): the maker's hold is already released, so releasing is 409.
    "api_detection_holds": Api(
        get=Keys(200, 404, scope="review"),
        post=Keys(201, 404, scope="review"),
        data={"days": 30, "reason": "by API"},
    ),
    "api_detection_hold_release": Api(post=Keys(409, 404, scope="review")),
    # Reports by API (issue 21), scope reports. Opening a report on org A's detection, which is
    # reported already (see _reported_detection): 409 for A's key, 404 for B's.
    "api_reports": Api(
        get=Keys(200, 200, scope="reports"),
        post=Keys(409, 404, scope="reports"),
        data={"detection": "reported-org-a"},
    ),
    "api_report": Api(
        get=Keys(200, 404, scope="reports"),
        patch=Keys(200, 404, scope="reports"),
        data={"notes": "by API"},
    ),
    "api_report_download": Api(get=Keys(200, 404, scope="reports")),
    # The HMA-compatible facade (issue 20; hma/): API-like, the same keys and scopes as API v1.
    # A JSON body carries no file, and no query no hash: refused alike (400) for every key.
    "hma_hash": Api(get=Keys(400, 400, scope="match"), post=Keys(400, 400, scope="match")),
    "hma_lookup": Api(get=Keys(400, 400, scope="match"), post=Keys(400, 400, scope="match")),
    "hma_raw_lookup": Api(get=Keys(422, 422, scope="match")),  # HMA's 422: signal missing
    "hma_compare": Api(post=Keys(200, 200, scope="match")),
    "hma_index_status": Api(get=Keys(200, 200, scope="match")),
    "hma_banks": Api(
        get=Keys(200, 200), post=Keys(201, 201, scope="lists:admin"), data={"name": "NEW_BANK"}
    ),
    "hma_bank": Api(
        get=Keys(200, 404),
        put=Keys(200, 404, scope="lists:write"),
        delete=Keys(200, 404, scope="lists:admin"),
        data={"name": "RENAMED_BANK"},
    ),
    "hma_bank_signal": Api(
        post=Keys(200, 404, scope="lists:write"), data={"md5": secrets.token_hex(16)}
    ),
    "hma_bank_content": Api(post=Keys(400, 404, scope="lists:write")),  # no file: 400
    "hma_bank_content_item": Api(
        get=Keys(200, 404, scope="lists:read"),
        put=Keys(200, 404, scope="lists:admin"),
        delete=Keys(200, 404, scope="lists:write"),
        data={"disable_until_ts": 1},  # HMA's "enabled"
    ),
    "hma_not_found": Api(get=public(404), post=public(404)),
    # matching: detections and the allow list
    "detections": Page(get=org_page(200, 200)),
    "detections_chart": Page(get=org_page(200, 200)),
    # Issue 19: many detections reviewed at once (nothing ticked: back to the queue), the queue's
    # settings (the link template: owners and admins change it) and the dashboard's figures.
    "detections_bulk_review": Page(
        get=org_page(405, 405), post=org_page(Redirect("/o/org-a/detections/"), 403)
    ),
    "detections_settings": Page(
        get=org_page(200, 200),
        post=org_page(Redirect("/o/org-a/review/settings/"), 403),
        data={"link_template": "https://moderation.example/item/{content_ref}"},
    ),
    "detections_summary": Page(get=org_page(200, 200)),
    "detection_detail": Page(get=org_page(200, 200)),
    # A valid review redirects to the detection's random id, so the POST here is refused: 400.
    "detection_review": Page(get=org_page(405, 405), post=org_page(400, 403)),
    # Issue 21: a valid hold redirects to the detection's random id, so the POST is refused (0
    # days: 400); the maker's hold is already released, so releasing it again is 409.
    "detection_hold_place": Page(
        get=org_page(405, 405), post=org_page(400, 403), data={"days": "0"}
    ),
    "detection_hold_release": Page(get=org_page(405, 405), post=org_page(409, 403)),
    # reports (issue 21): analysts and up read and write, owners and admins choose the profile;
    # viewers are refused. The maker's report has a fixed id (report-org-a) and its detection is
    # reported already, so opening another on it goes to that report.
    "reports": Page(
        get=org_page(200, 403),
        post=org_page(Redirect("/o/org-a/reports/"), 403),
        data={"profile": "ncmec"},
    ),
    "reports_lag_chart": Page(get=org_page(200, 403)),
    "report_open": Page(get=org_page(405, 405), post=org_page(TO_REPORT_A, 403)),
    "report_detail": Page(
        get=org_page(200, 403),
        post=org_page(TO_REPORT_A, 403),
        data={"incident_type": "child_pornography", "notes": "by page"},
    ),
    "report_mark_filed": Page(
        get=org_page(405, 405),
        post=org_page(TO_REPORT_A, 403),
        data={"hotline_report_id": "TIP-1"},
    ),
    # The maker's report is a draft: only a filed one can be acknowledged (409).
    "report_mark_acknowledged": Page(get=org_page(405, 405), post=org_page(409, 403)),
    "report_download": Page(get=org_page(200, 403)),
    "report_print": Page(get=org_page(200, 403)),
    # matching: webhooks (a valid create shows the new secret once: 201)
    "webhooks": Page(
        get=org_page(200, 403),
        post=org_page(201, 403),
        data={"url": "https://8.8.8.8/hashhub", "description": "prod"},
        stale_get=org_page(200, 403),  # the page itself does not ask
        stale_post=org_page(REAUTH, 403),
    ),
    "webhook_detail": Page(get=org_page(200, 403)),
    "webhook_delete": Page(
        get=org_page(405, 405),
        post=org_page(Redirect("/o/org-a/webhooks/"), 403),
        stale_post=org_page(REAUTH, 403),
    ),
    "webhook_test": Page(
        get=org_page(405, 405), post=org_page(Redirect("/o/org-a/webhooks/webhook-org-a/"), 403)
    ),
    "webhook_rotate": Page(
        get=org_page(405, 405), post=org_page(201, 403), stale_post=org_page(REAUTH, 403)
    ),
    "allow_list": Page(get=org_page(200, 200)),
    "allow_list_remove": Page(
        get=org_page(405, 405), post=org_page(Redirect("/o/org-a/allow-list/"), 403)
    ),
    # sharing: the community catalogue, one's own shared lists, subscriptions, visibility, impact.
    # Org A's list is private: its own page shows a preview, and it is in nobody's catalogue.
    "community": Page(get=org_page(200, 200)),
    "community_shared": Page(get=org_page(200, 200)),
    "community_list": Page(get=org_page(200, 200)),
    "community_subscription": Page(
        get=org_page(405, 405), post=org_page(404, 403), data={"subscribed": "1"}
    ),
    "community_category_subscription": Page(
        get=org_page(405, 405),
        post=org_page(TO_COMMUNITY, 403),
        data={"category": "csam", "subscribed": "1"},
    ),
    "match_policy": Page(get=org_page(200, 200)),
    "match_policy_change": Page(
        get=org_page(405, 405),
        post=org_page(Redirect("/o/org-a/policy/"), 403),
        data={"part": "settings", "default_action": "block", "retroactive_days": "0"},
    ),
    "community_preferences": Page(
        get=org_page(405, 405), post=org_page(TO_COMMUNITY, 403), data={"ignore_disputed": "on"}
    ),
    # Without the confirmation box ticked the change is refused: 400.
    "list_visibility": Page(
        get=org_page(200, 200), post=org_page(400, 403), data={"visibility": "open"}
    ),
    "list_impact": Page(get=org_page(200, 200)),
    # sharing: disputes. Org A's dispute is one a third organisation raised on A's shared list, so
    # Alice may reject it or retract the entry, but has nothing of her own to withdraw (404).
    "disputes": Page(get=org_page(200, 200)),
    # Org A's list is its own: nothing to dispute (400 own_list).
    "dispute_new": Page(
        get=org_page(400, 403),
        post=org_page(400, 403),
        data={"type": "md5", "value": MD5_OF_NOTHING, "reason": "not_csam"},
    ),
    "dispute_detail": Page(get=org_page(200, 200)),
    "dispute_withdraw": Page(get=org_page(405, 405), post=org_page(404, 403)),
    "dispute_reject": Page(
        get=org_page(405, 405),
        post=org_page(Redirect("/o/org-a/disputes/dispute-org-a/"), 403),
        data={"note": "The hash is correct; we checked it again."},
    ),
    "dispute_retract": Page(
        get=org_page(405, 405), post=org_page(Redirect("/o/org-a/disputes/dispute-org-a/"), 403)
    ),
    "api_disputes": Api(
        get=Keys(200, 200),
        post=Keys(404, 404, scope="lists:write"),
        data={"list": "no-such-list", "type": "md5", "value": MD5_OF_NOTHING, "reason": "other"},
    ),
    # sharing: staff look a list up; revealing its owner is a POST with a reason (audited).
    "staff_lists": Page(get=staff_page(200), stale_get=STAFF_STALE),
    # Upstream sources: staff only, 404 for everyone else.
    "staff_sources": Page(
        get=staff_page(200),
        post=staff_page(400),
        data={"name": ""},
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    "staff_source": Page(
        get=staff_page(200),
        post=staff_page(400),
        data={"interval_minutes": "-1"},
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    "staff_source_run_now": Page(
        get=staff_page(405),
        post=staff_page(Redirect(f"/staff/sources/{SOURCE_ID}/")),
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    # No file in the form: a message, back to the source.
    "staff_source_upload": Page(
        get=staff_page(405),
        post=staff_page(Redirect(f"/staff/sources/{SOURCE_ID}/")),
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    "staff_source_run": Page(get=staff_page(200), stale_get=STAFF_STALE),
    "staff_source_run_progress": Page(get=staff_page(200), stale_get=STAFF_STALE),
    "staff_source_entitlements": Page(get=staff_page(200), stale_get=STAFF_STALE),
    "staff_source_access": Page(
        get=staff_page(405),
        post=staff_page(Redirect(f"/staff/sources/{SOURCE_ID}/entitlements/")),
        data={"access": "all"},
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    "staff_source_entitlement_set": Page(
        get=staff_page(405),
        post=staff_page(Redirect(f"/staff/sources/{SOURCE_ID}/entitlements/")),
        data={"granted": "1"},
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    # matching: the health page (the reconciler's latest result); a check is queued by POST.
    "staff_health": Page(get=staff_page(200), stale_get=STAFF_STALE),
    "staff_health_check": Page(
        get=staff_page(405),
        post=staff_page(Redirect("/staff/health/")),
        data={"mode": "check"},
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    # matching.holds: staff release a held hash, or retract it from the shared lists (audited).
    "staff_hold_release": Page(
        get=staff_page(405),
        post=staff_page(Redirect("/staff/health/")),
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    "staff_hold_retract": Page(
        get=staff_page(405),
        post=staff_page(Redirect("/staff/health/")),
        data={"reason": "a meme"},
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    "staff_list_reveal": Page(
        get=staff_page(405),
        post=staff_page(200),
        data={"reason": "a complaint about this list"},
        stale_get=STAFF_STALE,
        stale_post=STAFF_STALE,
    ),
    # lists: pages (valid POSTs redirect to random ids, so the POSTed data here is refused: 400)
    "lists": Page(
        get=org_page(200, 200), post=org_page(400, 403), data={"name": "", "category": "se"}
    ),
    "list_detail": Page(
        get=org_page(200, 200), post=org_page(400, 403), data={"type": "md5", "value": "zz"}
    ),
    "list_entry_remove": Page(get=org_page(405, 405), post=org_page(400, 403)),
    "list_settings": Page(get=org_page(405, 405), post=org_page(400, 403), data={"name": ""}),
    "list_delete": Page(get=org_page(405, 405), post=org_page(Redirect("/o/org-a/lists/"), 403)),
    "list_upload": Page(get=org_page(200, 403), post=org_page(400, 403)),
    "list_add_image": Page(get=org_page(200, 403), post=org_page(400, 403)),
    "list_add_image_hashes": Page(get=org_page(405, 405), post=org_page(400, 403)),
    "list_export": Page(get=org_page(200, 200)),
    "import_job": Page(get=org_page(200, 200)),
    "import_job_progress": Page(get=org_page(200, 200)),
    "import_job_report": Page(get=org_page(200, 200)),
    # allauth: accounts (every logged-in persona is a verified user with a password; only Steve
    # has two-factor, an authenticator app)
    "account_login": Page(get=users(200, HOME), post=users(400, HOME)),
    "account_logout": Page(get=users(HOME, 200), post=everyone(HOME)),
    "account_inactive": Page(get=everyone(200)),
    "account_signup": Page(get=users(200, HOME), post=users(400, HOME)),
    "account_reauthenticate": Page(get=users(LOGIN, 200), post=users(LOGIN, 400)),
    # Re-authentication by an e-mailed code is switched off (settings): refused once logged in.
    "account_request_reauthentication_code": Page(get=users(LOGIN, 403), post=users(LOGIN, 403)),
    "account_confirm_reauthentication_code": Page(get=users(LOGIN, 403), post=users(LOGIN, 403)),
    "account_email": Page(get=users(LOGIN, 200), post=users(LOGIN, Redirect("/accounts/email/"))),
    "account_email_verification_sent": Page(get=everyone(200)),
    "account_change_password": Page(get=users(LOGIN, 200), post=users(LOGIN, 400)),
    "account_set_password": Page(
        get=users(LOGIN, TO_CHANGE_PASSWORD), post=users(LOGIN, TO_CHANGE_PASSWORD)
    ),
    "account_reset_password": Page(get=everyone(200), post=everyone(400)),
    "account_reset_password_done": Page(get=everyone(200)),
    # An unknown key shows allauth's "link invalid" page on GET; POSTing it is refused.
    "account_reset_password_from_key": Page(get=everyone(200), post=everyone(400)),
    "account_reset_password_from_key_done": Page(get=everyone(200)),
    "account_confirm_email": Page(get=everyone(200), post=everyone(404)),
    # No login is pending, so the code and MFA steps send the caller back where they belong.
    "account_confirm_login_code": Page(get=users(LOGIN, HOME), post=users(LOGIN, HOME)),
    "mfa_authenticate": Page(get=users(LOGIN, HOME), post=users(LOGIN, HOME)),
    # allauth: MFA management (what changes MFA asks for the password again)
    "mfa_index": Page(get=users(LOGIN, 200)),
    # Steve re-authenticates with his authenticator app (a POST without a code is refused).
    "mfa_reauthenticate": Page(
        get=Web(LOGIN, REAUTH, REAUTH, REAUTH, 200), post=Web(LOGIN, REAUTH, REAUTH, REAUTH, 400)
    ),
    "mfa_activate_totp": Page(get=users(LOGIN, REAUTH), post=users(LOGIN, REAUTH)),
    "mfa_deactivate_totp": Page(
        get=Web(LOGIN, 404, 404, 404, REAUTH), post=Web(LOGIN, 404, 404, 404, REAUTH)
    ),
    "mfa_view_recovery_codes": Page(get=users(LOGIN, 404)),
    "mfa_generate_recovery_codes": Page(get=users(LOGIN, REAUTH), post=users(LOGIN, REAUTH)),
    "mfa_download_recovery_codes": Page(get=users(LOGIN, 404)),
    "mfa_list_webauthn": Page(get=users(LOGIN, 200)),
    "mfa_add_webauthn": Page(get=users(LOGIN, REAUTH), post=users(LOGIN, REAUTH)),
    "mfa_reauthenticate_webauthn": Page(get=users(LOGIN, REAUTH), post=users(LOGIN, REAUTH)),
    "mfa_remove_webauthn": Page(get=users(LOGIN, REAUTH), post=users(LOGIN, REAUTH)),
    "mfa_edit_webauthn": Page(get=users(LOGIN, REAUTH), post=users(LOGIN, REAUTH)),
}


# --- the data every case runs against -------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    """One organisation and one object of each kind that belongs to it."""

    org: Organization
    ids: Mapping[str, str]  # URL kwarg -> the id of this organisation's object of that kind
    invitation: Invitation
    invitation_token: str
    key: ApiKey
    key_secret: str


@dataclass(frozen=True)
class World:
    a: Tenant
    b: Tenant
    people: Mapping[str, User]  # persona -> user
    # persona -> session key of a login made for this file; also STAFF_WITHOUT_MFA's
    sessions: Mapping[str, str]
    revoked_key_secret: str
    logged_in_at: float  # when those logins were made (time.time()): every case runs then


# A second hub staff member, with no second factor: staff pages send him to set one up.
STAFF_WITHOUT_MFA = "staff_without_mfa"


# The URL kwargs that name the organisation itself; every other kwarg not in OTHER_KWARGS names
# an object an organisation owns, and is looked up in Tenant.ids.
TENANT_KWARGS = frozenset({"org_slug", "slug"})  # staff pages name an organisation by "slug"
# URL kwargs that name no organisation's object: a plausible value.
OTHER_KWARGS: dict[str, Callable[[World], str]] = {
    "token": lambda w: w.a.invitation_token,  # the link e-mailed with org A's invitation
    "key": lambda w: "MQ:1tXyzA:not-a-real-signature",  # allauth e-mail / password-reset key
    "uidb36": lambda w: "1",
    "pk": lambda w: "1",  # a WebAuthn authenticator that does not exist
    "rest": lambda w: "v1/no-such-endpoint",
    "category": lambda w: "csam",
    # Upstream sources belong to no organisation: staff see them all (made in _build_world).
    "source_id": lambda w: SOURCE_ID,
    "run_id": lambda w: RUN_ID,
    # Holds belong to no organisation either (matching.holds; made in _build_world).
    "hold_id": lambda w: HOLD_ID,
}


def _new_source() -> None:
    from lists.models import ImportRun, Source
    from lists.sources.services import source_create

    # A closed port on this machine: the source guard refuses loopback unless the host is listed.
    with override_settings(HASHHUB_SOURCE_ALLOWED_HOSTS=["127.0.0.1"]):
        source = source_create(
            name="Permission feed",
            kind="feed",
            config={"url": "http://127.0.0.1:9/feed.csv", "format": "csv"},
            actor=Actor(system="test"),
        )
    Source.objects.filter(pk=source.pk).update(public_id=SOURCE_ID)
    ImportRun.objects.create(source=source, public_id=RUN_ID, trigger="test")


def _new_hold() -> None:
    import datetime as dt

    from lists.models import Hash
    from matching.models import HeldHash

    held = Hash.objects.create(signal_type="md5", value=bytes.fromhex("ab" * 16))
    HeldHash.objects.create(
        public_id=HOLD_ID, hash=held, day=dt.date(2026, 3, 18),
        matches=60, organizations=6, baseline_matches=0, baseline_days=7,
    )  # fmt: skip


def _new_list(org: Organization) -> str:
    from lists.services import list_create  # lists sits above hub (DESIGN.md): import late

    with scope(organization=org.pk):
        return list_create(
            org=org, name="Incidents", category="csam", actor=Actor(system="test")
        ).public_id


# Objects of the apps above hub, made in each organisation once some URL names them: a new kind
# of object is one line here (hub's own objects are made in _tenant).
def _new_import_job(org: Organization) -> str:
    from lists.models import HashList, ImportJob

    with scope(organization=org.pk):
        target = HashList.objects.get(organization=org, category="csam", is_default=True)
        return ImportJob.objects.create(
            organization=org, hash_list=target, filename="h.csv"
        ).public_id


def _new_detection(org: Organization) -> str:
    from matching.models import Detection

    with scope(organization=org.pk):
        return Detection.objects.create(
            organization=org, source_label="test",
            submitted=[{"type": "md5", "value": MD5_OF_NOTHING}],
            tiers=["own"], categories=["csam"],
        ).public_id  # fmt: skip


def _new_allowed_hash(org: Organization) -> str:
    from matching.models import AllowedHash

    with scope(organization=org.pk):
        return AllowedHash.objects.create(
            organization=org, signal_type="md5",
            value=bytes.fromhex(MD5_OF_NOTHING), added_by_label="test",
        ).public_id  # fmt: skip


def _new_webhook(org: Organization) -> str:
    from matching.webhooks import webhook_create

    with scope(organization=org.pk):
        endpoint, _secret = webhook_create(
            org=org, url="https://8.8.8.8/hashhub", description="", actor=Actor(system="test")
        )
        # A fixed id, so that the redirect of webhook_test can be written in TABLE.
        endpoint.public_id = f"webhook-{org.slug}"
        endpoint.save(update_fields=["public_id"])
    return endpoint.public_id


def _new_dispute(org: Organization) -> str:
    """A dispute on ``org``'s anonymous shared list, raised by a third (approved) organisation.

    So ``org`` has received it (its owner may reject it or retract the entry) but not raised it.
    """
    from lists.services import EntryInput, entry_add, list_create
    from sharing.disputes import dispute_create
    from sharing.services import anonymous_publish, list_visibility_set

    system = Actor(system="test")
    disputer = OrganizationFactory.create(name="Disputer", slug=f"disputer-{org.slug}")
    value = secrets.token_hex(16)  # a made-up md5
    with scope(organization=org.pk):
        shared = list_create(org=org, name="Shared", category="csam", actor=system)
        entry_add(hash_list=shared, items=[EntryInput("md5", value)], actor=system)
        list_visibility_set(hash_list=shared, visibility="anonymous", actor=system)
    anonymous_publish()  # others see it from the next publication on
    with scope(organization=disputer.pk):
        dispute = dispute_create(
            org=disputer, list_public_id=shared.public_id, signal_type="md5", value=value,
            reason="not_csam", actor=system,
        )  # fmt: skip
        # A fixed id, so that the redirects of dispute_reject and dispute_retract can be written.
        dispute.public_id = f"dispute-{org.slug}"
        dispute.save(update_fields=["public_id"])
    return dispute.public_id


SYS = Actor(system="test")


def _hma_bank(org: Organization) -> Any:
    """An own list of ``org`` named to HMA's pattern (hma/): a bank of that very name."""
    from lists.models import HashList
    from lists.services import list_create

    name = "PERM_BANK_" + org.slug.upper().replace("-", "_")
    with scope(organization=org.pk):
        found = HashList.objects.filter(organization=org, name=name).first()
        return found or list_create(org=org, name=name, category="csam", actor=SYS)


def _new_hma_content(org: Organization) -> str:
    """A hash in ``org``'s HMA bank: its ``bank_content_id`` (the entry's random hma_id)."""
    from lists.models import Entry
    from lists.services import EntryInput, entry_add

    bank = _hma_bank(org)
    with scope(organization=org.pk):
        entry_add(hash_list=bank, items=[EntryInput("md5", secrets.token_hex(16))], actor=SYS)
        return str(Entry.objects.filter(hash_list=bank).values_list("hma_id", flat=True).get())


def _new_entry_disable(org: Organization) -> str:
    """A hash of ``org``'s own CSAM list that ``org`` does not match for a while (its policy)."""
    import datetime as dt

    from django.utils import timezone

    from lists.models import HashList
    from lists.services import EntryInput, entry_add
    from sharing.policy import entry_disable

    system = Actor(system="test")
    value = secrets.token_hex(16)
    with scope(organization=org.pk):
        own = HashList.objects.get(organization=org, category="csam", is_default=True)
        entry_add(hash_list=own, items=[EntryInput("md5", value)], actor=system)
    disable = entry_disable(
        org=org, list_id=own.public_id, signal_type="md5", value=value,
        until=timezone.now() + dt.timedelta(days=30), note="", actor=system,
    )  # fmt: skip
    return disable.public_id


def _new_preservation_hold(org: Organization) -> str:
    """A preservation hold on ``org``'s newest detection (the one ``detection_id`` names: made
    just before), placed and released (a valid release would redirect to a random id)."""
    from matching.models import Detection
    from matching.preservation import hold_place, hold_release

    with scope(organization=org.pk):
        detection = Detection.objects.filter(organization=org).order_by("-pk").first()
        if detection is None:
            detection = Detection.objects.get(public_id=_new_detection(org))
        hold = hold_place(detection=detection, actor=SYS, days=30, reason="permissions")
        hold_release(hold=hold, actor=SYS)
        return hold.public_id


def _reported_detection(org: Organization) -> Any:
    """A detection of ``org`` confirmed as CSAM and reported (report ``report-<slug>``): both
    with fixed ids, so that the redirects of the report pages can be written in TABLE."""
    from matching.models import Detection
    from matching.review import detection_confirm
    from reports.models import Report
    from reports.services import report_open

    with scope(organization=org.pk):
        found = Detection.objects.filter(public_id=f"reported-{org.slug}").first()
        if found is not None:
            return found
        detection = Detection.objects.create(
            organization=org, public_id=f"reported-{org.slug}", source_label="test",
            content_ref=f"post-{org.slug}",
            submitted=[{"type": "md5", "value": secrets.token_hex(16)}],
            tiers=["own"], categories=["csam"],
        )  # fmt: skip
        detection_confirm(detection=detection, category="csam", actor=SYS)
        report = report_open(detection=detection, actor=SYS)
        Report.objects.filter(pk=report.pk).update(public_id=f"report-{org.slug}")
        return detection


def _new_report(org: Organization) -> str:
    _reported_detection(org)
    return f"report-{org.slug}"


OBJECT_MAKERS: dict[str, Callable[[Organization], str]] = {
    "list_id": _new_list,
    "job_id": _new_import_job,
    "detection_id": _new_detection,
    "allowed_id": _new_allowed_hash,
    "endpoint_id": _new_webhook,
    "dispute_id": _new_dispute,
    "disable_id": _new_entry_disable,
    "bank_name": lambda org: _hma_bank(org).name,
    "content_id": lambda org: _new_hma_content(org),
    "preservation_id": _new_preservation_hold,
    "report_id": _new_report,
    # report_open's detection: confirmed as CSAM and reported already (see _reported_detection).
    "reportable_id": lambda org: _reported_detection(org).public_id,
}


def _tenant(org: Organization, member: User, key: tuple[ApiKey, str], invitee: str) -> Tenant:
    """``org`` with an invitation, ``key`` and what OBJECT_MAKERS makes; ids keyed by kwarg."""
    with scope(organization=org.pk):
        invitation, token = services.invitation_create(
            org=org, email=invitee, role=Role.VIEWER, granter=Role.OWNER, actor=Actor(system="test")
        )
    ids = {
        "org_slug": org.slug,
        "slug": org.slug,
        "member_id": Membership.objects.get(organization=org, user=member).public_id,
        "invitation_id": invitation.public_id,
        "key_id": key[0].public_id,
    }
    url_kwargs = {kwarg for endpoint in _endpoints().values() for kwarg in endpoint.kwargs}
    ids |= {kwarg: make(org) for kwarg, make in OBJECT_MAKERS.items() if kwarg in url_kwargs}
    return Tenant(
        org=org,
        ids=ids,
        invitation=invitation,
        invitation_token=token,
        key=key[0],
        key_secret=key[1],
    )


def _build_world() -> World:
    # The same characters as tests/conftest.py's fixtures, made with its own helpers.
    org_a = OrganizationFactory.create(name="Org A", slug="org-a")
    org_b = OrganizationFactory.create(name="Org B", slug="org-b")
    people = {
        "alice": _member(org_a, "alice@example.test", Role.OWNER),
        "bob": _member(org_a, "bob@example.test", Role.VIEWER),
        "charlie": _member(org_b, "charlie@example.test", Role.OWNER),
        "staff": make_staff("steve@example.test"),
    }
    sam = make_staff("sam@example.test", mfa=False)
    key_a = make_key(org_a, ALL_SCOPES, name="A's key")
    key_b = make_key(org_b, ALL_SCOPES, name="B's key")
    old_key, old_secret = make_key(org_a, ALL_SCOPES, name="A's old key")
    _new_source()
    _new_hold()
    with scope(organization=org_a.pk):
        services.api_key_revoke(key=old_key, actor=Actor(system="test"))
    a = _tenant(org_a, people["bob"], key_a, "invitee-a@example.test")
    b = _tenant(org_b, people["charlie"], key_b, "invitee-b@example.test")
    logins = people | {STAFF_WITHOUT_MFA: sam}
    return World(
        a=a,
        b=b,
        people=people,
        sessions={
            persona: login(user).cookies[settings.SESSION_COOKIE_NAME].value
            for persona, user in logins.items()
        },
        revoked_key_secret=old_secret,
        logged_in_at=time.time(),
    )


def _require_mfa_in_org_a(world: World) -> None:
    """Org A requires two-factor and Alice has it: turning the requirement off asks again."""
    Organization.objects.filter(pk=world.a.org.pk).update(require_mfa=True)
    TOTP.activate(world.people["alice"], pyotp.random_base32())


@pytest.fixture
def just_logged_in(world: World) -> Iterator[None]:
    """Python's clock at the moment of the world's logins (ticking on), whenever the case runs:
    how long the file has been running never makes a login older than a window."""
    with time_machine.travel(world.logged_in_at, tick=True):
        yield


# Later than every re-authentication window after the logins.
STALE_AFTER_MINUTES = 1 + max(
    settings.HASHHUB_REAUTH_MINUTES, settings.HASHHUB_STAFF_REAUTH_MINUTES
)


@pytest.fixture
def logins_gone_stale(world: World) -> Iterator[None]:
    with time_machine.travel(world.logged_in_at + STALE_AFTER_MINUTES * 60, tick=True):
        yield


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    """Org A (Alice, Bob, an invitation, keys, ...), org B (Charlie, the same kinds), Steve.

    Built once for this file, inside a transaction rolled back when the file is done. Each case
    runs in a savepoint of it (pytest-django's ``db``) that is rolled back after the case, so
    every case, POSTs included, starts from exactly this data. Building it per case with the
    function-scoped conftest fixtures cost about 60 ms, times several hundred cases.
    """
    fast_hasher = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with (
        django_db_blocker.unblock(),
        override_settings(PASSWORD_HASHERS=fast_hasher),
        transaction.atomic(),
    ):
        yield _build_world()
        transaction.set_rollback(True)


# --- the URL patterns, from Django's resolver -------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    key: str  # the URL name (namespace-qualified), or the route for an unnamed pattern
    route: str
    name: str | None
    kwargs: tuple[str, ...]
    plain_route: bool  # every part is a path() route, so the URL can be built by substitution
    callback: Callable[..., Any]


def _walk(
    patterns: list[URLPattern | URLResolver],
    prefix: str = "",
    namespace: str = "",
    kwargs: tuple[str, ...] = (),
    plain: bool = True,
) -> Iterator[tuple[str, str | None, tuple[str, ...], bool, Callable[..., Any]]]:
    for entry in patterns:
        route = prefix + str(entry.pattern)
        names = kwargs + tuple(n for n in entry.pattern.regex.groupindex if n not in kwargs)
        is_plain = plain and isinstance(entry.pattern, RoutePattern)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, route, inner, names, is_plain)
        else:
            name = f"{namespace}{entry.name}" if entry.name else None
            yield route, name, names, is_plain, entry.callback


@cache
def _endpoints() -> dict[str, Endpoint]:
    found = list(_walk(get_resolver().url_patterns))
    counts = Counter(name for _, name, _, _, _ in found if name)
    endpoints: dict[str, Endpoint] = {}
    for route, name, kwargs, plain, callback in found:
        # A name used twice cannot be reversed to both patterns: those are keyed by route.
        key = name if name and counts[name] == 1 else route
        endpoints[key] = Endpoint(key, route, name, kwargs, plain, callback)
    return endpoints


def _object_kwargs(endpoint: Endpoint) -> set[str]:
    return set(endpoint.kwargs) - TENANT_KWARGS - OTHER_KWARGS.keys()


def _url(endpoint: Endpoint, world: World, tenant: Tenant, ids: Tenant) -> str:
    """The endpoint's URL under ``tenant``, naming the objects of ``ids`` (usually the same)."""
    values: dict[str, str] = {}
    for kwarg in endpoint.kwargs:
        owner = tenant if kwarg in TENANT_KWARGS else ids
        if kwarg in OTHER_KWARGS:
            values[kwarg] = OTHER_KWARGS[kwarg](world)
        elif kwarg in owner.ids:
            values[kwarg] = owner.ids[kwarg]
        else:
            pytest.fail(
                f"{endpoint.key}: give URL kwarg {kwarg!r} a value (Tenant.ids/OTHER_KWARGS)"
            )
    if endpoint.name and endpoint.key == endpoint.name:
        return reverse(endpoint.name, kwargs=values)
    if not endpoint.plain_route:
        pytest.fail(f"{endpoint.route}: name this regex pattern so its URL can be reversed")
    path = endpoint.route
    for kwarg, value in values.items():
        path = re.sub(rf"<(?:\w+:)?{re.escape(kwarg)}>", value.replace("\\", r"\\"), path)
    return "/" + path


# --- the callers ------------------------------------------------------------------------------


@cache
def _shared_handler() -> ClientHandler:
    # Each Client builds the middleware chain on its first request, and WhiteNoise then indexes
    # every static file (~40 ms); one handler for the whole file keeps the cases fast.
    return ClientHandler(enforce_csrf_checks=False)


def _client(*, session: str | None = None, bearer: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    # A crash must show up as the 500 it is, next to the status the table expects.
    client = Client(headers=headers, raise_request_exception=False)
    client.handler = _shared_handler()
    if session:
        client.cookies[settings.SESSION_COOKIE_NAME] = session
    return client


def _web_client(world: World, persona: str) -> Client:
    return _client(session=world.sessions.get(persona))


def _api_client(world: World, persona: str, needed_scope: str | None) -> Client:
    if persona == "no_key":
        return _client()
    if persona == "session":
        return _web_client(world, "alice")
    if persona == "key_a_unscoped":
        scopes = [s for s in ALL_SCOPES if s != needed_scope]
        return _client(bearer=make_key(world.a.org, scopes, name="A's narrow key")[1])
    secrets = {
        "key_a": world.a.key_secret,
        "key_b": world.b.key_secret,
        "revoked_key": world.revoked_key_secret,
    }
    return _client(bearer=secrets[persona])


# --- the checks -------------------------------------------------------------------------------


def _assert_status(response: HttpResponse, expected: Status) -> None:
    status = response.status_code
    location = response.get("Location", "")
    if isinstance(expected, Redirect):
        assert status == 302, f"expected a redirect to {expected.to}, got {status} {location}"
        assert location == expected.to or location.startswith(f"{expected.to}?"), location
    else:
        assert status == expected, f"expected {expected}, got {status} {location}".rstrip()


def _is_refusal(expected: Status) -> bool:
    redirects = (LOGIN, REAUTH, STAFF_REAUTH, TO_MFA_SETUP)
    return expected in redirects or expected in (400, 401, 403, 404, 405)


# Every model of these apps is compared before and after a refused request...
SNAPSHOT_APPS = frozenset({"hub", "lists", "sharing", "matching", "account", "mfa"})
# ...except the audit log (a refusal may well be audited) and fields a mere call updates.
NOT_SNAPSHOTTED = frozenset({"hub.auditevent"})
BOOKKEEPING_FIELDS = frozenset({"last_used_at", "last_login"})


@cache
def _snapshot_query() -> tuple[tuple[str, ...], str]:
    """One query answering a digest of each snapshotted table (PostgreSQL is the only database)."""
    quote = connection.ops.quote_name
    labels, digests = [], []
    for model in django_apps.get_models():
        meta = model._meta
        if meta.app_label not in SNAPSHOT_APPS or meta.label_lower in NOT_SNAPSHOTTED:
            continue
        columns = ", ".join(
            f"t.{quote(f.column)}" for f in meta.concrete_fields if f.name not in BOOKKEEPING_FIELDS
        )
        order = f"t.{quote(meta.pk.column)}"
        digest = f"md5(coalesce(string_agg(ROW({columns})::text, ',' ORDER BY {order}), ''))"
        labels.append(meta.label_lower)
        # Table and column names come from the models, never from input.
        digests.append(f"(SELECT {digest} FROM {quote(meta.db_table)} t)")  # noqa: S608
    return tuple(labels), "SELECT " + ", ".join(digests)


def _snapshot() -> dict[str, str]:
    """Everything a request could wrongly change, to show that a refused one changed nothing."""
    labels, query = _snapshot_query()
    with connection.cursor() as cursor:
        cursor.execute(query)
        return dict(zip(labels, cursor.fetchone(), strict=True))


def _assert_unchanged(before: dict[str, str]) -> None:
    after = _snapshot()
    changed = sorted(label for label in before if before[label] != after.get(label))
    assert not changed, f"a refused request changed {changed}"


def _assert_reveals_nothing_of_org_a(response: HttpResponse, world: World) -> None:
    content = response.content.decode(errors="replace")
    secrets = [
        world.a.org.name,
        world.people["alice"].email,
        world.people["bob"].email,
        world.a.invitation.email,
        world.a.key.prefix,
    ]
    leaked = [secret for secret in secrets if secret in content]
    assert not leaked, f"an outsider's response shows {leaked}"


ERROR_CODES = {
    401: {"not_authenticated", "authentication_failed"},
    403: {"permission_denied"},
    404: {"not_found"},
    405: {"method_not_allowed"},
}


def _assert_error_shape(response: HttpResponse) -> None:
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    code, message = body["error"]["code"], body["error"]["message"]
    assert isinstance(message, str) and message, body
    assert code in ERROR_CODES.get(response.status_code, {code}), body


def _send(client: Client, method: str, url: str, data: Mapping[str, Any], *, api: bool) -> Any:
    if method == "GET":
        return client.get(url)
    if api:
        return client.generic(method, url, json.dumps(data), content_type="application/json")
    return client.post(url, data)


# --- the cases --------------------------------------------------------------------------------


def _param(case: tuple[str, ...], expected: Expect) -> ParameterSet:
    if isinstance(expected, Bug):
        mark = pytest.mark.xfail(strict=True, reason=expected.reason)
        return pytest.param(*case, expected.should, id="-".join(case), marks=mark)
    return pytest.param(*case, expected, id="-".join(case))


def _web_cases() -> Iterator[ParameterSet]:
    for key, row in TABLE.items():
        if isinstance(row, Page):
            for method, answers in row.methods().items():
                for persona, expected in zip(WEB_PERSONAS, answers, strict=True):
                    yield _param((key, method, persona), expected)


def _api_cases() -> Iterator[ParameterSet]:
    for key, row in TABLE.items():
        if isinstance(row, Api):
            for method, keys in row.methods().items():
                for persona in API_PERSONAS:
                    if persona != "key_a_unscoped" or keys.scope:
                        yield _param((key, method, persona), getattr(keys, persona))


@pytest.mark.parametrize(("key", "method", "persona", "expected"), list(_web_cases()))
@pytest.mark.usefixtures("just_logged_in")
def test_web_page(key: str, method: str, persona: str, expected: Status, world: World) -> None:
    row = TABLE[key]
    assert isinstance(row, Page)
    url = _url(_endpoints()[key], world, world.a, world.a)
    client = _web_client(world, persona)
    before = _snapshot()
    response = _send(client, method, url, row.data, api=False)
    _assert_status(response, expected)
    if _is_refusal(expected):
        _assert_unchanged(before)
    if persona in WEB_OUTSIDERS and not row.reveals_org_a:
        _assert_reveals_nothing_of_org_a(response, world)


@pytest.mark.parametrize(("key", "method", "persona", "expected"), list(_api_cases()))
@pytest.mark.usefixtures("just_logged_in")
def test_api_endpoint(key: str, method: str, persona: str, expected: Status, world: World) -> None:
    row = TABLE[key]
    assert isinstance(row, Api)
    url = _url(_endpoints()[key], world, world.a, world.a)
    client = _api_client(world, persona, row.methods()[method].scope)
    before = _snapshot()
    response = _send(client, method, url, row.data, api=True)
    _assert_status(response, expected)
    if response.status_code >= 400:
        _assert_error_shape(response)
    if _is_refusal(expected):
        _assert_unchanged(before)
    if persona in API_OUTSIDERS:
        _assert_reveals_nothing_of_org_a(response, world)


def _cross_org_cases() -> Iterator[ParameterSet]:
    """Every row whose URL names an object of an organisation, asked for with the other's ids."""
    for key, row in TABLE.items():
        endpoint = _endpoints().get(key)
        if endpoint is None or not _object_kwargs(endpoint):
            continue
        if isinstance(row, Page):
            if "org_slug" not in endpoint.kwargs:
                continue
            # A POST-only view answers 405 to a GET before it looks anything up.
            methods = ["POST"] if row.post else ["GET"]
            callers = ("alice", "charlie")
        else:
            methods = list(row.methods())
            callers = ("key_a", "key_b")
        for method in methods:
            for caller in callers:
                yield pytest.param(key, method, caller, id=f"{key}-{method}-{caller}")


@pytest.mark.parametrize(("key", "method", "caller"), list(_cross_org_cases()))
@pytest.mark.usefixtures("just_logged_in")
def test_another_orgs_object_ids_are_404(key: str, method: str, caller: str, world: World) -> None:
    """Alice at /o/org-a/... with org B's ids (and Charlie at /o/org-b/... with A's): 404."""
    row = TABLE[key]
    own, other = (world.a, world.b) if caller in ("alice", "key_a") else (world.b, world.a)
    url = _url(_endpoints()[key], world, own, other)
    is_api = isinstance(row, Api)
    client = _api_client(world, caller, None) if is_api else _web_client(world, caller)
    before = _snapshot()
    response = _send(client, method, url, row.data, api=is_api)
    assert response.status_code == 404, (url, response.status_code)
    _assert_unchanged(before)
    if is_api:
        _assert_error_shape(response)


def _asks(endpoint: Endpoint) -> str | None:
    """Which re-authentication the endpoint's view asks for (the marks hub.decorators leaves)."""
    if getattr(endpoint.callback, "hashhub_staff", False):
        return "staff"
    return getattr(endpoint.callback, "hashhub_reauthentication", None)


def _stale_cases() -> Iterator[ParameterSet]:
    for key, row in TABLE.items():
        if isinstance(row, Page):
            for method, answers in row.stale_methods().items():
                for persona, expected in zip(WEB_PERSONAS, answers, strict=True):
                    yield _param((key, method, persona), expected)


@pytest.mark.parametrize(("key", "method", "persona", "expected"), list(_stale_cases()))
@pytest.mark.usefixtures("logins_gone_stale")
def test_a_stale_login_is_asked_to_reauthenticate(
    key: str, method: str, persona: str, expected: Status, world: World
) -> None:
    """Every login is older than its window: a sensitive action or a staff page asks again."""
    row = TABLE[key]
    assert isinstance(row, Page)
    if row.stale_setup:
        row.stale_setup(world)
    url = _url(_endpoints()[key], world, world.a, world.a)
    before = _snapshot()
    response = _send(_web_client(world, persona), method, url, row.data, api=False)
    _assert_status(response, expected)
    if _is_refusal(expected):
        _assert_unchanged(before)
    if persona in WEB_OUTSIDERS and not row.reveals_org_a:
        _assert_reveals_nothing_of_org_a(response, world)


def _staff_cases() -> Iterator[ParameterSet]:
    for key, row in TABLE.items():
        endpoint = _endpoints().get(key)
        if isinstance(row, Page) and endpoint and _asks(endpoint) == "staff":
            for method in row.methods():
                yield pytest.param(key, method, id=f"{key}-{method}")


@pytest.mark.parametrize(("key", "method"), list(_staff_cases()))
@pytest.mark.usefixtures("just_logged_in")
def test_staff_without_two_factor_are_sent_to_set_it_up(
    key: str, method: str, world: World
) -> None:
    row = TABLE[key]
    assert isinstance(row, Page)
    url = _url(_endpoints()[key], world, world.a, world.a)
    before = _snapshot()
    response = _send(_web_client(world, STAFF_WITHOUT_MFA), method, url, row.data, api=False)
    _assert_status(response, TO_MFA_SETUP)
    _assert_unchanged(before)


# --- the table itself -------------------------------------------------------------------------


def test_every_reauthentication_requirement_has_a_row() -> None:
    """A staff page states its stale answers for each of its methods; a member's sensitive action
    (``reauthentication_required``) for its POST; and no other row claims to ask."""
    wrong: list[tuple[str, str | None, list[str]]] = []
    for key, row in TABLE.items():
        endpoint = _endpoints().get(key)
        if not isinstance(row, Page) or endpoint is None:
            continue
        asks = _asks(endpoint)
        stale = set(row.stale_methods())
        if asks == "staff":
            needed = set(row.methods())
        elif asks in ("always", "when"):
            needed = {"POST"}
        else:
            needed = set()
        if not needed <= stale or (stale and not needed):
            wrong.append((key, asks, sorted(stale)))
    assert not wrong, f"(row, what its view asks, methods with stale answers): {wrong}"


def test_every_url_pattern_is_in_the_table() -> None:
    missing = sorted(_endpoints().keys() - TABLE.keys())
    assert not missing, f"URL patterns with no row in TABLE (add one line each): {missing}"


def test_every_url_naming_an_organisation_is_under_the_org_prefix() -> None:
    """OrganizationMiddleware resolves (and checks membership) only under ORG_URL_PREFIX."""
    outside = [
        e.route
        for e in _endpoints().values()
        if ORG_KWARG in e.kwargs and not f"/{e.route}".startswith(ORG_URL_PREFIX)
    ]
    assert not outside, f"URLs naming an organisation outside {ORG_URL_PREFIX}: {outside}"


def test_every_table_row_is_a_url_pattern() -> None:
    stale = sorted(TABLE.keys() - _endpoints().keys())
    assert not stale, f"TABLE rows whose URL pattern no longer exists: {stale}"


def test_api_urls_have_api_rows_and_pages_have_page_rows() -> None:
    wrong = [
        key
        for key, endpoint in _endpoints().items()
        if key in TABLE
        and endpoint.route.startswith(("api/", "hma/")) != isinstance(TABLE[key], Api)
    ]
    assert not wrong, f"rows of the wrong kind (Api under /api/, Page elsewhere): {wrong}"


def _scope_required_by(endpoint: Endpoint, method: str) -> str | None:
    """The scope hub.api_auth.HasApiKey would demand of a ``method`` request to this view."""
    view_class = getattr(endpoint.callback, "view_class", None)
    if view_class is None:
        return None
    view = view_class()
    view.request = RequestFactory().generic(method, "/")
    get_required = getattr(view, "get_required_scope", None)
    return get_required() if get_required else getattr(view, "required_scope", None)


def test_api_rows_name_the_scope_their_view_requires() -> None:
    """So that every scoped endpoint is also tried with a key of org A that lacks the scope."""
    wrong = [
        (key, method, keys.scope, _scope_required_by(endpoint, method))
        for key, row in TABLE.items()
        if isinstance(row, Api) and (endpoint := _endpoints().get(key))
        for method, keys in row.methods().items()
        if keys.scope != _scope_required_by(endpoint, method)
    ]
    assert not wrong, f"(row, method, scope in TABLE, scope the view requires): {wrong}"
