"""Staff pages of matching, under ``/staff/health/`` (included by hub.urls)."""

from __future__ import annotations

from django.urls import path

from matching import health_views

urlpatterns = [
    path("", health_views.staff_health, name="staff_health"),
    path("check/", health_views.staff_health_check, name="staff_health_check"),
]
