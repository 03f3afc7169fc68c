"""The rules of a match policy that the match path reads: the server's ceilings per signal type,
and :class:`Policy`, the read model of one organisation's policy (its radii, shadow mode and
recommended actions).

Apart from :mod:`sharing.policy` (the writes and their validation) so that
``sharing.selectors``, which reads the policy in the statement that reads what an organisation
matches, needs nothing of the module that calls it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from lists.hashtypes import all_signal_types, get_signal_type
from sharing.models import MatchPolicy

ACTIONS = ("block", "review", "none")
"""Recommended actions, strongest first."""

RULE_FIELDS = {"action", "tier", "category", "label", "type", "max_distance"}
MAX_RULES = 50
MAX_RETROACTIVE_DAYS = 365
MAX_DISABLE_DAYS = 3 * 366
LINK_FIELD = "{content_ref}"


def server_max_distance(name: str) -> int:
    """The most any match on this hub may ask for ``name``: the setting
    ``HASHHUB_MAX_DISTANCE_<TYPE>``, never above what the match index supports."""
    signal_type = get_signal_type(name)
    configured = settings.HASHHUB_MAX_DISTANCE.get(signal_type.name)
    return (
        signal_type.max_distance
        if configured is None
        else min(int(configured), signal_type.max_distance)
    )


def server_default_distance(name: str) -> int:
    """What a match gets for ``name`` when neither the request nor the policy says."""
    return min(get_signal_type(name).default_max_distance, server_max_distance(name))


def _perceptual() -> list[str]:
    return [t.name for t in all_signal_types() if t.kind == "perceptual"]


@dataclass(frozen=True)
class Policy:
    """What the match service needs of an organisation's policy (see the module docstring)."""

    thresholds: Mapping[str, int] = field(default_factory=dict)
    list_thresholds: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    shadow_lists: frozenset[str] = frozenset()
    shadow_sources: frozenset[str] = frozenset()
    action_rules: tuple[Mapping[str, Any], ...] = ()
    default_action: str = "review"
    dihedral_default: bool = False
    link_template: str = ""
    retroactive_days: int = 0

    @classmethod
    def of(cls, row: MatchPolicy | Mapping[str, Any] | None) -> Policy:
        if row is None:
            return cls()
        get = row.get if isinstance(row, Mapping) else lambda name: getattr(row, name)
        return cls(
            thresholds=dict(get("thresholds") or {}),
            list_thresholds={k: dict(v) for k, v in (get("list_thresholds") or {}).items()},
            shadow_lists=frozenset(get("shadow_lists") or ()),
            shadow_sources=frozenset(get("shadow_sources") or ()),
            action_rules=tuple(get("action_rules") or ()),
            default_action=get("default_action") or "review",
            dihedral_default=bool(get("dihedral_default")),
            link_template=get("link_template") or "",
            retroactive_days=int(get("retroactive_days") or 0),
        )

    def radius(self, signal_type: str, list_id: str | None = None) -> int:
        """The organisation's radius for ``signal_type`` (on the list ``list_id``, if it set
        one), never above the server's maximum."""
        chosen = self.thresholds.get(signal_type, server_default_distance(signal_type))
        if list_id is not None and signal_type in self.list_thresholds.get(list_id, {}):
            chosen = self.list_thresholds[list_id][signal_type]
        return min(chosen, server_max_distance(signal_type))

    def is_shadow(self, *, list_id: str, source_id: str = "") -> bool:
        return list_id in self.shadow_lists or bool(source_id and source_id in self.shadow_sources)

    def action_for(self, match: Mapping[str, Any], *, signal_type: str) -> str:
        """The first rule the match meets decides; a held hash is never more than ``review``."""
        chosen = self.default_action
        for rule in self.action_rules:
            if _rule_meets(rule, match, signal_type):
                chosen = rule["action"]
                break
        if match.get("held") and chosen == "block":
            return "review"
        return chosen


def _rule_meets(rule: Mapping[str, Any], match: Mapping[str, Any], signal_type: str) -> bool:
    listed = match.get("list", {})
    if "tier" in rule and rule["tier"] != listed.get("tier"):
        return False
    if "category" in rule and rule["category"] != listed.get("category"):
        return False
    if "type" in rule and rule["type"] != signal_type:
        return False
    if "label" in rule and rule["label"] not in (match.get("labels") or ()):
        return False
    return not ("max_distance" in rule and match.get("distance", 0) > rule["max_distance"])


def strongest(actions: Iterable[str]) -> str:
    """The strongest of ``actions`` (``block`` over ``review`` over ``none``), "" for none."""
    present = set(actions)
    return next((action for action in ACTIONS if action in present), "")
