"""API v1 for lists as an organisation sees them: every ``/api/v1/lists/**`` route (DESIGN.md).

``GET /lists`` returns the caller's own lists, the verified sources it is entitled to and the
community catalogue; one list, its entries and its subscription are reachable by the list's
public id whether it is the caller's or shared with it. Writes to a list stay with its owner;
visibility needs the ``lists:admin`` scope and goes through sharing.services, which keeps the
access log in step. These views live in sharing because every one of them needs sharing's answer
to "may this organisation read that list" (lists may not import sharing); they call lists'
services and selectors for the rest.

Every response that carries a list renders it with :class:`ListSerializer`. A community list's
entries show type, value and when they were added, never who added them, their notes or their
labels: those are the owner's, and could name it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar

from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api_base import OrgAPIView
from hub.api_schema import (
    ERROR_HEADERS,
    IsoDateTimeField,
    bounded_int,
    error_responses,
    link,
    links,
)
from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.lib.ids import keyed_public_id
from hub.models import ApiKey, Organization
from lists import annotations as list_annotations
from lists import selectors as list_selectors
from lists import services as list_services
from lists.api import SIGNAL_TYPES, CategoryField, SignalTypeField
from lists.hashtypes import get_signal_type
from lists.models import Entry, HashList
from sharing import selectors, services

MAX_ITEMS = 10_000


def _org(request: Request) -> Organization:
    return request.organization  # type: ignore[attr-defined]


def _require_scope(request: Request, scope: str) -> None:
    key = request.auth
    if not isinstance(key, ApiKey) or scope not in key.scopes:
        raise exceptions.PermissionDenied(f"This API key lacks the scope '{scope}'.")


def _not_owner() -> ServiceError:
    return ServiceError(
        "not_list_owner", "Only the organisation that owns this list can change it.", status=403
    )


# --- the list object ------------------------------------------------------------------------


@dataclass(frozen=True)
class ShownList:
    """A list of any tier as the ``/lists`` endpoints show it to the caller.

    ``seen`` says how the caller sees it (tier, contributor, anonymity: sharing.selectors decides
    that). The fields after ``last_change`` belong to one tier each (see ListSerializer.ONLY_FOR).
    """

    seen: selectors.MatchableList
    description: str
    visibility: str
    subscribed: bool
    size: int
    size_by_type: dict[str, int]
    last_change: dt.datetime | None
    subscribed_via_category: bool = False
    subscribers: int = 0
    default: bool = False
    created: dt.datetime | None = None
    share_classification: bool = False
    verification: str = ""

    @property
    def last_change_day(self) -> dt.date | None:
        # A community list's last change is already cut to its day (selectors.community_day).
        return self.last_change.date() if self.last_change else None

    @classmethod
    def own(
        cls, hash_list: HashList, *, org: Organization, stats: list_selectors.ListStats
    ) -> ShownList:
        """One of ``org``'s own lists, with its counters."""
        return cls(
            seen=selectors.MatchableList(
                pk=hash_list.pk,
                public_id=hash_list.public_id,
                name=hash_list.name,
                category=hash_list.category,
                tier=selectors.TIER_OWN,
                contributor=org.name,
                anonymous=False,
            ),
            description=hash_list.description,
            visibility=hash_list.visibility,
            subscribed=True,
            size=stats.size,
            size_by_type=stats.by_type,
            last_change=stats.last_change,
            default=hash_list.is_default,
            created=hash_list.created,
            share_classification=hash_list.share_classification,
        )

    @classmethod
    def shared(cls, item: selectors.CatalogueItem) -> ShownList:
        """A verified source's list or a community list, as the catalogue describes it."""
        verified = item.hash_list.tier == selectors.TIER_VERIFIED
        return cls(
            seen=item.hash_list,
            description=item.description,
            # Another organisation's visibility is not the caller's to know, only that it shares.
            visibility="verified" if verified else "shared",
            subscribed=verified or item.subscribed,  # a verified list is always matched
            size=item.size,
            size_by_type=item.size_by_type,
            last_change=item.last_change,
            subscribed_via_category=item.via_category,
            subscribers=item.subscribers,
            verification=item.verification,
        )


def _own_list(hash_list: HashList, org: Organization) -> ShownList:
    stats = list_selectors.list_stats(lists=[hash_list])[hash_list.pk]
    return ShownList.own(hash_list, org=org, stats=stats)


