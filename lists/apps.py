from __future__ import annotations

from django.apps import AppConfig


class ListsConfig(AppConfig):
    name = "lists"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lists import receivers

        receivers.connect()
