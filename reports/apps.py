from __future__ import annotations

from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from reports import receivers

        receivers.connect()

        from lists import annotations as entry_annotations
        from matching.review import review_guard_register
        from reports import listings
        from reports.services import review_guard

        # A filed report's detection keeps its confirmation (matching.review asks first).
        review_guard_register(review_guard)

        # The owner's entries show the report that named them and the sources that listed them.
        entry_annotations.register(listings.entry_annotations)
