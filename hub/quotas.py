"""Quotas per organisation: how much of the hub one tenant may take (DESIGN.md, invariant 9).

Six quotas, each a default from settings (``HASHHUB_QUOTA_*``) that hub staff may override for one
organisation (:class:`hub.models.OrganizationQuota`, through :func:`quota_set`, audited):

``entries_per_list``          live entries in any one of the organisation's own lists
``entries_total``             live entries across all its own lists
``lists``                     its own lists (not deleted), its CSAM and SE lists included
``api_keys``                  its active API keys (neither revoked nor expired)
``webhooks``                  its webhook endpoints (not deleted)
``image_matches_per_minute``  ``POST /api/v1/match/image`` calls a minute, all its keys together

Lists owned by an upstream source belong to no organisation: they have no quota and count
towards none. Lowering a quota below what an organisation holds removes nothing; it only refuses
what would add more (removals are always allowed).

Refusals
--------
Creating one list, key or webhook too many, or adding entries past a limit, raises ServiceError
``quota_exceeded`` with status **409** (the request is well formed and allowed; the
organisation's present state refuses it, as with ``no_default_list``), whose sentence names the
quota, its limit and how to get it raised, and whose details are ``{"quota", "limit", "used"}``.
The same refusal reaches every path: the API (a 409 body), the web forms (the sentence as a form
error) and the management commands (a non-zero exit). On every path the refused call changes
nothing:

* An add of entries (API, web form, image hashes, a confirmed detection) is refused **whole**:
  the entries are written, the new counts checked inside the same transaction, and the whole add
  rolled back if it crossed a limit. Hashes already present add nothing, so re-sending them never
  trips a quota, even over it.
* A file import (upload job, ``importhashes``) applies its lines in chunks, each its own
  transaction (lists.importing). It **stops** at the first chunk that would cross a limit: that
  chunk is rolled back whole, the chunks before it stay (they were within the quota; the audit
  event of the import says where it stopped), and the import fails with ``quota_exceeded``
  naming the line. Once the quota is raised, the same file can be imported again: the lines
  already applied count as already present.

Image matches past the rate are answered **429** ``rate_limited`` with ``Retry-After`` (the
seconds until the current minute ends) by :class:`ImageMatchQuotaThrottle`, a counter per
organisation and clock minute in Redis.

Who counts what
---------------
``hub`` may not import the apps above it (DESIGN.md), so the apps that own the counted objects
register a usage counter (:func:`quota_usage_counter`) in the module whose services check those
quotas: the check therefore never runs without its counter. ``hub`` counts API keys itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_scopes import scopes_disabled
from rest_framework import throttling
from rest_framework.request import Request

from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.models import ApiKey, Organization, OrganizationQuota

if TYPE_CHECKING:
    from rest_framework.views import APIView

QUOTA_EXCEEDED = "quota_exceeded"
QUOTA_STATUS = 409
RATE_LIMITED = "rate_limited"
# The largest value staff may set: what the integer columns of the smaller quotas hold.
MAX_QUOTA = 2**31 - 1
IMAGE_WINDOW_SECONDS = 60
_RAISE = "ask hub staff to raise the quota"


@dataclass(frozen=True)
class Quotas:
    """One organisation's effective quotas (its overrides, else the defaults)."""

    entries_per_list: int
    entries_total: int
    lists: int
    api_keys: int
    webhooks: int
    image_matches_per_minute: int

    def limit(self, name: str) -> int:
        return int(getattr(self, name))


QUOTA_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Quotas))
QUOTA_LABELS: Mapping[str, str] = {
    "entries_per_list": "Entries per list",
    "entries_total": "Entries in all own lists",
    "lists": "Lists",
    "api_keys": "Active API keys",
    "webhooks": "Webhook endpoints",
    "image_matches_per_minute": "Image matches per minute",
}


# --- selectors --------------------------------------------------------------------------------


def quota_defaults() -> Quotas:
    """Every organisation's quotas unless staff override them (``HASHHUB_QUOTA_*``)."""
    return Quotas(
        **{name: getattr(settings, f"HASHHUB_QUOTA_{name.upper()}") for name in QUOTA_NAMES}
    )


def quota_overrides(*, org: Organization) -> OrganizationQuota | None:
    """Staff's overrides for ``org``, or None when it has never had any."""
    return OrganizationQuota.objects.filter(organization=org).first()


def quota_for(*, org: Organization) -> Quotas:
    """``org``'s effective quotas: each override staff set, else the default."""
    defaults = quota_defaults()
    overrides = quota_overrides(org=org)
    if overrides is None:
        return defaults
    return Quotas(
        **{
            name: value if (value := getattr(overrides, name)) is not None else defaults.limit(name)
            for name in QUOTA_NAMES
        }
    )


UsageCounter = Callable[[Organization], Mapping[str, int]]
# Quota name -> the counter of the app that owns what it counts.
_counters: dict[str, UsageCounter] = {}


