"""The match policy page, under ``/o/<org_slug>/policy/`` (included by hub.urls)."""

from __future__ import annotations

from django.urls import path

from sharing import policy_views

urlpatterns = [
    path("", policy_views.policy_page, name="match_policy"),
    path("change/", policy_views.policy_change, name="match_policy_change"),
]
