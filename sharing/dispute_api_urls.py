"""Dispute endpoints of API v1 (included under ``/api/v1/`` by hub.urls)."""

from __future__ import annotations

from django.urls import path

from sharing import dispute_api

urlpatterns = [
    path("disputes", dispute_api.DisputesApi.as_view(), name="api_disputes"),
]
