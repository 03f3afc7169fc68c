"""How lists hears of things that happen in ``hub`` (which must not import ``lists``)."""

from __future__ import annotations

from typing import Any

from django_scopes import scope

from hub.audit import Actor
from hub.models import Organization
from hub.services import organization_created


def give_new_organisation_its_lists(
    sender: object, organization: Organization, actor: Actor, **kwargs: Any
) -> None:
    from lists.services import lists_create_defaults

    with scope(organization=organization.pk):
        lists_create_defaults(org=organization, actor=actor)


def connect() -> None:
    organization_created.connect(
        give_new_organisation_its_lists, dispatch_uid="lists-default-lists-for-new-org"
    )