TIERS = [selectors.TIER_VERIFIED, selectors.TIER_OWN, selectors.TIER_COMMUNITY]
SHOWN_VISIBILITIES = [*HashList.Visibility.values, "verified", "shared"]


@extend_schema_field({"type": "string", "enum": TIERS}, component_name="Tier")
class TierField(serializers.ChoiceField):
    """Where a list comes from, as the caller sees it: ``verified``, ``own`` or ``community``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=TIERS, **kwargs)


@extend_schema_field(
    {
        "type": "string",
        "enum": SHOWN_VISIBILITIES,
        "description": "The list's own visibility for the caller's lists; `verified` for a "
        "source's list, `shared` for another organisation's.",
    },
    component_name="ShownVisibility",
)
class ShownVisibilityField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=SHOWN_VISIBILITIES, **kwargs)


# For the schema: the responses that carry it are built by their services (MatchableList.as_dict).
@extend_schema_serializer(component_name="ListRef")
class ListRefSerializer(serializers.Serializer):
    """The list of a match, an export item or a dispute. ``contributor`` is the source's or the
    owning organisation's name, or null with ``anonymous`` true for an anonymous list."""

    id = serializers.CharField()
    name = serializers.CharField()
    category = CategoryField()
    tier = TierField()
    contributor = serializers.CharField(allow_null=True)
    anonymous = serializers.BooleanField()


@extend_schema_serializer(component_name="ItemError")
class ItemErrorSerializer(serializers.Serializer):
    """One refused item of a batch, by its position in the request."""

    index = serializers.IntegerField(min_value=0)
    code = serializers.CharField()
    message = serializers.CharField()


@extend_schema_serializer(component_name="List")
class ListSerializer(serializers.Serializer):
    """The ``list`` object of API v1 as every ``/lists`` response shows it, whatever its tier.

    The first six fields are the ``list`` object of a match (DESIGN.md, "API contract v1"); the
    rest describe the list to the caller. ``visibility`` is the list's own for the caller's lists,
    ``verified`` for a source and ``shared`` for a community list.
    """

    id = serializers.CharField(source="seen.public_id")
    name = serializers.CharField(source="seen.name")
    category = CategoryField(source="seen.category")
    tier = TierField(source="seen.tier")
    contributor = serializers.CharField(source="seen.contributor", allow_null=True)
    anonymous = serializers.BooleanField(source="seen.anonymous")
    description = serializers.CharField()
    visibility = ShownVisibilityField()
    # ``required=False``: in the schema, the fields of ONLY_FOR are absent for other tiers.
    last_change_day = serializers.DateField(allow_null=True, required=False)
    subscribed = serializers.BooleanField()
    subscribed_via_category = serializers.BooleanField(required=False)
    default = serializers.BooleanField(required=False)
    created = IsoDateTimeField(required=False)
    size = serializers.IntegerField(min_value=0)
    size_by_type = serializers.DictField(child=serializers.IntegerField(min_value=0))
    last_change = IsoDateTimeField(allow_null=True)
    subscribers = serializers.IntegerField(min_value=0, required=False)
    share_classification = serializers.BooleanField(
        required=False,
        help_text="Own lists: whether organisations that match it see its entries' labels with "
        "their matches and export (an anonymous list's A1-B2 classification only).",
    )
    verification = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Verified sources: how the source verifies its entries.",
    )

    # Fields shown for some tiers only. A community list's change is shown to the day, and its
    # subscription may come from a category; whether a list is its owner's default and when it
    # was made are the owner's to know.
    ONLY_FOR: ClassVar[dict[str, frozenset[str]]] = {
        "last_change_day": frozenset({selectors.TIER_COMMUNITY}),
        "subscribed_via_category": frozenset({selectors.TIER_COMMUNITY}),
        "subscribers": frozenset({selectors.TIER_COMMUNITY}),
        "default": frozenset({selectors.TIER_OWN}),
        "created": frozenset({selectors.TIER_OWN}),
        "share_classification": frozenset({selectors.TIER_OWN}),
        "verification": frozenset({selectors.TIER_VERIFIED}),
    }

    def to_representation(self, instance: ShownList) -> dict[str, Any]:
        body = super().to_representation(instance)
        tier = instance.seen.tier
        return {
            name: value
            for name, value in body.items()
            if name not in self.ONLY_FOR or tier in self.ONLY_FOR[name]
        }


