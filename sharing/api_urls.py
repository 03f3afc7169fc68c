"""Every ``lists/**`` endpoint of API v1, and the category subscriptions (see sharing.api)."""

from __future__ import annotations

from django.urls import path

from sharing import api, policy_api

urlpatterns = [
    path("lists", api.ListsApi.as_view(), name="api_lists"),
    path("lists/<str:list_id>", api.ListDetailApi.as_view(), name="api_list"),
    path("lists/<str:list_id>/entries", api.EntriesApi.as_view(), name="api_list_entries"),
    path(
        "lists/<str:list_id>/entries/remove",
        api.EntriesRemoveApi.as_view(),
        name="api_list_entries_remove",
    ),
    path(
        "lists/<str:list_id>/subscription",
        api.SubscriptionApi.as_view(),
        name="api_list_subscription",
    ),
    path("policy", policy_api.PolicyApi.as_view(), name="api_policy"),
    path(
        "policy/disabled-entries",
        policy_api.DisabledEntriesApi.as_view(),
        name="api_policy_disabled_entries",
    ),
    path(
        "policy/disabled-entries/<str:disable_id>",
        policy_api.DisabledEntryApi.as_view(),
        name="api_policy_disabled_entry",
    ),
    path(
        "subscriptions/categories/<str:category>",
        api.CategorySubscriptionApi.as_view(),
        name="api_category_subscription",
    ),
]
