"""Web pages of hash lists: the index, a list's entries, bulk upload, add by image, export.

Every page reads with ``org.read`` and changes with ``lists.edit``; a list or import job of
another organisation is the same 404 as a missing one (the selectors and ``_import_job`` below).
Business rules stay in lists.services / lists.importing: these views translate forms to calls.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from hub.audit import Actor
from hub.decorators import member_may, org_permission
from hub.errors import ServiceError
from hub.middleware import OrgRequest
from hub.uploads import UploadTooLargeError, cap_uploads
from lists import annotations as entry_annotations
from lists import selectors, services
from lists.forms import (
    EntryAddForm,
    EntryFilterForm,
    EntryRemoveForm,
    HashFileForm,
    ImageForm,
    ImageHashesForm,
    ListCreateForm,
    ListDeleteForm,
    ListSettingsForm,
    PickedHash,
)
from lists.hashtypes import (
    PDQ_MIN_QUALITY,
    ImageDecodeError,
    all_signal_types,
    compute_all,
    decode_image,
    get_signal_type,
)
from lists.importing import import_job_create
from lists.models import Entry, HashList, ImportJob

# A multipart body is the file plus boundaries and the other fields; the byte cap applies to the
# file, which decode_upload / decode_image check exactly once it has been read.
MULTIPART_SLACK = 64 * 1024
# Cells a spreadsheet would run as a formula (CSV injection); they get a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV = "text/csv; charset=utf-8"
ResponseT = TypeVar("ResponseT", bound=HttpResponseBase)


def _list(request: OrgRequest, list_id: str) -> HashList:
    return selectors.get_list_for_org(org=request.organization, public_id=list_id)


def _import_job(request: OrgRequest, job_id: str) -> ImportJob:
    # No selector exists for import jobs yet; this is the one lookup, scoped by organisation.
    job = (
        ImportJob.objects.filter(organization=request.organization, public_id=job_id)
        .select_related("hash_list")
        .first()
    )
    if job is None:
        raise Http404("No such import.")
    return job


def _declared_too_large(request: OrgRequest, limit: int) -> bool:
    """Whether the request says it is bigger than ``limit`` (checked before the body is read)."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > limit + MULTIPART_SLACK


def _posted(request: OrgRequest) -> tuple[Any, Any]:
    """Form data and files for a POST (even one with no fields but a file), else None, None."""
    return (request.POST, request.FILES) if request.method == "POST" else (None, None)


def _mb(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MB"


# --- the index --------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@org_permission("org.read")
def lists_index(request: OrgRequest, org_slug: str) -> HttpResponse:
    if request.method == "POST":
        return _list_create(request, org_slug)
    return _render_index(request, ListCreateForm())


@org_permission("lists.edit")
def _list_create(request: OrgRequest, org_slug: str) -> HttpResponse:
    form = ListCreateForm(request.POST)
    if form.is_valid():
        try:
            hash_list = services.list_create(
                org=request.organization, actor=Actor.from_request(request), **form.cleaned_data
            )
        except ServiceError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"The list “{hash_list.name}” was created.")
            return redirect("list_detail", org_slug=org_slug, list_id=hash_list.public_id)
    return _render_index(request, form, status=400)


def _render_index(request: OrgRequest, form: ListCreateForm, status: int = 200) -> HttpResponse:
    lists = list(selectors.lists_of(org=request.organization))
    stats = selectors.list_stats(lists=lists)
    rows = [(hash_list, stats[hash_list.pk]) for hash_list in lists]
    return render(request, "lists/index.html", {"rows": rows, "form": form}, status=status)


# --- one list -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryRow:
    entry: Entry
    type: str
    value: str
    # What higher apps say of the owner's entry (lists.annotations: a report id, listings).
    annotation: dict[str, Any] | None = None


def _entry_row(entry: Entry, annotation: dict[str, Any] | None = None) -> EntryRow:
    signal_type = get_signal_type(entry.hash.signal_type)
    return EntryRow(
        entry, signal_type.name, signal_type.to_text(bytes(entry.hash.value)), annotation
    )


