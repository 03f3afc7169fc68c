"""Report pages, under ``/o/<org_slug>/reports/`` (see hub.urls)."""

from __future__ import annotations

from django.urls import path

from reports import views

urlpatterns = [
    path("", views.reports_index, name="reports"),
    # Under lag/ and from/: a report id is never one of these words.
    path("lag/", views.reports_lag_chart, name="reports_lag_chart"),
    path("from/<str:reportable_id>/", views.report_open, name="report_open"),
    path("<str:report_id>/", views.report_detail, name="report_detail"),
    path("<str:report_id>/filed/", views.report_mark_filed, name="report_mark_filed"),
    path(
        "<str:report_id>/acknowledged/",
        views.report_mark_acknowledged,
        name="report_mark_acknowledged",
    ),
    path("<str:report_id>/download/", views.report_download, name="report_download"),
    path("<str:report_id>/print/", views.report_print, name="report_print"),
]
