"""Staff pages of matching, under ``/staff/health/`` (included by hub.urls)."""

from __future__ import annotations

from django.urls import path

from matching import health_views

urlpatterns = [
    path("", health_views.staff_health, name="staff_health"),
    path("check/", health_views.staff_health_check, name="staff_health_check"),
    path(
        "holds/<str:hold_id>/release/", health_views.staff_hold_release, name="staff_hold_release"
    ),
    path(
        "holds/<str:hold_id>/retract/", health_views.staff_hold_retract, name="staff_hold_retract"
    ),
]
