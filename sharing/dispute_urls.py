"""Dispute pages, under ``/o/<org_slug>/disputes/`` (included by hub.urls)."""

from __future__ import annotations

from django.urls import path

from sharing import dispute_views as views

urlpatterns = [
    path("", views.disputes_index, name="disputes"),
    # "new/…" comes before "<dispute_id>/" so that "new" is never read as a dispute id.
    path("new/<str:list_id>/", views.dispute_new, name="dispute_new"),
    path("<str:dispute_id>/", views.dispute_detail, name="dispute_detail"),
    path("<str:dispute_id>/withdraw/", views.dispute_withdraw, name="dispute_withdraw"),
    path("<str:dispute_id>/reject/", views.dispute_reject, name="dispute_reject"),
    path("<str:dispute_id>/retract/", views.dispute_retract, name="dispute_retract"),
]
