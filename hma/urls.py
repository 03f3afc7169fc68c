"""HMA's routes under /hma/ (hub.urls): hashing /h, matching /m, curation /c."""

from __future__ import annotations

from django.urls import path

from hma import views
from hub.api_errors import api_not_found

urlpatterns = [
    path("h/hash", views.HashView.as_view(), name="hma_hash"),
    path("m/lookup", views.LookupView.as_view(), name="hma_lookup"),
    path("m/raw_lookup", views.RawLookupView.as_view(), name="hma_raw_lookup"),
    path("m/compare", views.CompareView.as_view(), name="hma_compare"),
    path("m/index/status", views.IndexStatusView.as_view(), name="hma_index_status"),
    path("c/banks", views.BanksView.as_view(), name="hma_banks"),
    path("c/bank/<str:bank_name>", views.BankView.as_view(), name="hma_bank"),
    path("c/bank/<str:bank_name>/signal", views.BankSignalView.as_view(), name="hma_bank_signal"),
    path(
        "c/bank/<str:bank_name>/content", views.BankContentView.as_view(), name="hma_bank_content"
    ),
    path(
        "c/bank/<str:bank_name>/content/<str:content_id>",
        views.BankContentItemView.as_view(),
        name="hma_bank_content_item",
    ),
    # Anything else under /hma/: a JSON 404 in the one error shape (HMA answers JSON too).
    path("<path:rest>", api_not_found, name="hma_not_found"),
]
