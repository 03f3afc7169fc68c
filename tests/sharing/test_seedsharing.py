"""seedsharing: the demo's community list, subscription and feed, through the real services."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django_scopes import scopes_disabled

from hub.models import Organization
from lists.models import Entry, Source
from sharing.selectors import lists_matchable_by

pytestmark = pytest.mark.django_db


def test_seedsharing_shares_subscribes_and_imports_once(settings: Any, tmp_path: Any) -> None:
    settings.HASHHUB_FEED_DIR = tmp_path
    call_command("seeddemo", "--once", stdout=StringIO())
    out = StringIO()
    call_command("seedsharing", "--once", stdout=out)
    assert "succeeded, 300 hashes" in out.getvalue()
    with scopes_disabled():
        acme = Organization.objects.get(slug="acme")
        tiers = {m.tier for m in lists_matchable_by(org=acme).values()}
        assert tiers == {"own", "community", "verified"}
        feed = Source.objects.get(name="Demo hotline feed")
        assert Entry.objects.filter(hash_list__source=feed, removed_seq__isnull=True).count() == 300
    again = StringIO()
    call_command("seedsharing", "--once", stdout=again)
    assert "nothing to do" in again.getvalue()