def quota_usage_counter(*quotas: str) -> Callable[[UsageCounter], UsageCounter]:
    """Register, as a decorator, what an app above hub counts towards the named quotas:
    ``counter(org)`` returns each one's usage by name (``{"lists": 3, ...}``)."""
    for name in quotas:
        if name not in QUOTA_NAMES:
            raise ValueError(f"unknown quota {name!r}")

    def register(counter: UsageCounter) -> UsageCounter:
        for name in quotas:
            _counters[name] = counter
        return counter

    return register


def _api_keys_active(org: Organization) -> int:
    return (
        ApiKey.objects.filter(organization=org, revoked_at__isnull=True)
        .exclude(expires_at__lte=timezone.now())
        .count()
    )


def _counted(org: Organization) -> dict[str, int]:
    """What ``org`` uses of each counted quota (those whose app's counter is loaded). Each
    counter filters by ``org`` itself, so the tenant scope is lifted (staff read any
    organisation's usage)."""
    with scopes_disabled():
        usage = {"api_keys": _api_keys_active(org)}
        for counter in {id(counter): counter for counter in _counters.values()}.values():
            usage.update(counter(org))
    return usage


def _used(org: Organization, quota: str) -> int:
    """What ``org`` uses of one quota, asking only the counter that counts it."""
    with scopes_disabled():
        if quota == "api_keys":
            return _api_keys_active(org)
        counter = _counters.get(quota)
        if counter is None:
            raise RuntimeError(f"no usage counter is registered for the quota {quota!r}")
        return counter(org)[quota]


@dataclass(frozen=True)
class QuotaLine:
    """One quota of an organisation as a page shows it."""

    name: str
    label: str
    used: int | None  # None: not counted in this process (its app's counter is not loaded)
    limit: int
    default: int
    overridden: bool

    @property
    def reached(self) -> bool:
        return self.used is not None and self.used >= self.limit


def quota_usage(*, org: Organization) -> list[QuotaLine]:
    """Each quota of ``org``: what it uses (image matches: in the current minute) and its limit."""
    limits, defaults = quota_for(org=org), quota_defaults()
    overrides = quota_overrides(org=org)
    usage: dict[str, int | None] = dict(_counted(org))
    usage["image_matches_per_minute"] = image_matches_this_minute(org=org)
    return [
        QuotaLine(
            name=name,
            label=QUOTA_LABELS[name],
            used=usage.get(name),
            limit=limits.limit(name),
            default=defaults.limit(name),
            overridden=overrides is not None and getattr(overrides, name) is not None,
        )
        for name in QUOTA_NAMES
    ]


# --- services ---------------------------------------------------------------------------------


@transaction.atomic
def quota_set(*, org: Organization, overrides: Mapping[str, int | None], actor: Actor) -> Quotas:
    """Set hub staff's overrides of ``org``'s quotas (None: back to the default).

    Quotas not named keep their override. Writes ``organization.quotas_changed`` with each
    changed override as ``[old, new]``; nothing when nothing changed. Returns the effective
    quotas. Raises ServiceError ``invalid_quota``.
    """
    for name, value in overrides.items():
        if name not in QUOTA_NAMES:
            raise ServiceError("invalid_quota", f"“{name}” is not a quota.", {"valid": QUOTA_NAMES})
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUOTA
        ):
            raise ServiceError(
                "invalid_quota",
                f"{QUOTA_LABELS[name]}: a quota is a whole number from 0 to {MAX_QUOTA:,}, "
                "or empty for the default.",
            )
    row, _created = OrganizationQuota.objects.select_for_update().get_or_create(organization=org)
    changes: dict[str, list[int | None]] = {}
    for name, value in overrides.items():
        if getattr(row, name) != value:
            changes[name] = [getattr(row, name), value]
            setattr(row, name, value)
    if changes:
        row.updated = timezone.now()
        row.updated_by = actor.user
        row.save()
        audit(
            actor=actor,
            action="organization.quotas_changed",
            organization=org,
            target_type="organization",
            target_id=org.slug,
            metadata=changes,
        )
    return quota_for(org=org)


def _exceeded(quota: str, limit: int, used: int, sentence: str) -> ServiceError:
    return ServiceError(
        QUOTA_EXCEEDED,
        sentence,
        {"quota": quota, "limit": limit, "used": used},
        status=QUOTA_STATUS,
    )


# What to do instead of creating one more, per counted quota.
_ONE_MORE = {
    "lists": ("lists", "delete a list it no longer needs"),
    "api_keys": ("active API keys", "revoke a key it no longer uses"),
    "webhooks": ("webhook endpoints", "delete an endpoint it no longer needs"),
}


