from __future__ import annotations

from django.apps import AppConfig


class HubConfig(AppConfig):
    name = "hub"
    verbose_name = "HashHub"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI description of API-key authentication with drf-spectacular.
        from hub import account_audit, api_schema  # noqa: F401

        account_audit.connect()
