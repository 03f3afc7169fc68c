"""How sharing hears of things that happen in ``hub`` (which must not import ``sharing``)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from hub.audit import Actor
from hub.models import Organization
from hub.services import organization_approval_changed
from lists.models import HashList
from lists.services import entries_removed


def follow_approval(
    sender: object, organization: Organization, actor: Actor, **kwargs: Any
) -> None:
    """An approved organisation's shares and subscriptions take effect; a suspended one's stop."""
    from sharing.services import access_sync

    access_sync(orgs=[organization.pk])
    access_sync(owners=[organization.pk])


def close_disputes_on_removed(sender: object, hash_list: HashList, **kwargs: Any) -> None:
    """Entries of a list went: after commit, close the open disputes on the ones now gone.

    After commit, so that a retraction (which removes the entry, then closes its disputes as
    retracted in the same transaction) keeps its own outcome, and so that an entry removed and
    added again in one transaction keeps its disputes open.
    """
    if hash_list.organization_id is None:
        return  # a source's list: never disputed (and its imports remove on every page)
    from sharing.disputes import disputes_close_removed

    transaction.on_commit(lambda: disputes_close_removed(hash_list_id=hash_list.pk))


def connect() -> None:
    organization_approval_changed.connect(
        follow_approval, dispatch_uid="sharing-access-follows-approval"
    )
    entries_removed.connect(
        close_disputes_on_removed, dispatch_uid="sharing-disputes-close-on-removal"
    )
