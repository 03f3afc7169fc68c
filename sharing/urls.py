"""The community pages, under ``/o/<org_slug>/community/`` (included by hub.urls)."""

from __future__ import annotations

from django.urls import path

from sharing import views

urlpatterns = [
    path("", views.community, name="community"),
    # Fixed words come before "<list_id>/" so that none of them is ever read as a list id.
    path("shared/", views.community_shared, name="community_shared"),
    path("preferences/", views.community_preferences, name="community_preferences"),
    path(
        "subscriptions/category/",
        views.community_category_subscription,
        name="community_category_subscription",
    ),
    path("lists/<str:list_id>/visibility/", views.list_visibility, name="list_visibility"),
    path("lists/<str:list_id>/impact/", views.list_impact, name="list_impact"),
    path("<str:list_id>/", views.community_list, name="community_list"),
    path(
        "<str:list_id>/subscription/",
        views.community_subscription,
        name="community_subscription",
    ),
]
