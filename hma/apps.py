from __future__ import annotations

from django.apps import AppConfig


class HmaConfig(AppConfig):
    name = "hma"
    verbose_name = "HMA-compatible API"
    default_auto_field = "django.db.models.BigAutoField"
