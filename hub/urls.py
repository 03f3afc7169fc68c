from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from hub import api, metrics, views
from hub.api_errors import api_not_found

org_patterns = [
    path("", views.dashboard, name="dashboard"),
    path("settings/", views.org_settings, name="org_settings"),
    path("settings/delete/", views.org_delete, name="org_delete"),
    path("members/", views.members, name="members"),
    path("members/leave/", views.member_leave, name="member_leave"),
    path("members/<str:member_id>/role/", views.member_role, name="member_role"),
    path("members/<str:member_id>/remove/", views.member_remove, name="member_remove"),
    path(
        "invitations/<str:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"
    ),
    path("keys/", views.api_keys, name="api_keys"),
    path("keys/<str:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("keys/<str:key_id>/rotate/", views.api_key_rotate, name="api_key_rotate"),
    path("audit/", views.audit_log, name="audit_log"),
]

# The lower apps' URLs are included by dotted name, so hub never imports them (DESIGN.md).
api_v1_patterns: list[URLPattern | URLResolver] = [
    path("me", api.WhoAmIApi.as_view(), name="api_me"),
    path("", include("lists.api_urls")),
    path("", include("matching.api_urls")),
    path("", include("sharing.api_urls")),
    path("", include("sharing.dispute_api_urls")),
    path("", include("reports.api_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    # Prometheus (hub.metrics): hub staff or the metrics token; 404 for everyone else.
    path("metrics", metrics.metrics_view, name="metrics"),
    path("accounts/", include("allauth.urls")),
    path("account/mfa-required/", views.mfa_required, name="mfa_required"),
    path("orgs/new/", views.org_create, name="org_create"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("o/<slug:org_slug>/", include(org_patterns)),
    path("o/<slug:org_slug>/lists/", include("lists.urls")),
    path("o/<slug:org_slug>/", include("matching.urls")),
    path("o/<slug:org_slug>/community/", include("sharing.urls")),
    path("o/<slug:org_slug>/policy/", include("sharing.policy_urls")),
    path("o/<slug:org_slug>/disputes/", include("sharing.dispute_urls")),
    path("o/<slug:org_slug>/reports/", include("reports.urls")),
    path("staff/organizations/", views.staff_organizations, name="staff_organizations"),
    path(
        "staff/organizations/<slug:slug>/approve/",
        views.staff_organization_approve,
        name="staff_organization_approve",
    ),
    path(
        "staff/organizations/<slug:slug>/delete/",
        views.staff_organization_delete,
        name="staff_organization_delete",
    ),
    path(
        "staff/organizations/<slug:slug>/restore/",
        views.staff_organization_restore,
        name="staff_organization_restore",
    ),
    path(
        "staff/organizations/<slug:slug>/quotas/",
        views.staff_organization_quotas,
        name="staff_organization_quotas",
    ),
    path("staff/lists/", include("sharing.staff_urls")),
    path("staff/sources/<str:source_id>/entitlements/", include("sharing.source_urls")),
    path("staff/sources/", include("lists.sources.urls")),
    path("staff/health/", include("matching.staff_urls")),
    path("api/v1/", include(api_v1_patterns)),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
    path("api/<path:rest>", api_not_found, name="api_not_found"),
    # The HMA-compatible facade (issue 20): Meta's Hasher-Matcher-Actioner routes over HashHub.
    path("hma/", include("hma.urls")),
]

handler404 = "hub.error_views.not_found"
handler403 = "hub.error_views.forbidden"
handler400 = "hub.error_views.bad_request"
handler500 = "hub.error_views.server_error"
