"""API v1: signal types, the caller's lists and their entries (DESIGN.md, "API contract v1").

Writes to one's own lists live here. Reading lists (own, community and verified) and changing
a list's settings are sharing.api's views, which extend these (lists may not import sharing).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api_base import OrgAPIView
from hub.audit import Actor
from hub.errors import ServiceError
from lists import selectors, services
from lists.hashtypes import all_signal_types, get_signal_type
from lists.models import Entry, HashList

MAX_ITEMS = 10_000


def list_object(hash_list: HashList, stats: selectors.ListStats | None = None) -> dict[str, Any]:
    """The ``list`` object of the contract, for one of the caller's own lists."""
    org = hash_list.organization
    body: dict[str, Any] = {
        "id": hash_list.public_id,
        "name": hash_list.name,
        "category": hash_list.category,
        "tier": "own",
        "contributor": org.name if org else None,
        "anonymous": False,
        "description": hash_list.description,
        "visibility": hash_list.visibility,
        "subscribed": True,
        "default": hash_list.is_default,
        "created": hash_list.created.isoformat(),
    }
    if stats is not None:
        body.update(
            size=stats.size,
            size_by_type=stats.by_type,
            last_change=stats.last_change.isoformat() if stats.last_change else None,
        )
    return body


def entry_object(entry: Entry) -> dict[str, Any]:
    signal_type = get_signal_type(entry.hash.signal_type)
    return {
        "id": entry.public_id,
        "type": signal_type.name,
        "value": signal_type.to_text(bytes(entry.hash.value)),
        "labels": entry.labels,
        "note": entry.note,
        "added_at": entry.added_at.isoformat(),
        "added_by": entry.added_by_label,
    }


def _items(request: Request) -> list[services.EntryInput | None]:
    """The ``entries`` array of a request body; an item of the wrong shape becomes None."""
    data = request.data
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise ServiceError(
            "invalid_body", 'The body must be {"entries": [{"type": …, "value": …}, …]}.'
        )
    raw = data["entries"]
    if len(raw) > MAX_ITEMS:
        raise ServiceError(
            "too_many_items",
            f"At most {MAX_ITEMS:,} entries a call; split the batch.",
            {"max": MAX_ITEMS},
        )
    items: list[services.EntryInput | None] = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("type"), str)
            or not isinstance(item.get("value"), str)
            or not isinstance(item.get("labels", []), list)
            or not isinstance(item.get("note", ""), str)
        ):
            items.append(None)
        else:
            items.append(
                services.EntryInput(
                    item["type"], item["value"], tuple(item.get("labels", [])), item.get("note", "")
                )
            )
    return items


def _shape_errors(items: list[services.EntryInput | None]) -> list[services.ItemError]:
    return [
        services.ItemError(
            i,
            "invalid_item",
            'Each entry is an object {"type": str, "value": str, "labels"?: [str], "note"?: str}.',
        )
        for i, item in enumerate(items)
        if item is None
    ]


def _well_formed(
    items: list[services.EntryInput | None],
) -> tuple[list[services.EntryInput], list[int]]:
    """The well-formed items and, for each, its index in the request."""
    kept = [(i, item) for i, item in enumerate(items) if item is not None]
    return [item for _, item in kept], [i for i, _ in kept]


def _reindex(errors: list[services.ItemError], positions: list[int]) -> list[dict[str, Any]]:
    return [services.ItemError(positions[e.index], e.code, e.message).as_dict() for e in errors]


class HashTypesApi(OrgAPIView):
    @extend_schema(
        operation_id="hashtypes_list", summary="The signal types this hub knows", responses=dict
    )
    def get(self, request: Request) -> Response:
        return Response({"types": [t.describe() for t in all_signal_types()]})


class ListsApi(OrgAPIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)
        category = serializers.ChoiceField(choices=HashList.Category.values)
        description = serializers.CharField(
            max_length=2000, required=False, allow_blank=True, default=""
        )

    def get_required_scope(self) -> str | None:
        return "lists:write" if self.request.method == "POST" else None

    @extend_schema(
        operation_id="lists_create",
        summary="Create a self-managed list",
        request=InputSerializer,
        responses=dict,
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        hash_list = services.list_create(
            org=request.organization,  # type: ignore[attr-defined]
            actor=Actor.from_request(request),
            **serializer.validated_data,
        )
        return Response(
            list_object(hash_list, selectors.ListStats(0, {}, None)), status=status.HTTP_201_CREATED
        )


class EntriesApi(OrgAPIView):
    def get_required_scope(self) -> str | None:
        return "lists:write" if self.request.method == "POST" else None

    @extend_schema(
        operation_id="list_entries_list",
        summary="A page of a list's live entries, newest first",
        parameters=[
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
            OpenApiParameter("limit", int, description="1 to 1000, default 100"),
            OpenApiParameter("type", str),
            OpenApiParameter("label", str),
            OpenApiParameter("prefix", str, description="hex digits the value starts with"),
        ],
        responses=dict,
    )
    def get(self, request: Request, list_id: str) -> Response:
        hash_list = selectors.get_list_for_org(org=request.organization, public_id=list_id)  # type: ignore[attr-defined]
        try:
            limit = int(request.query_params.get("limit", selectors.PAGE_SIZE))
        except ValueError:
            raise ServiceError(
                "bad_limit", "limit must be a whole number from 1 to 1000."
            ) from None
        page = selectors.entries_page(
            hash_list=hash_list,
            cursor=request.query_params.get("cursor", ""),
            limit=limit,
            signal_type=request.query_params.get("type", ""),
            label=request.query_params.get("label", ""),
            prefix=request.query_params.get("prefix", ""),
        )
        return Response(
            {"entries": [entry_object(e) for e in page.entries], "next_cursor": page.next_cursor}
        )

    @extend_schema(
        operation_id="list_entries_add",
        summary="Add hashes to a list (idempotent; up to 10,000 a call)",
        request=dict,
        responses=dict,
    )
    def post(self, request: Request, list_id: str) -> Response:
        hash_list = selectors.get_list_for_org(org=request.organization, public_id=list_id)  # type: ignore[attr-defined]
        items = _items(request)
        well_formed, positions = _well_formed(items)
        result = services.entry_add(
            hash_list=hash_list, items=well_formed, actor=Actor.from_request(request)
        )
        errors = [e.as_dict() for e in _shape_errors(items)] + _reindex(result.errors, positions)
        return Response(
            {
                "added": result.added,
                "already_present": result.already_present,
                "errors": sorted(errors, key=lambda e: e["index"]),
            }
        )


class EntriesRemoveApi(OrgAPIView):
    required_scope = "lists:write"

    @extend_schema(
        operation_id="list_entries_remove",
        summary="Remove hashes from a list (tombstones; up to 10,000 a call)",
        request=dict,
        responses=dict,
    )
    def post(self, request: Request, list_id: str) -> Response:
        hash_list = selectors.get_list_for_org(org=request.organization, public_id=list_id)  # type: ignore[attr-defined]
        items = _items(request)
        reason = request.data.get("reason", "") if isinstance(request.data, dict) else ""
        if not isinstance(reason, str):
            raise ServiceError("invalid_body", "reason must be a string.")
        well_formed, positions = _well_formed(items)
        result = services.entry_remove(
            hash_list=hash_list, items=well_formed, reason=reason, actor=Actor.from_request(request)
        )
        errors = [e.as_dict() for e in _shape_errors(items)] + _reindex(result.errors, positions)
        return Response(
            {
                "removed": result.removed,
                "not_present": result.not_present,
                "errors": sorted(errors, key=lambda e: e["index"]),
            }
        )
