"""How sharing hears of things that happen in ``hub`` (which must not import ``sharing``)."""

from __future__ import annotations

from typing import Any

from hub.audit import Actor
from hub.models import Organization
from hub.services import organization_approval_changed


def follow_approval(
    sender: object, organization: Organization, actor: Actor, **kwargs: Any
) -> None:
    """An approved organisation's shares and subscriptions take effect; a suspended one's stop."""
    from sharing.services import access_sync

    access_sync(orgs=[organization.pk])
    access_sync(owners=[organization.pk])


def connect() -> None:
    organization_approval_changed.connect(
        follow_approval, dispatch_uid="sharing-access-follows-approval"
    )