def _shown(org: Organization, list_id: str) -> ShownList:
    """One list ``org`` may read, as it sees it; 404 ``not_found`` otherwise."""
    hash_list, seen = selectors.list_readable_by(org=org, public_id=list_id)
    if seen.tier == selectors.TIER_OWN:
        return _own_list(hash_list, org)
    if seen.tier == selectors.TIER_VERIFIED:
        return ShownList.shared(selectors.verified_item(org=org, public_id=list_id))
    return ShownList.shared(selectors.catalogue_item(org=org, public_id=list_id))


# --- entries ----------------------------------------------------------------------------------


def _entry_report(said: dict[str, Any] | None) -> dict[str, Any] | None:
    """An own entry's ``report`` (lists.annotations, from the reports app), or None."""
    if not said or not said.get("report"):
        return None
    listed = [
        {"source": item["source"], "listed_at": item["listed_at"].isoformat()}
        for item in said.get("listed", [])
    ]
    return {"id": said["report"], "listed": listed}


def _entry(entry: Entry, tier: str) -> dict[str, Any]:
    """An entry as a caller of ``tier`` may see it.

    A plain function rather than a serializer: a page holds up to 1,000 entries.
    """
    signal_type = get_signal_type(entry.hash.signal_type)
    own = tier == selectors.TIER_OWN
    body: dict[str, Any] = {
        # Others see a keyed hash of the time-ordered id, and the day it was added: to the
        # millisecond, either would pair an anonymous list's entries with its owner's others.
        "id": entry.public_id if own else keyed_public_id(entry.public_id),
        "type": signal_type.name,
        "value": signal_type.to_text(bytes(entry.hash.value)),
    }
    if own:
        body.update(
            labels=entry.labels,
            note=entry.note,
            added_at=entry.added_at.isoformat(),
            added_by=entry.added_by_label,
        )
        return body
    body["added_at"] = selectors.day_of(entry.added_at).isoformat()
    if tier == selectors.TIER_VERIFIED:  # a source's labels are its classification, shared
        body["labels"] = entry.labels
    return body


@extend_schema_field(
    {
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}],
        "description": "When it was added: the moment in the caller's own lists, the day in "
        "others'.",
    }
)
class AddedAtField(serializers.CharField):
    pass


@extend_schema_serializer(component_name="EntryListed")
class EntryListedSerializer(serializers.Serializer):
    source = serializers.CharField(  # type: ignore[assignment]
        help_text="A verified source the caller is entitled to"
    )
    listed_at = serializers.DateTimeField(help_text="When the source's list gained the hash")


@extend_schema_serializer(component_name="EntryReport")
class EntryReportSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The report's id (GET /api/v1/reports/{id})")
    listed = EntryListedSerializer(many=True)


# For the schema: the view renders entries with _entry.
@extend_schema_serializer(component_name="Entry")
class EntrySerializer(serializers.Serializer):
    """An entry of a list. ``labels`` are shown for the caller's own lists and verified sources;
    ``note`` and ``added_by`` for its own lists only."""

    id = serializers.CharField()
    type = SignalTypeField()
    value = serializers.CharField()
    labels = serializers.ListField(child=serializers.CharField(), required=False)
    note = serializers.CharField(required=False, allow_blank=True)
    added_at = AddedAtField()
    added_by = serializers.CharField(required=False, allow_blank=True)
    report = EntryReportSerializer(
        required=False,
        allow_null=True,
        help_text="The caller's own lists only, for a key with the reports scope: the latest "
        "report that named this entry and the verified sources that listed its hash since "
        "(null when no report names it). Never present on another organisation's list.",
    )


@extend_schema_serializer(component_name="EntryRef")
class EntryRefSerializer(serializers.Serializer):
    type = SignalTypeField()
    value = serializers.CharField()


@extend_schema_serializer(component_name="EntryAdd")
class EntryAddSerializer(EntryRefSerializer):
    labels = serializers.ListField(
        child=serializers.CharField(max_length=40),
        max_length=list_services.MAX_LABELS,
        required=False,
        help_text="A1, A2, B1, B2 or tags of letters, digits and _ . : - (at most 40 characters)",
    )
    note = serializers.CharField(
        max_length=list_services.MAX_NOTE, required=False, allow_blank=True
    )


