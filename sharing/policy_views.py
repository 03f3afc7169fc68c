"""The match policy page, ``/o/<org_slug>/policy/``: what the organisation matches and how.

Everyone in the organisation may read it; changing it takes ``sharing.manage`` (owners and
admins), like subscriptions. Each form changes one part through :mod:`sharing.policy`, which
validates and audits; a refusal is shown as a message and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from hub.audit import Actor
from hub.decorators import org_permission
from hub.errors import ServiceError
from hub.middleware import OrgRequest
from lists.hashtypes import all_signal_types
from sharing import policy

_SWITCH_FIELDS = {"enabled", "shadow"}


@require_GET
@org_permission("org.read")
def policy_page(request: OrgRequest, org_slug: str) -> HttpResponse:
    view = policy.policy_view(org=request.organization)
    return render(
        request,
        "sharing/policy.html",
        {
            "policy": view,
            "perceptual": [t.name for t in all_signal_types() if t.kind == "perceptual"],
            "signal_types": [t.name for t in all_signal_types()],
            "actions": policy.ACTIONS,
            "tomorrow": (timezone.now() + dt.timedelta(days=1)).date().isoformat(),
        },
    )


def _back(org_slug: str) -> HttpResponseRedirect:
    return redirect("match_policy", org_slug=org_slug)


def _whole(text: str) -> int | str:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 6 else text


@require_POST
@org_permission("sharing.manage")
def policy_change(request: OrgRequest, org_slug: str) -> HttpResponse:
    """One form's change: ``part`` names which."""
    org, actor, data = request.organization, Actor.from_request(request), request.POST
    part = data.get("part", "")
    try:
        if part == "settings":
            changes: dict[str, Any] = {
                "thresholds": {
                    name: _whole(data.get(f"threshold_{name}", ""))
                    for name in policy.policy_view(org=org)["thresholds"]
                    if data.get(f"threshold_{name}", "").strip()
                },
                "default_action": data.get("default_action", ""),
                "dihedral_default": data.get("dihedral_default") == "on",
                "retroactive_days": _whole(data.get("retroactive_days", "0") or "0"),
                "link_template": data.get("link_template", "").strip(),
            }
            policy.policy_set(org=org, changes=changes, actor=actor)
            messages.success(request, "Match settings saved.")
        elif part in {"source", "list"}:
            field = data.get("field", "")
            if field not in _SWITCH_FIELDS:
                raise ServiceError("invalid_request", "Choose enabled or shadow.")
            item = {"id": data.get("id", ""), field: data.get("value") == "on"}
            policy.policy_set(org=org, changes={f"{part}s": [item]}, actor=actor)
            messages.success(request, "Saved: it applies from the next match request.")
        elif part == "category":
            changes = {"categories": {data.get("id", ""): {"enabled": data.get("value") == "on"}}}
            policy.policy_set(org=org, changes=changes, actor=actor)
            messages.success(request, "Saved: it applies from the next match request.")
        elif part == "list_thresholds":
            chosen = {
                name: _whole(data.get(f"threshold_{name}", ""))
                for name in ("pdq", "phash")
                if data.get(f"threshold_{name}", "").strip()
            }
            item = {"id": data.get("id", ""), "thresholds": chosen}
            policy.policy_set(org=org, changes={"lists": [item]}, actor=actor)
            messages.success(request, "List thresholds saved.")
        elif part == "rule_add":
            rule: dict[str, Any] = {"action": data.get("action", "")}
            for name in ("tier", "category", "type", "label"):
                if data.get(name, "").strip():
                    rule[name] = data.get(name, "").strip()
            if data.get("max_distance", "").strip():
                rule["max_distance"] = _whole(data.get("max_distance", ""))
            rules = [*policy.policy_view(org=org)["action_rules"], rule]
            policy.policy_set(org=org, changes={"action_rules": rules}, actor=actor)
            messages.success(request, "Rule added at the end: the first rule that fits decides.")
        elif part == "rule_remove":
            rules = policy.policy_view(org=org)["action_rules"]
            position = _whole(data.get("index", ""))
            if not isinstance(position, int) or position >= len(rules):
                raise ServiceError("invalid_request", "That rule is no longer there.")
            del rules[position]
            policy.policy_set(org=org, changes={"action_rules": rules}, actor=actor)
            messages.success(request, "Rule removed.")
        elif part == "disable":
            until = _until_day(data.get("until", ""))
            policy.entry_disable(
                org=org,
                list_id=data.get("list", ""),
                signal_type=data.get("type", ""),
                value=data.get("value", "").strip(),
                until=until,
                note=data.get("note", ""),
                actor=actor,
            )
            messages.success(request, f"Not matched until {until:%Y-%m-%d %H:%M} UTC.")
        elif part == "enable":
            policy.entry_enable(org=org, public_id=data.get("id", ""), actor=actor)
            messages.success(request, "Matched again from now.")
        else:
            raise ServiceError("invalid_request", "Unknown change.")
    except ServiceError as error:
        messages.error(request, error.message)
        return (
            redirect("match_policy", org_slug=org_slug) if error.status < 500 else _back(org_slug)
        )
    return _back(org_slug)


def _until_day(text: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ServiceError(
            "invalid_until", "Choose the day the entry should match again."
        ) from None
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)
