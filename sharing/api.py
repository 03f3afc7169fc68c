"""API v1 for lists as an organisation sees them: its own and the community's (DESIGN.md contract).

``GET /lists`` returns the caller's own lists and the community catalogue; one list, its entries
and its subscription are reachable by the list's public id whether it is the caller's or shared
with it. Writes to a list stay with its owner (lists.api); visibility needs the ``lists:admin``
scope and goes through sharing.services, which keeps the access log in step.

A community list's entries show type, value and when they were added, never who added them, their
notes or their labels: those are the owner's, and could name it.
"""

from __future__ import annotations

from typing import Any

from django_scopes import scopes_disabled
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api_base import OrgAPIView
from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import ApiKey
from lists import api as lists_api
from lists import selectors as list_selectors
from lists import services as list_services
from lists.hashtypes import get_signal_type
from lists.models import Entry, HashList
from sharing import selectors, services


def _org(request: Request) -> Any:
    return request.organization  # type: ignore[attr-defined]


def _require_scope(request: Request, scope: str) -> None:
    key = request.auth
    if not isinstance(key, ApiKey) or scope not in key.scopes:
        raise exceptions.PermissionDenied(f"This API key lacks the scope '{scope}'.")


def _own_list_object(hash_list: HashList) -> dict[str, Any]:
    stats = list_selectors.list_stats(lists=[hash_list])[hash_list.pk]
    return lists_api.list_object(hash_list, stats)


def _not_owner() -> ServiceError:
    return ServiceError(
        "not_list_owner", "Only the organisation that owns this list can change it.", status=403
    )


class ListsApi(lists_api.ListsApi):
    @extend_schema(
        operation_id="lists_list",
        summary="The caller's own lists and the community catalogue",
        parameters=[
            OpenApiParameter("tier", str, description="own, verified or community; all if absent"),
            OpenApiParameter("category", str, enum=list(HashList.Category.values)),
        ],
        responses=dict,
    )
    def get(self, request: Request) -> Response:
        org = _org(request)
        tier = request.query_params.get("tier", "")
        category = request.query_params.get("category", "")
        tiers = ("", selectors.TIER_OWN, selectors.TIER_COMMUNITY, selectors.TIER_VERIFIED)
        if tier not in tiers:
            raise ServiceError("invalid_tier", "tier must be own, community or verified.")
        if category and category not in HashList.Category.values:
            raise ServiceError("invalid_category", "category must be one of: csam, se.")
        items: list[dict[str, Any]] = []
        if tier in ("", selectors.TIER_OWN):
            own = [
                hl
                for hl in list_selectors.lists_of(org=org)
                if not category or hl.category == category
            ]
            stats = list_selectors.list_stats(lists=own)
            items += [lists_api.list_object(hl, stats[hl.pk]) for hl in own]
        if tier in ("", selectors.TIER_VERIFIED):
            verified = selectors.verified_lists(org=org, category=category)
            items += [item.as_dict() for item in verified]
        if tier in ("", selectors.TIER_COMMUNITY):
            items += [item.as_dict() for item in selectors.catalogue(org=org, category=category)]
        return Response({"lists": items})


class ListDetailApi(OrgAPIView):
    class PatchSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120, required=False)
        description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
        visibility = serializers.ChoiceField(choices=HashList.Visibility.values, required=False)

    def get_required_scope(self) -> str | None:
        if self.request.method == "PATCH":
            data = getattr(self.request, "data", None)  # a DRF request once dispatched
            changes_visibility = isinstance(data, dict) and "visibility" in data
            return "lists:admin" if changes_visibility else "lists:write"
        return None

    @extend_schema(operation_id="list_retrieve", summary="One list (own or shared)", responses=dict)
    def get(self, request: Request, list_id: str) -> Response:
        hash_list, seen = selectors.list_readable_by(org=_org(request), public_id=list_id)
        if seen.tier == selectors.TIER_OWN:
            return Response(_own_list_object(hash_list))
        if seen.tier == selectors.TIER_VERIFIED:
            return Response(selectors.verified_item(org=_org(request), public_id=list_id).as_dict())
        return Response(selectors.catalogue_item(org=_org(request), public_id=list_id).as_dict())

    @extend_schema(
        operation_id="list_update",
        summary="Rename a list, change its description or its visibility (scope lists:admin)",
        request=PatchSerializer,
        responses=dict,
    )
    def patch(self, request: Request, list_id: str) -> Response:
        org = _org(request)
        hash_list, seen = selectors.list_readable_by(org=org, public_id=list_id)
        if seen.tier != selectors.TIER_OWN:
            raise _not_owner()
        serializer = self.PatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        actor = Actor.from_request(request)
        if "name" in data or "description" in data:
            _require_scope(request, "lists:write")
            list_services.list_update(
                hash_list=hash_list,
                name=data.get("name", hash_list.name),
                description=data.get("description", hash_list.description),
                actor=actor,
            )
        if "visibility" in data:
            services.list_visibility_set(
                hash_list=hash_list, visibility=data["visibility"], actor=actor
            )
        return Response(_own_list_object(hash_list))