def _items(request: Request) -> list[list_services.EntryInput | None]:
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
    items: list[list_services.EntryInput | None] = []
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
                list_services.EntryInput(
                    item["type"], item["value"], tuple(item.get("labels", [])), item.get("note", "")
                )
            )
    return items


def _item_errors(
    items: list[list_services.EntryInput | None], errors: list[list_services.ItemError]
) -> list[dict[str, Any]]:
    """Per-item errors in request order: the malformed items, then the service's by position.

    The service saw only the well-formed items, so its indexes are mapped back to the request's.
    """
    positions = [i for i, item in enumerate(items) if item is not None]
    shape = [
        list_services.ItemError(
            i,
            "invalid_item",
            'Each entry is an object {"type": str, "value": str, "labels"?: [str], "note"?: str}.',
        ).as_dict()
        for i, item in enumerate(items)
        if item is None
    ]
    found = [
        list_services.ItemError(positions[e.index], e.code, e.message).as_dict() for e in errors
    ]
    return sorted(shape + found, key=lambda e: e["index"])


def _well_formed(items: list[list_services.EntryInput | None]) -> list[list_services.EntryInput]:
    return [item for item in items if item is not None]


# --- views ------------------------------------------------------------------------------------


# What a list's id in a response leads to (OpenAPI links).
def _list_links(id_at: str) -> dict[str, dict[str, Any]]:
    return {
        "GetList": link("list_retrieve", "The list itself.", list_id=id_at),
        "UpdateList": link("list_update", "Rename it or change its visibility.", list_id=id_at),
        "ListEntries": link("list_entries_list", "Its entries.", list_id=id_at),
        "AddEntries": link("list_entries_add", "Add hashes to it.", list_id=id_at),
        "RemoveEntries": link("list_entries_remove", "Remove hashes from it.", list_id=id_at),
    }


