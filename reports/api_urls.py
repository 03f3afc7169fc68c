"""The endpoints of API v1 that reports serves (scope ``reports``)."""

from __future__ import annotations

from django.urls import path

from reports import api

urlpatterns = [
    path("reports", api.ReportsApi.as_view(), name="api_reports"),
    path("reports/<str:report_id>", api.ReportApi.as_view(), name="api_report"),
    path(
        "reports/<str:report_id>/download",
        api.ReportDownloadApi.as_view(),
        name="api_report_download",
    ),
]
