"""No oracle (DESIGN.md, invariant 7): an answer tells nothing of lists the caller may not match.

An organisation can put any candidate hash into its own list and match it. Whether some private
list elsewhere, or a verified source the caller is not granted, also holds the hash must change
neither the answer (corroboration counts only holders among the lists the caller may match,
other than its own) nor the work the hub does to give it (the same statements as a miss).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from hub.models import Organization
from hub.services import organization_set_approved
from lists.models import Source
from tests.factories import OrganizationFactory
from tests.matching.test_match_api import SYSTEM, add, flip, match, own_list, random_pdq
from tests.sharing.test_access import api
from tests.sharing.test_verified import add as add_to_source
from tests.sharing.test_verified import grant, source, source_list

pytestmark = pytest.mark.django_db

__all__ = ["source"]  # the fixture, imported for this module's tests


def _answer(client: Client, hashes: list[dict[str, str]]) -> list[dict[str, Any]]:
    response = match(client, hashes)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def _without_value(result: dict[str, Any]) -> dict[str, Any]:
    """A result with the submitted and matched values taken out: all that may differ."""
    shown = dict(result, value="")
    shown["matches"] = [dict(m, matched_value="") for m in result["matches"]]
    return shown


def test_a_hash_held_privately_elsewhere_or_by_a_gated_source_answers_like_one_held_nowhere(
    source: Source, org_b: Organization
) -> None:
    """The oracle attack: B holds X, Y and Z itself; C holds X privately; a gated source holds
    Y; nobody else holds Z. Before the fix X and Y answered corroboration 2, Z answered 1."""
    org_c = OrganizationFactory.create(name="Org C", slug="org-c")
    x, y, z = random_pdq(), random_pdq(), random_pdq()
    add(own_list(org_b), ("pdq", x), ("pdq", y), ("pdq", z))
    add(own_list(org_c), ("pdq", x))
    add_to_source(source_list(source), "pdq", y)
    client = api(org_b)
    answers = _answer(client, [{"type": "pdq", "value": v} for v in (x, y, z)])
    assert [a["matches"][0]["corroboration"] for a in answers] == [0, 0, 0]
    assert _without_value(answers[0]) == _without_value(answers[1]) == _without_value(answers[2])
    # Once B is granted the source, the source is a holder B can see, and counts.
    grant(source, org_b)
    [y_answer] = _answer(client, [{"type": "pdq", "value": y}])
    assert [m["corroboration"] for m in y_answer["matches"]] == [1, 1]


def test_an_organisation_staff_never_approved_gets_no_corroboration(
    source: Source, org_b: Organization
) -> None:
    organization_set_approved(org=org_b, approved=False, actor=SYSTEM)
    org_c = OrganizationFactory.create(name="Org C", slug="org-c")
    value = secrets.token_hex(16)
    add(own_list(org_b), ("md5", value))
    add(own_list(org_c), ("md5", value))
    add_to_source(source_list(source), "md5", value)
    grant(source, org_b)  # a grant does not reach an organisation that is not approved
    [answer] = _answer(api(org_b), [{"type": "md5", "value": value}])
    assert [m["corroboration"] for m in answer["matches"]] == [0]


def _statements(client: Client, value: str) -> list[str]:
    """The SQL a match of one PDQ ``value`` runs, with bound values (numbers, arrays) masked."""
    with CaptureQueriesContext(connection) as captured:
        answer = _answer(client, [{"type": "pdq", "value": value}])
    assert answer[0]["matches"] == []
    # psycopg writes a non-empty list of small numbers as '{1,2}'::int2[] and an empty one as '{}'.
    return [
        re.sub(r"\b\d+\b", "N", re.sub(r"'\{[^}]*\}'(::int[248]\[\])?", "'{...}'", q["sql"]))
        for q in captured.captured_queries
    ]


def test_a_submission_near_a_hash_held_only_elsewhere_runs_the_statements_of_a_miss(
    source: Source, org_b: Organization
) -> None:
    org_c = OrganizationFactory.create(name="Org C", slug="org-c")
    held_elsewhere, gated = random_pdq(), random_pdq()
    add(own_list(org_c), ("pdq", held_elsewhere))
    add_to_source(source_list(source), "pdq", gated)
    client = api(org_b)
    _statements(client, random_pdq())  # the first request syncs the index: not compared
    miss = _statements(client, random_pdq())
    near_private = _statements(client, flip(held_elsewhere, 3))
    near_gated = _statements(client, flip(gated, 3))
    assert miss == near_private == near_gated
    assert len(miss) >= 2  # what the caller may match is read even when nothing is near
