"""Staff page of a source's entitlements, under ``/staff/sources/<source_id>/entitlements/``
(included by hub.urls after lists.sources.urls)."""

from __future__ import annotations

from django.urls import path

from sharing import source_views

urlpatterns = [
    path("", source_views.source_entitlements, name="staff_source_entitlements"),
    path("access/", source_views.source_access, name="staff_source_access"),
    path(
        "orgs/<slug:slug>/",
        source_views.source_entitlement_set,
        name="staff_source_entitlement_set",
    ),
]