def _community_entry(entry: Entry, *, with_labels: bool = False) -> dict[str, Any]:
    signal_type = get_signal_type(entry.hash.signal_type)
    body: dict[str, Any] = {
        "id": entry.public_id,
        "type": signal_type.name,
        "value": signal_type.to_text(bytes(entry.hash.value)),
        "added_at": entry.added_at.isoformat(),
    }
    if with_labels:  # a verified source's labels are its classification, shared on purpose
        body["labels"] = entry.labels
    return body


class EntriesApi(lists_api.EntriesApi):
    @extend_schema(
        operation_id="list_entries_list",
        summary="A page of a list's live entries, newest first (own or shared list)",
        parameters=[
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
            OpenApiParameter("limit", int, description="1 to 1000, default 100"),
            OpenApiParameter("type", str),
            OpenApiParameter("label", str, description="own lists only"),
            OpenApiParameter("prefix", str, description="hex digits the value starts with"),
        ],
        responses=dict,
    )
    def get(self, request: Request, list_id: str) -> Response:
        hash_list, seen = selectors.list_readable_by(org=_org(request), public_id=list_id)
        if seen.tier == selectors.TIER_OWN:
            return super().get(request, list_id)
        try:
            limit = int(request.query_params.get("limit", list_selectors.PAGE_SIZE))
        except ValueError:
            raise ServiceError(
                "bad_limit", "limit must be a whole number from 1 to 1000."
            ) from None
        # The owner's labels are not the caller's to filter by: a label could name the owner.
        with scopes_disabled():
            page = list_selectors.entries_page(
                hash_list=hash_list,
                cursor=request.query_params.get("cursor", ""),
                limit=limit,
                signal_type=request.query_params.get("type", ""),
                prefix=request.query_params.get("prefix", ""),
            )
        return Response(
            {
                "entries": [
                    _community_entry(e, with_labels=seen.tier == selectors.TIER_VERIFIED)
                    for e in page.entries
                ],
                "next_cursor": page.next_cursor,
            }
        )

    @extend_schema(
        operation_id="list_entries_add",
        summary="Add hashes to one of the caller's lists (idempotent; up to 10,000 a call)",
        request=dict,
        responses=dict,
    )
    def post(self, request: Request, list_id: str) -> Response:
        _, seen = selectors.list_readable_by(org=_org(request), public_id=list_id)
        if seen.tier != selectors.TIER_OWN:
            raise _not_owner()
        return super().post(request, list_id)


class SubscriptionApi(OrgAPIView):
    required_scope = "lists:admin"

    @extend_schema(
        operation_id="list_subscribe",
        summary="Subscribe to a shared list (match against it from the next request)",
        request=None,
        responses=dict,
    )
    def put(self, request: Request, list_id: str) -> Response:
        return self._set(request, list_id, subscribed=True)

    @extend_schema(
        operation_id="list_unsubscribe",
        summary="Unsubscribe from a shared list (also opts it out of a category subscription)",
        request=None,
        responses=dict,
    )
    def delete(self, request: Request, list_id: str) -> Response:
        return self._set(request, list_id, subscribed=False)

    def _set(self, request: Request, list_id: str, *, subscribed: bool) -> Response:
        org = _org(request)
        changed = services.subscription_list_set(
            org=org, public_id=list_id, subscribed=subscribed, actor=Actor.from_request(request)
        )
        item = selectors.catalogue_item(org=org, public_id=list_id)
        return Response({"list": item.as_dict(), "changed": changed})


class CategorySubscriptionApi(OrgAPIView):
    required_scope = "lists:admin"

    @extend_schema(
        operation_id="category_subscribe",
        summary="Subscribe to every shared list of a category, including lists shared later",
        request=None,
        responses=dict,
    )
    def put(self, request: Request, category: str) -> Response:
        return self._set(request, category, subscribed=True)

    @extend_schema(
        operation_id="category_unsubscribe",
        summary="Stop the category subscription (lists subscribed one by one stay)",
        request=None,
        responses=dict,
    )
    def delete(self, request: Request, category: str) -> Response:
        return self._set(request, category, subscribed=False)

    def _set(self, request: Request, category: str, *, subscribed: bool) -> Response:
        changed = services.subscription_category_set(
            org=_org(request),
            category=category,
            subscribed=subscribed,
            actor=Actor.from_request(request),
        )
        return Response({"category": category, "subscribed": subscribed, "changed": changed})
