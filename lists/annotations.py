"""What higher apps say about an organisation's own entries, shown to that organisation only.

lists never imports the apps above it (DESIGN.md): an app that has something to say about an
entry (``reports``: the report that named it, and the verified sources that listed its hash
since) registers a provider here from its ``AppConfig.ready()``. The owner's list page and the
entries API ask :func:`annotations_for` for the owner's own lists only, never for a subscriber
of a shared list and never on community pages: what a provider returns is the owner's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django_scopes import scopes_disabled

from hub.models import Organization
from lists.models import Entry, HashList

Provider = Callable[..., dict[int, dict[str, Any]]]
"""``provider(*, org, entries) -> {entry pk: {key: value}}``: what it says about those entries
of ``org``'s own lists (entries it has nothing to say about are left out)."""

_PROVIDERS: list[Provider] = []


def register(provider: Provider) -> Provider:
    """Add a provider (once: registering the same function again changes nothing)."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    return provider


def annotations_for(*, org: Organization, entries: Iterable[Entry]) -> dict[int, dict[str, Any]]:
    """Entry pk -> the providers' annotations merged, for entries of ``org``'s own lists.

    Entries of any other organisation's list are dropped before a provider sees them, so a
    caller that passes a page of a shared list gets nothing.
    """
    entries = list(entries)
    merged: dict[int, dict[str, Any]] = {}
    if not entries or not _PROVIDERS:
        return merged
    with scopes_disabled():
        owned = set(
            HashList.objects.filter(
                organization=org, pk__in={entry.hash_list_id for entry in entries}
            ).values_list("pk", flat=True)
        )
    own = [entry for entry in entries if entry.hash_list_id in owned]
    if not own:
        return merged
    for provider in _PROVIDERS:
        for pk, said in provider(org=org, entries=own).items():
            merged.setdefault(pk, {}).update(said)
    return merged
