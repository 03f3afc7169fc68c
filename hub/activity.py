"""The dashboard's recent activity, in sentences: "Bob confirmed a detection into CSAM".

Each audit action an organisation's log can hold maps to a function that turns one event (its
metadata, and the names of the organisation's own lists) into a sentence that starts with who
acted. An action without one reads as its code made readable ("did something: policy thing
set"). A sentence never names who owns an anonymous list: list names come from the
organisation's own lists only (another organisation's list is "a shared list"), and nothing here
reads an owner from the metadata.

``hub`` may not import the apps above it, so they register how their targets are named
(:func:`target_names_register`; ``matching.apps`` registers the lists).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.models import AuditEvent, Organization

TargetNamer = Callable[[Organization, set[str]], Mapping[str, str]]
_NAMERS: dict[str, TargetNamer] = {}


def target_names_register(target_type: str, namer: TargetNamer) -> None:
    """Name the targets of ``target_type`` (public ids) that belong to an organisation."""
    _NAMERS[target_type] = namer


@dataclass(frozen=True)
class Said:
    """What a sentence may use of one event."""

    who: str
    meta: Mapping[str, Any]
    target_name: str  # the organisation's own name for the target, or ""
    target_id: str

    def count(self, key: str) -> int:
        value = self.meta.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def text(self, key: str) -> str:
        value = self.meta.get(key)
        return value if isinstance(value, str) else ""

    def list_name(self, fallback: str = "a list") -> str:
        name = self.target_name or self.text("name")
        return f"“{name}”" if name else fallback


def _hashes(n: int) -> str:
    return f"{n:,} hash" if n == 1 else f"{n:,} hashes"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {plural or word + 's'}"


def _category(s: Said) -> str:
    category = s.text("category")
    return category.upper() if category else "its own list"


def _visibility(value: str) -> str:
    return {"private": "private", "open": "open", "anonymous": "anonymous"}.get(value, value)


def _entries_added(s: Said) -> str:
    sentence = f"{s.who} added {_hashes(s.count('added'))} to {s.list_name()}"
    if s.count("already_present"):
        sentence += f" ({s.count('already_present'):,} already there)"
    return sentence


def _entries_removed(s: Said) -> str:
    return f"{s.who} removed {_hashes(s.count('removed'))} from {s.list_name()}"


def _entries_imported(s: Said) -> str:
    sentence = f"{s.who} imported {_hashes(s.count('added'))} into {s.list_name()}"
    if s.count("rejected"):
        sentence += f", {_plural(s.count('rejected'), 'line')} rejected"
    return sentence


def _list_updated(s: Said) -> str:
    changed = sorted(key for key in s.meta if isinstance(key, str))
    what = ", ".join(changed) if changed else "the settings"
    return f"{s.who} changed {what} of {s.list_name()}"


def _visibility_changed(s: Said) -> str:
    return (
        f"{s.who} made {s.list_name()} {_visibility(s.text('to'))}"
        if s.text("to")
        else f"{s.who} changed who sees {s.list_name()}"
    )


def _settings_changed(s: Said) -> str:
    changed = sorted(key for key in s.meta if isinstance(key, str))
    return f"{s.who} changed the organisation's settings" + (
        f" ({', '.join(changed)})" if changed else ""
    )


def _role_changed(s: Said) -> str:
    return f"{s.who} made {s.text('email') or 'a member'} {s.text('to') or 'a new role'}".rstrip()


def _dispute(verb: str) -> Callable[[Said], str]:
    def sentence(s: Said) -> str:
        name = s.text("list_name")
        where = f" on “{name}”" if name else ""
        return f"{s.who} {verb}{where}"

    return sentence


def _dispute_received(s: Said) -> str:
    name = s.text("list_name")
    where = f" on “{name}”" if name else ""
    disputer = s.text("disputer") or "a member"
    return f"{s.who}: {disputer} disputed an entry{where}"


def _report_updated(s: Said) -> str:
    fields = s.meta.get("fields")
    named = [name for name in fields if isinstance(name, str)] if isinstance(fields, list) else []
    return f"{s.who} edited a draft report" + (f" ({', '.join(named)})" if named else "")


def _review(verb: str) -> Callable[[Said], str]:
    return lambda s: f"{s.who} {verb}"


SENTENCES: dict[str, Callable[[Said], str]] = {
    # detections and their review
    "detection.created": lambda s: f"{s.who} matched content that raised a detection",
    "detection.confirmed": lambda s: (
        f"{s.who} confirmed a detection into {_category(s)}"
        + (f", adding {_hashes(s.count('added'))}" if s.count("added") else "")
    ),
    "detection.false_positive": _review("marked a detection a false positive"),
    "detection.dismissed": _review("dismissed a detection"),
    "detection.retracted": lambda s: (
        f"{s.who} flagged a detection retracted: every entry it matched has been removed"
    ),
    "detections.purged": lambda s: (
        f"{s.who} deleted {_plural(s.count('purged'), 'detection')} past the retention period"
    ),
    "preservation.held": lambda s: (
        f"{s.who} held a detection for preservation"
        + (f" for {_plural(s.count('days'), 'day')}" if s.count("days") else "")
        + (" when its report was filed" if s.text("report") else "")
    ),
    "preservation.released": lambda s: f"{s.who} released a detection's preservation hold",
    "webhooks.deliveries_purged": lambda s: (
        f"{s.who} deleted {_plural(s.count('purged'), 'webhook delivery log')} past the "
        "retention period"
    ),
    # reports to a hotline (reports.services)
    "report.opened": lambda s: f"{s.who} opened a report on a detection",
    "report.updated": _report_updated,
    "report.filed": lambda s: (
        f"{s.who} filed a report with the hotline"
        + (f" as {s.text('hotline_report_id')}" if s.text("hotline_report_id") else "")
    ),
    "report.acknowledged": lambda s: f"{s.who} recorded that the hotline acknowledged a report",
    "report.downloaded": lambda s: (
        f"{s.who} printed a report's summary"
        if s.text("profile") == "print"
        else f"{s.who} downloaded a report"
        + (f" ({s.text('profile')} profile)" if s.text("profile") else "")
    ),
    "report.profile_set": lambda s: (
        f"{s.who} chose the {s.text('profile')} hotline profile for reports"
        if s.text("profile")
        else f"{s.who} chose the hotline profile for reports"
    ),
    "report.listed": lambda s: (
        f"{s.who} found a reported hash now listed by {s.text('source')}"
        if s.text("source")
        else f"{s.who} found a reported hash now listed by a verified source"
    ),
    "reports.purged": lambda s: (
        f"{s.who} deleted {_plural(s.count('purged'), 'report')} past the retention period"
    ),
    "allow_list.removed": lambda s: f"{s.who} took a hash off the allow list",
    "policy.link_template_set": lambda s: (
        f"{s.who} set the link to the moderation tool"
        if s.text("template")
        else f"{s.who} removed the link to the moderation tool"
    ),
    # lists and their entries
    "entries.added": _entries_added,
    "entries.removed": _entries_removed,
    "entries.imported": _entries_imported,
    "import.queued": lambda s: (
        f"{s.who} queued an import of {_plural(s.count('lines'), 'line')}"
        + (f" ({s.text('filename')})" if s.text("filename") else "")
    ),
    "list.created": lambda s: (
        f"{s.who} created the list {s.list_name()}"
        + (f" ({s.text('category').upper()})" if s.text("category") else "")
    ),
    "list.updated": _list_updated,
    "list.deleted": lambda s: f"{s.who} deleted the list {s.list_name()}",
    "list.exported": lambda s: f"{s.who} exported {s.list_name()}",
    "list.entries_read": lambda s: f"{s.who} read entries of {s.list_name('a shared list')}",
    "list.visibility_changed": _visibility_changed,
    "list.owner_revealed": lambda s: f"{s.who} looked up who owns {s.list_name()}",
    "export.read": lambda s: f"{s.who} read the match export",
    # sharing
    "subscription.added": lambda s: f"{s.who} subscribed to {s.list_name('a shared list')}",
    "subscription.removed": lambda s: f"{s.who} unsubscribed from {s.list_name('a shared list')}",
    "subscription.category_added": lambda s: (
        f"{s.who} subscribed to every shared {s.target_id.upper() or 'list'} list"
    ),
    "subscription.category_removed": lambda s: (
        f"{s.who} unsubscribed from every shared {s.target_id.upper() or 'list'} list"
    ),
    "sharing.preferences_changed": lambda s: f"{s.who} changed how disputed entries are matched",
    "source.access_granted": lambda s: (
        f"{s.who} opened the verified source {s.text('source') or 'a source'} to the organisation"
    ),
    "source.access_revoked": lambda s: (
        f"{s.who} closed the verified source {s.text('source') or 'a source'} to the organisation"
    ),
    "source.access_changed": lambda s: f"{s.who} changed which verified sources are open",
    "dispute.created": _dispute("disputed an entry"),
    "dispute.received": _dispute_received,
    "dispute.withdrawn": _dispute("withdrew a dispute"),
    "dispute.rejected": _dispute("rejected a dispute"),
    "dispute.retracted": _dispute("upheld a dispute and retracted the entry"),
    "dispute.entry_removed": _dispute("closed a dispute: the entry was removed"),
    # webhooks
    "webhook.created": lambda s: f"{s.who} added a webhook",
    "webhook.deleted": lambda s: f"{s.who} deleted a webhook",
    "webhook.secret_rotated": lambda s: f"{s.who} rotated a webhook's secret",
    "webhook.tested": lambda s: f"{s.who} sent a test event to a webhook",
    # the organisation, its members and keys
    "organization.created": lambda s: f"{s.who} created the organisation",
    "organization.approved": lambda s: f"{s.who} approved the organisation",
    "organization.unapproved": lambda s: f"{s.who} suspended the organisation's approval",
    "organization.settings_changed": _settings_changed,
    "organization.quotas_changed": lambda s: f"{s.who} changed the organisation's quotas",
    "organization.deleted": lambda s: f"{s.who} deleted the organisation",
    "organization.restored": lambda s: f"{s.who} restored the organisation",
    "organization.purged": lambda s: f"{s.who} purged the organisation's data",
    "organization.erased": lambda s: f"{s.who} erased the organisation's removed entries",
    "invitation.created": lambda s: (
        f"{s.who} invited {s.text('email') or 'someone'}"
        + (f" as {s.text('role')}" if s.text("role") else "")
    ),
    "invitation.accepted": lambda s: (
        f"{s.who} joined the organisation" + (f" as {s.text('role')}" if s.text("role") else "")
    ),
    "invitation.revoked": lambda s: (
        f"{s.who} withdrew the invitation of {s.text('email') or 'someone'}"
    ),
    "membership.role_changed": _role_changed,
    "membership.removed": lambda s: f"{s.who} removed {s.text('email') or 'a member'}",
    "membership.left": lambda s: f"{s.who} left the organisation",
    "membership.set_by_command": lambda s: (
        f"{s.who} made {s.text('email') or 'a member'} a member"
        + (f" ({s.text('role')})" if s.text("role") else "")
    ),
    "api_key.created": lambda s: (
        f"{s.who} created the API key {s.text('name')}"
        if s.text("name")
        else f"{s.who} created an API key"
    ),
    "api_key.revoked": lambda s: (
        f"{s.who} revoked the API key {s.text('name')}"
        if s.text("name")
        else f"{s.who} revoked an API key"
    ),
    "api_key.rotated": lambda s: f"{s.who} rotated an API key",
    "api_key.scopes_changed": lambda s: f"{s.who} changed an API key's scopes",
    "hub.reconciled": lambda s: f"{s.who} reconciled the hub's derived state",
    "system.worker_check": lambda s: f"{s.who} checked that the background worker runs",
}


def readable_action(action: str) -> str:
    """An action code made readable: ``policy.thing_set`` → "policy thing set"."""
    return action.replace(".", " ").replace("_", " ").strip() or "an action"


def actor_name(event: AuditEvent) -> str:
    """Who acted: a user's name (else e-mail), an API key's label, or HashHub for the system."""
    user = event.actor_user
    if user is not None:
        return user.name or user.email
    if event.actor_type == AuditEvent.ActorType.SYSTEM:
        return "HashHub"
    return event.actor_label or "Someone"


def activity_sentence(event: AuditEvent, target_name: str = "") -> str:
    """The event as a sentence (no final full stop)."""
    said = Said(
        who=actor_name(event),
        meta=event.metadata if isinstance(event.metadata, Mapping) else {},
        target_name=target_name,
        target_id=event.target_id or "",
    )
    sentence = SENTENCES.get(event.action)
    if sentence is None:
        return f"{said.who}: {readable_action(event.action)}"
    return sentence(said)


@dataclass(frozen=True)
class Activity:
    event: AuditEvent
    sentence: str


def recent_activity(*, org: Organization, events: Iterable[AuditEvent]) -> list[Activity]:
    """The events as sentences, naming the organisation's own targets (one query a kind)."""
    events = list(events)
    wanted: dict[str, set[str]] = {}
    for event in events:
        if event.target_type in _NAMERS and event.target_id:
            wanted.setdefault(event.target_type, set()).add(event.target_id)
    names = {kind: dict(_NAMERS[kind](org, ids)) for kind, ids in wanted.items()}
    return [
        Activity(
            event,
            activity_sentence(event, names.get(event.target_type, {}).get(event.target_id, "")),
        )
        for event in events
    ]
