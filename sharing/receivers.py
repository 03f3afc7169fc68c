"""How sharing hears of things that happen in ``hub`` (which must not import ``sharing``)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.models import Organization
from hub.services import organization_approval_changed, organization_created
from lists.changes import entries_removed, publication_restart
from lists.models import HashList, Source
from lists.services import list_deleted, source_lists_created


def follow_approval(
    sender: object, organization: Organization, actor: Actor, **kwargs: Any
) -> None:
    """An approved organisation's shares and subscriptions take effect; a suspended one's stop.

    As a subscriber, at once. As an owner, its open lists at once and its anonymous lists at the
    next publication (others stop matching them at once on suspension: sharing.selectors), so
    that approval and suspension do not number its anonymous lists next to its open ones.
    """
    from sharing.services import access_sync

    access_sync(orgs=[organization.pk], anonymous=True)
    access_sync(owners=[organization.pk])
    if organization.approved:
        # They reappear in the catalogue with the next publication, not with the approval.
        with scopes_disabled():
            anonymous = HashList.objects.filter(
                organization=organization, visibility=HashList.Visibility.ANONYMOUS
            ).values_list("pk", flat=True)
            publication_restart(list_pks=list(anonymous))


def follow_creation(
    sender: object, organization: Organization, actor: Actor, **kwargs: Any
) -> None:
    """An organisation created already approved (``createorg --approve``) gains what approval
    would give it: the verified sources open to all, at once and in its export."""
    if organization.approved:
        follow_approval(sender, organization, actor)


def follow_source_lists(
    sender: object, source: Source, hash_lists: list[HashList], **kwargs: Any
) -> None:
    """A source's new lists reach every organisation entitled to the source."""
    from sharing.services import access_sync

    access_sync(lists=[hash_list.pk for hash_list in hash_lists])


def follow_list_deletion(sender: object, hash_list: HashList, **kwargs: Any) -> None:
    """A deleted list leaves every subscriber's access (its entries are tombstoned already)."""
    from sharing.services import access_sync

    access_sync(lists=[hash_list.pk])


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


def follow_purge(sender: object, organization: Organization, actor: Actor, **kwargs: Any) -> None:
    """A deleted organisation is purged (hub.offboarding): its lists are deleted, their entries
    tombstoned (access follows through ``list_deleted``), and the subscriptions to them go."""
    from lists.services import organization_lists_retire
    from sharing.models import Subscription

    organization_lists_retire(org=organization, actor=actor)
    with scopes_disabled():
        Subscription.objects.filter(hash_list__organization=organization).delete()


def follow_erase(sender: object, organization: Organization, actor: Actor, **kwargs: Any) -> None:
    """A purged organisation's tombstoned entries are erased, a day after its purge; those of
    lists others ever had access to keep a bare tombstone for their exports."""
    from lists.services import organization_entries_erase
    from sharing.models import AccessEvent

    with scopes_disabled():
        shared = AccessEvent.objects.filter(hash_list__organization=organization).values_list(
            "hash_list_id", flat=True
        )
        organization_entries_erase(org=organization, shared_list_pks=set(shared))


def connect() -> None:
    from hub.offboarding import organization_erasing, organization_purging

    organization_purging.connect(follow_purge, dispatch_uid="sharing-lists-follow-org-purge")
    organization_erasing.connect(follow_erase, dispatch_uid="sharing-lists-follow-org-erase")
    organization_approval_changed.connect(
        follow_approval, dispatch_uid="sharing-access-follows-approval"
    )
    organization_created.connect(follow_creation, dispatch_uid="sharing-access-follows-creation")
    source_lists_created.connect(
        follow_source_lists, dispatch_uid="sharing-access-follows-source-lists"
    )
    list_deleted.connect(follow_list_deletion, dispatch_uid="sharing-access-follows-deletion")
    entries_removed.connect(
        close_disputes_on_removed, dispatch_uid="sharing-disputes-close-on-removal"
    )
