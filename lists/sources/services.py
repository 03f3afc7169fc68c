"""Upstream sources registered and changed: create, update, their CSAM and SE lists.

A source's ``config`` is checked here, whoever calls (the staff page, ``addsource``, the API):
its kind's adapter must accept it; it must hold no credential, only the names of environment
variables that hold them, each starting with HASHHUB_SOURCE_ENV_PREFIX
(lists.sources.credentials); and its URL must pass the address guard, and be https when the
source sends a credential, unless HASHHUB_SOURCE_ALLOWED_HOSTS names the host
(lists.sources.guard). Every change is audited with the fields changed and their old and new
values, the config's as a page shows it (never a secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django_scopes import scopes_disabled

from hub.audit import Actor, audit
from hub.errors import ServiceError
from lists.models import FeedUpload, HashList, Source, SourceCredential
from lists.services import source_lists_created
from lists.sources.adapters import adapter_class
from lists.sources.credentials import ENV_SUFFIX, config_changes, credential_problems
from lists.sources.errors import SourceError
from lists.sources.guard import source_url_check
from lists.sources.schedules import check_schedule, schedule_sync


def config_clean(
    kind: str, config: Mapping[str, Any], *, stored_credentials: bool = False
) -> dict[str, Any]:
    """``config`` checked and cleaned for a source of ``kind``; ServiceError when refused.

    ``stored_credentials``: the source has credentials stored (so its URL must be fit to
    receive them, as when the config names an environment variable).
    """
    if kind not in Source.Kind.values:
        raise ServiceError(
            "invalid_kind",
            f"kind must be one of: {', '.join(Source.Kind.values)}.",
            {"allowed": list(Source.Kind.values)},
        )
    if not isinstance(config, Mapping):
        raise ServiceError("bad_config", "config must be an object.")
    problems = credential_problems(config)
    if problems:
        # Before the adapter sees it: its complaints may quote a value, and a value here may be
        # the very secret. The sentences name keys, never values.
        raise ServiceError(
            "credential_in_config",
            " ".join([*problems, "The configuration was not kept."]),
            {"problems": problems},
        )
    try:
        cleaned = adapter_class(kind).check_config(config)
        url = cleaned.get("url")
        if isinstance(url, str) and url:
            sends_credentials = stored_credentials or any(
                key.lower().endswith(ENV_SUFFIX) and value for key, value in cleaned.items()
            )
            source_url_check(url, with_credentials=sends_credentials)
    except SourceError as error:
        raise ServiceError(error.code, error.message) from None
    return cleaned


def source_lists(source: Source) -> dict[str, HashList]:
    """The source's list per category, made on first use ("<name> CSAM", "<name> SE")."""
    # Source lists belong to no organisation: outside every tenant scope.
    made = []
    with scopes_disabled():
        lists = {hl.category: hl for hl in HashList.objects.filter(source=source)}
        for category, label in HashList.Category.choices:
            if category not in lists:
                lists[category], created = HashList.objects.get_or_create(
                    source=source,
                    category=category,
                    defaults={"name": f"{source.name} {label}"[:120], "organization": None},
                )
                if created:
                    made.append(lists[category])
    if made:
        # Entitled organisations gain the new lists in the same transaction (sharing listens).
        source_lists_created.send(sender=Source, source=source, hash_lists=made)
    return lists


def audit_source(source: Source, action: str, actor: Actor, **metadata: Any) -> None:
    audit(
        actor=actor,
        action=action,
        organization=None,
        target_type="source",
        target_id=source.public_id,
        metadata={"name": source.name, **metadata},
    )


@transaction.atomic
def source_create(
    *,
    name: str,
    kind: str,
    config: Mapping[str, Any],
    default_category: str = HashList.Category.CSAM,
    access: str = Source.Access.GRANTED,
    interval_minutes: int = 0,
    cron: str = "",
    description: str = "",
    verification: str = "",
    actor: Actor,
) -> Source:
    """Register an upstream source and make its CSAM and SE lists. Audited (no credentials).

    A ``config`` that seems to hold a credential rather than the name of an environment variable
    is refused (``credential_in_config``), as is one its kind's adapter cannot work with.
    """
    name = name.strip()
    if not name or len(name) > 120:
        raise ServiceError("invalid_name", "Give the source a name of 1 to 120 characters.")
    if Source.objects.filter(name=name).exists():
        raise ServiceError("name_taken", "A source with this name exists already.", status=409)
    if default_category not in HashList.Category.values:
        raise ServiceError("invalid_category", "category must be one of: csam, se.")
    if access not in Source.Access.values:
        raise ServiceError("invalid_access", "access must be one of: all, granted.")
    cron = check_schedule(interval_minutes, cron)
    source = Source.objects.create(
        name=name,
        kind=kind,
        config=config_clean(kind, config),
        default_category=default_category,
        access=access,
        interval_minutes=interval_minutes,
        cron=cron,
        description=description.strip(),
        verification=verification.strip(),
    )
    source_lists(source)
    schedule_sync(source)
    audit_source(source, "source.created", actor, kind=kind, access=access)
    return source


_EDITABLE = {
    "description",
    "verification",
    "enabled",
    "interval_minutes",
    "cron",
    "config",
    "default_category",
}


def settings_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """Each field that differs, with its old and new value, as the audit log keeps them: the
    config key by key through config_changes (never a secret), other fields as they are."""
    changed: dict[str, Any] = {}
    for name in sorted(after):
        old, new = before.get(name), after[name]
        if old == new:
            continue
        if name == "config":
            changed[name] = config_changes(old or {}, new or {})
        else:
            changed[name] = {"old": old, "new": new}
    return changed


@transaction.atomic
def source_update(*, source: Source, actor: Actor, **changes: Any) -> Source:
    """Change a source's settings (not its access: sharing.services.source_access_set). Audited
    (``source.updated``) with each changed field's old and new value (config_changes).

    A new ``config`` is checked as source_create checks it (no credential in it, a URL the
    address guard lets through); a staff upload it no longer reads is deleted.
    """
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise ServiceError("invalid_field", f"Cannot change: {', '.join(sorted(unknown))}.")
    if "config" in changes:
        changes["config"] = config_clean(
            source.kind,
            changes["config"],
            stored_credentials=SourceCredential.objects.filter(source=source).exists(),
        )
    if changes.get("default_category", source.default_category) not in HashList.Category.values:
        raise ServiceError("invalid_category", "category must be one of: csam, se.")
    schedule = {"interval_minutes", "cron"} & set(changes)
    if schedule:
        cron = check_schedule(
            int(changes.get("interval_minutes", source.interval_minutes)),
            changes.get("cron", source.cron),
        )
        if "cron" in changes:
            changes["cron"] = cron
    before = {name: getattr(source, name) for name in changes}
    for name, value in changes.items():
        setattr(source, name, value)
    source.save()
    if "config" in changes:
        uploads_unread(source)
    if schedule or "enabled" in changes:
        schedule_sync(source)
    changed = settings_changes(before, changes)
    audit_source(source, "source.updated", actor, fields=sorted(changed), changes=changed)
    return source


def uploads_unread(source: Source) -> None:
    """Delete the staff uploads of ``source`` its config no longer reads (only the latest one is
    ever read, and none once the source reads a URL or a file instead)."""
    FeedUpload.objects.filter(source=source).exclude(
        public_id=str(source.config.get("upload") or "")
    ).delete()
