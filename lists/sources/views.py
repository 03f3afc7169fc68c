"""Staff pages of upstream sources: the list with health, a source's settings and runs, run detail.

Hub staff only (``staff_required``: the login page for anonymous callers, 404 for everyone else).
The rules live in the services of lists.sources; these views translate forms to calls. A source's
config is shown only through lists.sources.credentials (names of environment variables, never a
credential); a stored credential only as set or not, when and by whom (its value is write-only).
An uploaded feed file is parsed in memory and only its records are kept (lists.sources.uploads).
Entitlements are sharing's business and have their own page (sharing.source_views), linked by
URL name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.decorators import staff_required
from hub.errors import ServiceError
from lists.models import HashList, ImportRun, ImportRunError, Source, SourceCredential
from lists.sources import runs, services, stored_credentials, uploads
from lists.sources.adapters import adapter_class
from lists.sources.credentials import (
    ConfigRow,
    config_for_display,
    credential_name,
    env_name_allowed,
)
from lists.sources.errors import SourceError
from lists.sources.forms import SourceCreateForm, SourceCredentialForm, SourceSettingsForm
from lists.sources.schedules import next_run_after, schedule_text

RUNS_PER_PAGE = 20
ERRORS_PER_PAGE = 100
ACTIVE = (ImportRun.Status.QUEUED, ImportRun.Status.RUNNING)


def duration_text(seconds: float | None) -> str:
    """'42 s', '3 min 5 s', '2 h 10 min', '3 d 4 h': short enough for a table cell."""
    if seconds is None:
        return "—"
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@dataclass(frozen=True)
class RunRow:
    run: ImportRun

    @property
    def duration(self) -> str:
        run = self.run
        if run.started_at is None:
            return "—"
        end = run.finished_at or timezone.now()
        return duration_text((end - run.started_at).total_seconds())

    @property
    def stale(self) -> bool:
        """Running, and no word from its worker for as long as makes the service queue a new run
        beside it (runs.HEARTBEAT_STALE): its worker has probably died."""
        run = self.run
        beat = run.heartbeat_at or run.started_at
        return (
            run.status == ImportRun.Status.RUNNING
            and beat is not None
            and timezone.now() - beat > runs.HEARTBEAT_STALE
        )


@dataclass(frozen=True)
class SourceRow:
    """A source with what the health columns need."""

    source: Source
    lists: list[HashList]
    granted: int  # organisations granted access (matters when access is "granted only")
    current: ImportRun | None

    @property
    def size(self) -> int:
        return sum(int(n) for hash_list in self.lists for n in hash_list.live_counts.values())

    @property
    def lag(self) -> str:
        """How long ago the last successful import finished."""
        if self.source.last_success_at is None:
            return "never"
        return duration_text((timezone.now() - self.source.last_success_at).total_seconds())

    @property
    def overdue(self) -> bool:
        """A scheduled source that has missed two scheduled runs since its last success."""
        source = self.source
        if not source.enabled or not (source.interval_minutes or source.cron):
            return False
        if source.last_success_at is None:
            return source.last_run_at is not None
        due = next_run_after(source, source.last_success_at)
        after = next_run_after(source, due) if due is not None else None
        return after is not None and timezone.now() > after

    @property
    def schedule(self) -> str:
        return schedule_text(self.source)

    @property
    def health(self) -> str:
        """'ok', 'warn' (overdue, never succeeded, disabled) or 'error' (the last run failed)."""
        source = self.source
        if source.last_error:
            return "error"
        if self.overdue or not source.enabled or source.last_success_at is None:
            return "warn"
        return "ok"


def _lists_by_source(source_ids: list[int]) -> dict[int, list[HashList]]:
    # Verified lists belong to no organisation; the tenant scope does not apply to them.
    with scopes_disabled():
        found = list(
            HashList.objects.filter(source_id__in=source_ids, deleted_at__isnull=True).order_by(
                "category"
            )
        )
    by_source: dict[int, list[HashList]] = {pk: [] for pk in source_ids}
    for hash_list in found:
        if hash_list.source_id is not None:
            by_source[hash_list.source_id].append(hash_list)
    return by_source


def _current_runs(source_ids: list[int]) -> dict[int, ImportRun]:
    current: dict[int, ImportRun] = {}
    for run in ImportRun.objects.filter(source_id__in=source_ids, status__in=ACTIVE).order_by(
        "created"
    ):
        current[run.source_id] = run  # the newest active run of each source wins
    return current


def _sources_with_grants() -> QuerySet[Source]:
    # "entitlements" is sharing's reverse relation (sharing.models.SourceEntitlement); counting
    # it by name keeps lists from importing sharing (DESIGN.md: sharing -> lists).
    return Source.objects.annotate(granted=Count("entitlements"))


def _rows(queryset: QuerySet[Source]) -> list[SourceRow]:
    found = list(queryset)
    ids = [source.pk for source in found]
    lists = _lists_by_source(ids)
    current = _current_runs(ids)
    return [
        SourceRow(source, lists[source.pk], getattr(source, "granted", 0), current.get(source.pk))
        for source in found
    ]


def _source(source_id: str) -> Source:
    return get_object_or_404(_sources_with_grants(), public_id=source_id)


def _run(source: Source, run_id: str) -> ImportRun:
    return get_object_or_404(ImportRun, source=source, public_id=run_id)


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request)


# --- the sources list, and a new source ---------------------------------------------------------


def _render_index(request: HttpRequest, form: SourceCreateForm, status: int = 200) -> HttpResponse:
    context = {"rows": _rows(_sources_with_grants()), "form": form}
    return render(request, "lists/sources/index.html", context, status=status)


@staff_required
@require_http_methods(["GET", "POST"])
def sources_index(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _render_index(request, SourceCreateForm())
    form = SourceCreateForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            source = services.source_create(
                name=data["name"],
                kind=data["kind"],
                config=data["config"],
                default_category=data["default_category"],
                access=data["access"],
                interval_minutes=data["interval_minutes"],
                cron=data["cron"],
                description=data["description"],
                verification=data["verification"],
                actor=_actor(request),
            )
        except (ServiceError, SourceError) as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Source {source.name} registered.")
            return redirect("staff_source", source_id=source.public_id)
    return _render_index(request, form, status=400)


# --- one source: settings, runs -----------------------------------------------------------------


@dataclass(frozen=True)
class CredentialRow:
    """One credential a source's kind may use: stored, from an environment variable, or none."""

    name: str
    env_key: str  # the config key that may name a variable for it (password_env)
    variable: str  # the variable the config names ('' for none, or one not allowed)
    stored: SourceCredential | None


