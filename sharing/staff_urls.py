"""Staff pages of sharing, under ``/staff/lists/`` (included by hub.urls)."""

from __future__ import annotations

from django.urls import path

from sharing import views

urlpatterns = [
    path("", views.staff_lists, name="staff_lists"),
    path("<str:list_id>/reveal/", views.staff_list_reveal, name="staff_list_reveal"),
]