def _render_list(
    request: OrgRequest, hash_list: HashList, status: int = 200, **forms: Any
) -> HttpResponse:
    """The list page; ``forms`` replaces the blank add/settings forms with bound ones."""
    filters = EntryFilterForm(request.GET)
    context: dict[str, Any] = {
        "hash_list": hash_list,
        "stats": selectors.list_stats(lists=[hash_list])[hash_list.pk],
        "filters": filters,
        "add_form": EntryAddForm(),
        "settings_form": ListSettingsForm(
            initial={"name": hash_list.name, "description": hash_list.description}
        ),
        "delete_form": ListDeleteForm(),
        **forms,
    }
    if not filters.is_valid():
        return render(request, "lists/detail.html", context, status=400)
    data = filters.cleaned_data
    page = selectors.entries_page(
        hash_list=hash_list,
        cursor=data["cursor"],
        signal_type=data["type"],
        label=data["label"],
        prefix=data["prefix"],
    )
    # This page shows the organisation's own lists only (selectors.get_list_for_org); what the
    # reports app says of an entry is for members who may read reports.
    said = (
        entry_annotations.annotations_for(org=request.organization, entries=page.entries)
        if member_may(request, "reports.read")
        else {}
    )
    context["rows"] = [_entry_row(entry, said.get(entry.pk)) for entry in page.entries]
    context["filtered"] = bool(filters.filters())
    context["query"] = urlencode(filters.filters())
    if page.next_cursor:
        context["next_query"] = urlencode({**filters.filters(), "cursor": page.next_cursor})
    return render(request, "lists/detail.html", context, status=status)