class ListsApi(OrgAPIView):
    @extend_schema_serializer(component_name="ListCreate")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(min_length=1, max_length=120)
        category = CategoryField()
        description = serializers.CharField(
            max_length=2000, required=False, allow_blank=True, default=""
        )

    @extend_schema_serializer(component_name="Lists")
    class OutputSerializer(serializers.Serializer):
        lists = ListSerializer(many=True)

    def get_required_scope(self) -> str | None:
        return "lists:write" if self.request.method == "POST" else None

    @extend_schema(
        operation_id="lists_list",
        summary="The caller's own lists and the community catalogue",
        parameters=[
            OpenApiParameter(
                "tier", str, enum=TIERS, description="own, verified or community; all if absent"
            ),
            OpenApiParameter("category", str, enum=list(HashList.Category.values)),
            *ERROR_HEADERS,
        ],
        responses={
            200: OutputSerializer,
            **error_responses({400: ["invalid_tier", "invalid_category"]}),
        },
        extensions=links({200: _list_links("$response.body#/lists/0/id")}),
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
        shown: list[ShownList] = []
        if tier in ("", selectors.TIER_OWN):
            own = [
                hl
                for hl in list_selectors.lists_of(org=org)
                if not category or hl.category == category
            ]
            stats = list_selectors.list_stats(lists=own)
            shown += [ShownList.own(hl, org=org, stats=stats[hl.pk]) for hl in own]
        if tier in ("", selectors.TIER_VERIFIED):
            verified = selectors.verified_lists(org=org, category=category)
            shown += [ShownList.shared(item) for item in verified]
        if tier in ("", selectors.TIER_COMMUNITY):
            community = selectors.catalogue(org=org, category=category)
            shown += [ShownList.shared(item) for item in community]
        return Response(self.OutputSerializer({"lists": shown}).data)

    @extend_schema(
        operation_id="lists_create",
        summary="Create a self-managed list (scope lists:write)",
        request={"application/json": InputSerializer},
        parameters=ERROR_HEADERS,
        responses={
            201: ListSerializer,
            **error_responses(
                {
                    400: ["invalid", "invalid_name", "name_taken", "description_too_long"],
                    403: ["permission_denied"],
                    409: ["quota_exceeded"],
                },
                body=True,
            ),
        },
        extensions=links({201: _list_links("$response.body#/id")}),
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        org = _org(request)
        hash_list = list_services.list_create(
            org=org, actor=Actor.from_request(request), **serializer.validated_data
        )
        empty = list_selectors.ListStats(0, {}, None)
        shown = ShownList.own(hash_list, org=org, stats=empty)
        return Response(ListSerializer(shown).data, status=status.HTTP_201_CREATED)


class ListDetailApi(OrgAPIView):
    @extend_schema_serializer(component_name="ListChange")
    class PatchSerializer(serializers.Serializer):
        name = serializers.CharField(min_length=1, max_length=120, required=False)
        description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
        visibility = serializers.ChoiceField(choices=HashList.Visibility.values, required=False)
        share_classification = serializers.BooleanField(
            required=False,
            help_text="Whether organisations that match the list see its entries' labels "
            "(scope lists:admin).",
        )

    OutputSerializer = ListSerializer
    # The changes that say who sees what of the list: scope lists:admin.
    ADMIN_FIELDS = ("visibility", "share_classification")

    def get_required_scope(self) -> str | None:
        if self.request.method == "PATCH":
            data = getattr(self.request, "data", None)  # a DRF request once dispatched
            changes_visibility = isinstance(data, dict) and any(
                name in data for name in self.ADMIN_FIELDS
            )
            return "lists:admin" if changes_visibility else "lists:write"
        return None

    @extend_schema(
        operation_id="list_retrieve",
        summary="One list (own or shared)",
        parameters=ERROR_HEADERS,
        responses={200: OutputSerializer, **error_responses({404: ["not_found"]})},
    )
    def get(self, request: Request, list_id: str) -> Response:
        return Response(self.OutputSerializer(_shown(_org(request), list_id)).data)

    @extend_schema(
        operation_id="list_update",
        summary="Rename a list, change its description (scope lists:write) or its visibility "
        "and share_classification (scope lists:admin)",
        request={"application/json": PatchSerializer},
        parameters=ERROR_HEADERS,
        responses={
            200: OutputSerializer,
            **error_responses(
                {
                    400: [
                        "invalid",
                        "invalid_name",
                        "name_taken",
                        "description_too_long",
                        "invalid_visibility",
                    ],
                    403: ["permission_denied", "not_list_owner", "org_not_approved"],
                    404: ["not_found", "list_deleted"],
                    409: ["was_open"],
                },
                body=True,
            ),
        },
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
        if "share_classification" in data:
            services.list_share_classification_set(
                hash_list=hash_list, share=data["share_classification"], actor=actor
            )
        return Response(self.OutputSerializer(_own_list(hash_list, org)).data)


class EntriesApi(OrgAPIView):
    """The entries of a list: a page of them (GET), or add to them (POST).

    The serializers describe the bodies for the schema; the view reads the body itself, so that a
    malformed item is one per-item error (``invalid_item``) and the rest of the batch proceeds.
    """

    @extend_schema_serializer(component_name="EntriesPage")
    class PageSerializer(serializers.Serializer):
        entries = EntrySerializer(many=True)
        next_cursor = serializers.CharField(
            allow_null=True, help_text="The cursor of the next page; null on the last page."
        )

    @extend_schema_serializer(component_name="EntriesAdd")
    class InputSerializer(serializers.Serializer):
        entries = serializers.ListField(
            child=EntryAddSerializer(), min_length=1, max_length=MAX_ITEMS
        )

    @extend_schema_serializer(component_name="EntriesAdded")
    class OutputSerializer(serializers.Serializer):
        added = serializers.IntegerField(min_value=0)
        already_present = serializers.IntegerField(min_value=0)
        # Serializer.errors is a property; a declared field is taken off the class at run time.
        errors = ItemErrorSerializer(many=True)  # type: ignore[assignment]

    def get_required_scope(self) -> str | None:
        return "lists:write" if self.request.method == "POST" else "lists:read"

    @extend_schema(
        operation_id="list_entries_list",
        summary="A page of a list's live entries, newest first (own or shared list; lists:read)",
        parameters=[
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
            OpenApiParameter(
                "limit",
                bounded_int(1, list_selectors.MAX_PAGE_SIZE),
                description="1 to 1000, default 100",
            ),
            OpenApiParameter("type", str, enum=SIGNAL_TYPES),
            OpenApiParameter("label", str, description="own lists only"),
            OpenApiParameter(
                "prefix",
                str,
                pattern="^[0-9a-fA-F]{1,64}$",
                description="1 to 64 hex digits the value starts with",
            ),
            *ERROR_HEADERS,
        ],
        responses={
            200: PageSerializer,
            **error_responses(
                {
                    400: ["bad_limit", "bad_cursor", "bad_prefix"],
                    403: ["permission_denied"],
                    404: ["not_found"],
                }
            ),
        },
        extensions=links(
            {
                200: {
                    "NextPage": link(
                        "list_entries_list",
                        "The next page (while next_cursor is not null).",
                        list_id="$request.path.list_id",
                        cursor="$response.body#/next_cursor",
                    )
                }
            }
        ),
    )
    def get(self, request: Request, list_id: str) -> Response:
        query = request.query_params
        seen, page = selectors.entries_readable_by(
            org=_org(request),
            public_id=list_id,
            cursor=query.get("cursor", ""),
            limit=query.get("limit", list_selectors.PAGE_SIZE),
            signal_type=query.get("type", ""),
            label=query.get("label", ""),
            prefix=query.get("prefix", ""),
        )
        if seen.tier != selectors.TIER_OWN:
            # Reading another's list is a sensitive read, like the export (DESIGN.md, invariant
            # 5): the list's public id, never its owner, which the caller may not know.
            audit(
                actor=Actor.from_request(request),
                action="list.entries_read",
                organization=_org(request),
                target_type="list",
                target_id=seen.public_id,
                metadata={
                    "tier": seen.tier,
                    "cursor": query.get("cursor", ""),
                    "entries": len(page.entries),
                    "next_cursor": page.next_cursor,
                },
            )
        entries = [_entry(e, seen.tier) for e in page.entries]
        key = request.auth
        if seen.tier == selectors.TIER_OWN and isinstance(key, ApiKey) and "reports" in key.scopes:
            # Reports are the owner's business: never shown to a reader of a shared list.
            said = list_annotations.annotations_for(org=_org(request), entries=page.entries)
            for body, entry in zip(entries, page.entries, strict=True):
                body["report"] = _entry_report(said.get(entry.pk))
        return Response({"entries": entries, "next_cursor": page.next_cursor})

    @extend_schema(
        operation_id="list_entries_add",
        summary="Add hashes to one of the caller's lists (idempotent; up to 10,000 a call)",
        request={"application/json": InputSerializer},
        parameters=ERROR_HEADERS,
        responses={
            200: OutputSerializer,
            **error_responses(
                {
                    400: ["invalid_body", "too_many_items"],
                    403: ["permission_denied", "not_list_owner"],
                    404: ["not_found", "list_deleted"],
                    409: ["quota_exceeded"],
                },
                body=True,
            ),
        },
    )
    def post(self, request: Request, list_id: str) -> Response:
        hash_list, seen = selectors.list_readable_by(org=_org(request), public_id=list_id)
        if seen.tier != selectors.TIER_OWN:
            raise _not_owner()
        items = _items(request)
        result = list_services.entry_add(
            hash_list=hash_list, items=_well_formed(items), actor=Actor.from_request(request)
        )
        return Response(
            {
                "added": result.added,
                "already_present": result.already_present,
                "errors": _item_errors(items, result.errors),
            }
        )


class EntriesRemoveApi(OrgAPIView):
    required_scope = "lists:write"

    @extend_schema_serializer(component_name="EntriesRemove")
    class InputSerializer(serializers.Serializer):
        entries = serializers.ListField(
            child=EntryRefSerializer(), min_length=1, max_length=MAX_ITEMS
        )
        reason = serializers.CharField(
            max_length=list_services.MAX_REASON, required=False, allow_blank=True
        )

    @extend_schema_serializer(component_name="EntriesRemoved")
    class OutputSerializer(serializers.Serializer):
        removed = serializers.IntegerField(min_value=0)
        not_present = serializers.IntegerField(min_value=0)
        # Serializer.errors is a property; a declared field is taken off the class at run time.
        errors = ItemErrorSerializer(many=True)  # type: ignore[assignment]

    @extend_schema(
        operation_id="list_entries_remove",
        summary="Remove hashes from a list (tombstones; up to 10,000 a call)",
        request={"application/json": InputSerializer},
        parameters=ERROR_HEADERS,
        responses={
            200: OutputSerializer,
            **error_responses(
                {
                    400: ["invalid_body", "too_many_items", "reason_too_long"],
                    403: ["permission_denied"],
                    404: ["not_found", "list_deleted"],
                },
                body=True,
            ),
        },
    )
    def post(self, request: Request, list_id: str) -> Response:
        # Only the caller's own lists: a shared list it may read is as missing here as any other.
        hash_list = list_selectors.get_list_for_org(org=_org(request), public_id=list_id)
        items = _items(request)
        reason = request.data.get("reason", "") if isinstance(request.data, dict) else ""
        if not isinstance(reason, str):
            raise ServiceError("invalid_body", "reason must be a string.")
        result = list_services.entry_remove(
            hash_list=hash_list,
            items=_well_formed(items),
            reason=reason,
            actor=Actor.from_request(request),
        )
        return Response(
            {
                "removed": result.removed,
                "not_present": result.not_present,
                "errors": _item_errors(items, result.errors),
            }
        )


class SubscriptionApi(OrgAPIView):
    required_scope = "lists:admin"

    @extend_schema_serializer(component_name="Subscription")
    class OutputSerializer(serializers.Serializer):
        list = ListSerializer()
        changed = serializers.BooleanField()

    @extend_schema(
        operation_id="list_subscribe",
        summary="Subscribe to a shared list (match against it from the next request)",
        request=None,
        parameters=ERROR_HEADERS,
        responses={
            200: OutputSerializer,
            **error_responses({403: ["permission_denied", "org_not_approved"], 404: ["not_found"]}),
        },
    )
    def put(self, request: Request, list_id: str) -> Response:
        return self._set(request, list_id, subscribed=True)

    @extend_schema(
        operation_id="list_unsubscribe",
        summary="Unsubscribe from a shared list (also opts it out of a category subscription)",
        request=None,
        parameters=ERROR_HEADERS,
        responses={
            200: OutputSerializer,
            **error_responses({403: ["permission_denied", "org_not_approved"], 404: ["not_found"]}),
        },
    )
    def delete(self, request: Request, list_id: str) -> Response:
        return self._set(request, list_id, subscribed=False)

    def _set(self, request: Request, list_id: str, *, subscribed: bool) -> Response:
        org = _org(request)
        changed = services.subscription_list_set(
            org=org, public_id=list_id, subscribed=subscribed, actor=Actor.from_request(request)
        )
        item = selectors.catalogue_item(org=org, public_id=list_id)
        body = {"list": ShownList.shared(item), "changed": changed}
        return Response(self.OutputSerializer(body).data)


class CategorySubscriptionApi(OrgAPIView):
    required_scope = "lists:admin"

    @extend_schema_serializer(component_name="CategorySubscription")
    class OutputSerializer(serializers.Serializer):
        category = CategoryField()
        subscribed = serializers.BooleanField()
        changed = serializers.BooleanField()

    @extend_schema(
        operation_id="category_subscribe",
        summary="Subscribe to every shared list of a category, including lists shared later",
        request=None,
        parameters=[
            OpenApiParameter(
                "category", str, OpenApiParameter.PATH, enum=list(HashList.Category.values)
            ),
            *ERROR_HEADERS,
        ],
        responses={
            200: OutputSerializer,
            **error_responses(
                {400: ["invalid_category"], 403: ["permission_denied", "org_not_approved"]}
            ),
        },
    )
    def put(self, request: Request, category: str) -> Response:
        return self._set(request, category, subscribed=True)

    @extend_schema(
        operation_id="category_unsubscribe",
        summary="Stop the category subscription (lists subscribed one by one stay)",
        request=None,
        parameters=[
            OpenApiParameter(
                "category", str, OpenApiParameter.PATH, enum=list(HashList.Category.values)
            ),
            *ERROR_HEADERS,
        ],
        responses={
            200: OutputSerializer,
            **error_responses(
                {400: ["invalid_category"], 403: ["permission_denied", "org_not_approved"]}
            ),
        },
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
        body = {"category": category, "subscribed": subscribed, "changed": changed}
        return Response(self.OutputSerializer(body).data)