def _credential_rows(source: Source) -> list[CredentialRow]:
    stored = {c.name: c for c in stored_credentials.credentials_of(source)}
    rows = []
    for key in adapter_class(source.kind).credential_keys:
        variable = source.config.get(key)
        rows.append(
            CredentialRow(
                name=credential_name(key),
                env_key=key,
                variable=variable if env_name_allowed(variable) else "",
                stored=stored.get(credential_name(key)),
            )
        )
    return rows


def _credential_form(source: Source, data: Any = None) -> SourceCredentialForm:
    return SourceCredentialForm(data, names=stored_credentials.credential_names(source))


def _render_source(
    request: HttpRequest,
    source: Source,
    form: SourceSettingsForm,
    status: int = 200,
    credential_form: SourceCredentialForm | None = None,
) -> HttpResponse:
    (row,) = _rows(_sources_with_grants().filter(pk=source.pk))
    paginator = Paginator(
        ImportRun.objects.filter(source=source).order_by("-created"), RUNS_PER_PAGE
    )
    runs: Page[ImportRun] = paginator.get_page(request.GET.get("page"))
    config: list[ConfigRow] = config_for_display(source.config)
    context = {
        "row": row,
        "source": source,
        "form": form,
        "config": config,
        "runs": runs,
        "run_rows": [RunRow(run) for run in runs],
        "current": RunRow(row.current) if row.current else None,
        "credentials": _credential_rows(source),
        "credential_form": credential_form or _credential_form(source),
    }
    return render(request, "lists/sources/detail.html", context, status=status)