def _check_one_more(org: Organization, quota: str) -> None:
    """Refuse a create that would take ``org`` past ``quota``.

    Takes ``org``'s row lock until the caller's transaction commits, so two creates at once
    cannot both see room for one.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("a quota check must run inside the transaction that creates")
    Organization.objects.select_for_update().filter(pk=org.pk).values_list("pk").first()
    limit = quota_for(org=org).limit(quota)
    used = _used(org, quota)
    if used + 1 > limit:
        noun, instead = _ONE_MORE[quota]
        raise _exceeded(
            quota,
            limit,
            used,
            f"This organisation has {used:,} {noun} and its quota is {limit:,}, so nothing "
            f"was created: {instead}, or {_RAISE}.",
        )


def quota_check_lists(*, org: Organization) -> None:
    """Refuse a new own list past the ``lists`` quota. Call inside the creating transaction."""
    _check_one_more(org, "lists")


def quota_check_api_keys(*, org: Organization) -> None:
    """Refuse a new API key past the ``api_keys`` quota. Call inside the creating transaction."""
    _check_one_more(org, "api_keys")


def quota_check_webhooks(*, org: Organization) -> None:
    """Refuse a new webhook past the ``webhooks`` quota. Call inside the creating transaction."""
    _check_one_more(org, "webhooks")


def _new_hashes(count: int) -> str:
    return "1 new hash" if count == 1 else f"{count:,} new hashes"


def quota_check_entries(
    *, org: Organization | None, list_name: str, list_entries: int, added: int
) -> None:
    """Refuse an add of entries that took a list or its organisation past an entry quota.

    Called *after* the entries were written, in the same transaction: ``list_entries`` is the
    list's live count with them, ``added`` how many of them are new. Raising rolls the whole add
    back. Adds of nothing new (``added`` 0) and lists of upstream sources (``org`` None) pass.
    The entry writers hold the change sequence's lock until they commit (lists.models), so the
    counts read here include every add that committed before.
    """
    if org is None or added <= 0:
        return
    limits = quota_for(org=org)
    if list_entries > limits.entries_per_list:
        raise _exceeded(
            "entries_per_list",
            limits.entries_per_list,
            list_entries - added,
            f"The list “{list_name}” may hold {limits.entries_per_list:,} entries (its quota), "
            f"and {_new_hashes(added)} would bring it to {list_entries:,}: remove entries it "
            f"no longer needs, or {_RAISE}.",
        )
    total = _used(org, "entries_total")
    if total > limits.entries_total:
        raise _exceeded(
            "entries_total",
            limits.entries_total,
            total - added,
            f"This organisation's own lists may hold {limits.entries_total:,} entries together "
            f"(its quota), and {_new_hashes(added)} would bring them to {total:,}: remove "
            f"entries they no longer need, or {_RAISE}.",
        )


# --- image matches per minute ---------------------------------------------------------------


@cache
def _redis() -> redis.Redis:
    """This process's connection pool to the cache's Redis server."""
    return redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])


def _image_key(org_id: int, window: int) -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:quota:image:{org_id}:{window}"


def image_matches_this_minute(*, org: Organization) -> int:
    """How many image matches ``org`` made in the current clock minute."""
    window = int(time.time() // IMAGE_WINDOW_SECONDS)
    value = _redis().get(_image_key(org.pk, window))
    return int(value) if value is not None else 0


class ImageMatchQuotaThrottle(throttling.BaseThrottle):
    """Image matches per minute per organisation (quota ``image_matches_per_minute``).

    One Redis counter per organisation and clock minute, shared by all its keys and every web
    process. A refused request is answered 429 ``rate_limited`` with ``Retry-After``, the
    seconds until the minute ends. Only POSTs count (what hashes an image).

    DRF answers a throttle's refusal with its own ``throttled`` code, so this one raises the
    ServiceError itself; ``Retry-After`` goes on the view's response headers, which DRF puts on
    whatever response the request gets (``APIView.finalize_response``).
    """

    def allow_request(self, request: Request, view: APIView) -> bool:
        key = request.auth
        if request.method != "POST" or not isinstance(key, ApiKey):
            return True
        org = key.organization
        limit = quota_for(org=org).image_matches_per_minute
        now = time.time()
        position, into = divmod(now, IMAGE_WINDOW_SECONDS)
        counter = _image_key(org.pk, int(position))
        count = int(_redis().incr(counter))
        if count == 1:
            _redis().expire(counter, 2 * IMAGE_WINDOW_SECONDS)
        if count <= limit:
            return True
        wait = max(1, math.ceil(IMAGE_WINDOW_SECONDS - into))
        view.headers["Retry-After"] = str(wait)
        raise ServiceError(
            RATE_LIMITED,
            f"This organisation may match {limit:,} images a minute (its quota): try again in "
            f"{wait} seconds, or {_RAISE}.",
            {"quota": "image_matches_per_minute", "limit": limit, "retry_after_seconds": wait},
            status=429,
        )

    def wait(self) -> float | None:
        return None
