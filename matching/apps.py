from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class MatchingConfig(AppConfig):
    name = "matching"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_scopes import scope

        from hub.activity import target_names_register
        from lists.selectors import lists_of
        from matching import retractions, retroactive

        retractions.connect()
        retroactive.connect()

        def own_list_names(org: Any, ids: set[str]) -> dict[str, str]:
            # The dashboard's sentences name the organisation's own lists (never another's).
            with scope(organization=org.pk):
                found = lists_of(org=org).filter(public_id__in=ids)
                return dict(found.values_list("public_id", "name"))

        target_names_register("list", own_list_names)