@staff_required
@require_http_methods(["GET", "POST"])
def source_detail(request: HttpRequest, source_id: str) -> HttpResponse:
    source = _source(source_id)
    if request.method != "POST":
        return _render_source(request, source, SourceSettingsForm.for_source(source))
    if request.POST.get("form") == "credential":
        return _credential_post(request, source)
    form = SourceSettingsForm(request.POST, auto_id="settings_%s")
    if form.is_valid():
        changes = form.changes(source)
        try:
            if changes:
                services.source_update(source=source, actor=_actor(request), **changes)
        except (ServiceError, SourceError) as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Settings saved." if changes else "Nothing changed.")
            return redirect("staff_source", source_id=source.public_id)
    return _render_source(request, source, form, status=400)


def _credential_post(request: HttpRequest, source: Source) -> HttpResponse:
    """Store or clear a credential (the source page's credentials form posts here)."""
    form = _credential_form(source, request.POST)
    if form.is_valid():
        name = form.cleaned_data["name"]
        try:
            if form.cleaned_data["clear"]:
                stored_credentials.credential_clear(source=source, name=name, actor=_actor(request))
            else:
                stored_credentials.credential_set(
                    source=source,
                    name=name,
                    value=form.cleaned_data["value"],
                    actor=_actor(request),
                )
        except ServiceError as error:
            form.add_error(None, error.message)
        else:
            done = "cleared" if form.cleaned_data["clear"] else "stored, encrypted"
            messages.success(request, f"The {name} is {done}.")
            return redirect(reverse("staff_source", args=[source.public_id]) + "#credentials")
    settings_form = SourceSettingsForm.for_source(source)
    return _render_source(request, source, settings_form, status=400, credential_form=form)


@staff_required
@require_POST
def source_run_now(request: HttpRequest, source_id: str) -> HttpResponse:
    source = _source(source_id)
    going = ImportRun.objects.filter(source=source, status__in=ACTIVE).exists()
    try:
        runs.source_run_now(source=source, actor=_actor(request))
    except (ServiceError, SourceError) as error:
        messages.error(request, error.message)
    else:
        if going:
            messages.info(request, "A run of this source is already going; here is its progress.")
        else:
            messages.success(request, "Run queued; a worker picks it up shortly.")
    return redirect("staff_source", source_id=source.public_id)


@staff_required
@require_POST
def source_upload(request: HttpRequest, source_id: str) -> HttpResponse:
    """A new file for a file feed: parsed in memory, its records kept, a run queued."""
    source = _source(source_id)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a CSV, TSV or JSON-lines file to upload.")
        return redirect("staff_source", source_id=source.public_id)
    try:
        uploads.upload_size_check(upload.size or 0)  # before reading it
        stored, _ = uploads.feed_upload_store(
            source=source, data=upload.read(), filename=upload.name or "", actor=_actor(request)
        )
    except (ServiceError, SourceError) as error:
        messages.error(request, error.message)
    else:
        count, rejected = stored.record_count, stored.rejected
        also = f", {rejected:,} row{'s' * (rejected != 1)} rejected" if rejected else ""
        messages.success(
            request,
            f"File read: {count:,} record{'s' * (count != 1)}{also}. Only the records are kept, "
            "not the file; an import of them is queued.",
        )
    return redirect("staff_source", source_id=source.public_id)


# --- one run ------------------------------------------------------------------------------------


@staff_required
@require_GET
def source_run(request: HttpRequest, source_id: str, run_id: str) -> HttpResponse:
    source = _source(source_id)
    run = _run(source, run_id)
    paginator = Paginator(ImportRunError.objects.filter(run=run).order_by("id"), ERRORS_PER_PAGE)
    errors: Page[ImportRunError] = paginator.get_page(request.GET.get("page"))
    context = {"source": source, "run": run, "row": RunRow(run), "errors": errors}
    return render(request, "lists/sources/run.html", context)


@staff_required
@require_GET
def source_run_progress(request: HttpRequest, source_id: str, run_id: str) -> HttpResponse:
    """The progress bar alone: htmx swaps it in every second while the run is going."""
    source = _source(source_id)
    run = _run(source, run_id)
    context = {
        "source": source,
        "run": run,
        "row": RunRow(run),
        "on_run_page": request.GET.get("on") == "run",  # no link to the page it is on
    }
    return render(request, "lists/sources/_run_progress.html", context)