@require_http_methods(["GET", "POST"])
@org_permission("org.read")
def list_detail(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    hash_list = _list(request, list_id)
    if request.method == "POST":
        return _entry_add(request, org_slug, hash_list)
    return _render_list(request, hash_list)


@org_permission("lists.edit")
def _entry_add(request: OrgRequest, org_slug: str, hash_list: HashList) -> HttpResponse:
    form = EntryAddForm(request.POST)
    if form.is_valid():
        try:
            result = services.entry_add(
                hash_list=hash_list, items=[form.entry()], actor=Actor.from_request(request)
            )
        except ServiceError as error:  # quota_exceeded (hub.quotas): nothing was added
            form.add_error(None, error.message)
            return _render_list(request, hash_list, status=400, add_form=form)
        if not result.errors:
            shown = f"{form.entry().type} {form.entry().value.strip().lower()}"
            if result.added:
                messages.success(request, f"{shown} was added.")
            else:
                messages.info(request, f"{shown} was already in this list.")
            return redirect("list_detail", org_slug=org_slug, list_id=hash_list.public_id)
        form.add_error("value", result.errors[0].message)
    return _render_list(request, hash_list, status=400, add_form=form)


@require_POST
@org_permission("lists.edit")
def entry_remove(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    hash_list = _list(request, list_id)
    form = EntryRemoveForm(request.POST)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        messages.error(request, f"{form.fields[field].label or field.title()}: {errors[0]}")
        return _render_list(request, hash_list, status=400)
    result = services.entry_remove(
        hash_list=hash_list,
        items=[form.entry()],
        reason=form.cleaned_data["reason"],
        actor=Actor.from_request(request),
    )
    if result.errors:
        messages.error(request, result.errors[0].message)
        return _render_list(request, hash_list, status=400)
    if result.removed:
        messages.success(request, f"{form.entry().type} {form.entry().value} was removed.")
    else:
        messages.info(request, "That hash was not in this list (any more).")
    return redirect("list_detail", org_slug=org_slug, list_id=hash_list.public_id)


@require_POST
@org_permission("lists.edit")
def list_settings(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    hash_list = _list(request, list_id)
    form = ListSettingsForm(request.POST)
    if form.is_valid():
        try:
            services.list_update(
                hash_list=hash_list, actor=Actor.from_request(request), **form.cleaned_data
            )
        except ServiceError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "The list was saved.")
            return redirect("list_detail", org_slug=org_slug, list_id=hash_list.public_id)
    return _render_list(request, hash_list, status=400, settings_form=form)


@require_POST
@org_permission("lists.edit")
def list_delete(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    hash_list = _list(request, list_id)
    form = ListDeleteForm(request.POST)
    try:
        if not form.is_valid():
            raise ServiceError("invalid_reason", f"Reason: {form.errors['reason'][0]}")
        removed = services.list_delete(
            hash_list=hash_list,
            reason=form.cleaned_data["reason"],
            actor=Actor.from_request(request),
        )
    except ServiceError as error:
        messages.error(request, error.message)
        return redirect("list_detail", org_slug=org_slug, list_id=hash_list.public_id)
    messages.success(request, f"The list “{hash_list.name}” was deleted ({removed} entries).")
    return redirect("lists", org_slug=org_slug)


# --- bulk upload and import jobs ----------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@org_permission("lists.edit")
def list_upload(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    hash_list = _list(request, list_id)
    limit = settings.HASHHUB_MAX_HASH_FILE_BYTES
    if request.method == "POST" and _declared_too_large(request, limit):
        return _render_upload(request, hash_list, HashFileForm(), _too_large(limit), 413)
    form = HashFileForm(*_posted(request))
    if not form.is_valid():
        return _render_upload(request, hash_list, form, status=400 if form.is_bound else 200)
    upload = form.cleaned_data["file"]
    try:
        job = import_job_create(
            hash_list=hash_list,
            filename=upload.name or "upload",
            data=upload.read(),
            default_type=form.cleaned_data["default_type"],
            actor=Actor.from_request(request),
        )
    except ServiceError as error:
        return _render_upload(request, hash_list, form, error.message, error.status)
    return redirect("import_job", org_slug=org_slug, job_id=job.public_id)


def _too_large(limit: int) -> str:
    return f"The file is too large: a hash file may be at most {_mb(limit)}."


def _render_upload(
    request: OrgRequest, hash_list: HashList, form: HashFileForm, error: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "hash_list": hash_list,
        "form": form,
        "error": error,
        "limit": _mb(settings.HASHHUB_MAX_HASH_FILE_BYTES),
        "types": [t.name for t in all_signal_types()],
    }
    return render(request, "lists/upload.html", context, status=status)


@require_GET
@org_permission("org.read")
def import_job(request: OrgRequest, org_slug: str, job_id: str) -> HttpResponse:
    return render(request, "lists/import_job.html", {"job": _import_job(request, job_id)})


@require_GET
@org_permission("org.read")
def import_job_progress(request: OrgRequest, org_slug: str, job_id: str) -> HttpResponse:
    return render(request, "lists/_import_progress.html", {"job": _import_job(request, job_id)})


@require_GET
@org_permission("org.read")
def import_job_report(request: OrgRequest, org_slug: str, job_id: str) -> HttpResponse:
    job = _import_job(request, job_id)
    rows = ((r.get("line"), r.get("code"), r.get("message"), r.get("text")) for r in job.rejections)
    # At most importing.MAX_REPORTED short lines: small enough to answer in one piece.
    body = "".join(_csv_lines(("line", "code", "message", "text"), rows))
    return _attachment(HttpResponse(body, content_type=CSV), f"import-{job.public_id}-rejected")


# --- add by image -------------------------------------------------------------------------------


# The CSRF token is checked by _image_form, once the image's cap is in place: the middleware would
# read the whole body (up to the hash files' 100 MB) to find the token before this view could
# refuse it (Django's documented way to set upload handlers in a view).
@csrf_exempt
@require_http_methods(["GET", "POST"])
@org_permission("lists.edit")
def list_add_image(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    hash_list = _list(request, list_id)
    limit = settings.HASHHUB_MAX_UPLOAD_BYTES
    if request.method == "POST" and _declared_too_large(request, limit):
        message = f"The image is too large: the limit is {_mb(limit)}."
        return _render_image(request, hash_list, ImageForm(), message, 413)
    try:
        if request.method == "POST":
            cap_uploads(request, limit)  # refused while streaming as soon as it passes the limit
        return _image_form(request, hash_list, limit)
    except UploadTooLargeError as error:
        return _render_image(request, hash_list, ImageForm(), error.message, 413)


@csrf_protect
def _image_form(request: OrgRequest, hash_list: HashList, limit: int) -> HttpResponse:
    form = ImageForm(*_posted(request))
    if not form.is_valid():
        return _render_image(request, hash_list, form, status=400 if form.is_bound else 200)
    try:
        # Decoded and hashed in memory; the bytes go out of scope with this request.
        image = decode_image(
            form.cleaned_data["image"].read(),
            max_bytes=limit,
            max_pixels=settings.HASHHUB_MAX_IMAGE_PIXELS,
        )
    except ImageDecodeError as error:
        return _render_image(request, hash_list, form, error.message, error.status)
    picked = [PickedHash.of(computed) for computed in compute_all(image).values()]
    chosen = {h.pair for h in picked if not h.low_quality}
    return _render_image_hashes(request, hash_list, ImageHashesForm(), picked, chosen)


def _render_image(
    request: OrgRequest, hash_list: HashList, form: ImageForm, error: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "hash_list": hash_list,
        "form": form,
        "error": error,
        "limit": _mb(settings.HASHHUB_MAX_UPLOAD_BYTES),
    }
    return render(request, "lists/image.html", context, status=status)


def _render_image_hashes(
    request: OrgRequest,
    hash_list: HashList,
    form: ImageHashesForm,
    picked: list[PickedHash],
    chosen: set[str],
    status: int = 200,
) -> HttpResponse:
    context = {
        "hash_list": hash_list,
        "form": form,
        "picked": picked,
        "chosen": chosen,
        "low_quality": any(h.low_quality for h in picked),
        "pdq_min_quality": PDQ_MIN_QUALITY,
    }
    response = render(request, "lists/image_hashes.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@org_permission("lists.edit")
def list_add_image_hashes(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    hash_list = _list(request, list_id)
    form = ImageHashesForm(request.POST)
    if form.is_valid():
        try:
            result = services.entry_add(
                hash_list=hash_list, items=form.entries(), actor=Actor.from_request(request)
            )
        except ServiceError as error:  # quota_exceeded (hub.quotas): nothing was added
            form.add_error(None, error.message)
            return _render_image_hashes(request, hash_list, form, form.shown(), form.chosen(), 400)
        if not result.errors:
            messages.success(
                request, f"{result.added} added, {result.already_present} already in the list."
            )
            return redirect("list_detail", org_slug=org_slug, list_id=hash_list.public_id)
        form.add_error(None, result.errors[0].message)
    return _render_image_hashes(request, hash_list, form, form.shown(), form.chosen(), 400)


# --- export -------------------------------------------------------------------------------------


class _Echo:
    """A file-like object whose write returns the line: csv.writer then yields each row."""

    def write(self, value: str) -> str:
        return value


def neutralise(cell: object) -> str:
    """A CSV cell a spreadsheet will show as text, never run as a formula."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_lines(header: Iterable[str], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(list(header))
    for row in rows:
        yield writer.writerow([neutralise(cell) for cell in row])


def _attachment(response: ResponseT, name: str) -> ResponseT:
    response["Content-Disposition"] = f'attachment; filename="{slugify(name) or "export"}.csv"'
    response["Cache-Control"] = "no-store"
    return response


def _audit_export(request: OrgRequest, hash_list: HashList) -> None:
    services.list_export_record(hash_list=hash_list, actor=Actor.from_request(request))


# hub.decorators types views as returning HttpResponse; a StreamingHttpResponse is an
# HttpResponseBase but not an HttpResponse, hence the one ignore below.
@require_GET
@org_permission("org.read")  # type: ignore[arg-type]
def list_export(request: OrgRequest, org_slug: str, list_id: str) -> StreamingHttpResponse:
    hash_list = _list(request, list_id)
    _audit_export(request, hash_list)
    rows = selectors.entries_export_rows(hash_list=hash_list)
    header = ("type", "value", "labels", "note", "added_at", "added_by")
    response = StreamingHttpResponse(_csv_lines(header, rows), content_type=CSV)
    return _attachment(response, f"{hash_list.name}-{timezone.now():%Y%m%d-%H%M}")
