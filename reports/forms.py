"""The forms of the report pages: they read what the analyst typed; reports.services checks it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from reports.models import Report

VIEWED_CHOICES = [
    ("", "Not said"),
    ("yes", "Yes: our staff viewed the file"),
    ("no", "No: our staff did not view the file"),
]
VIEWED_VALUES = {"": None, "yes": True, "no": False}


def _viewed_choice(value: bool | None) -> str:
    return {None: "", True: "yes", False: "no"}[value]


def day_moment(day: dt.date | None, *, not_before: dt.datetime | None = None) -> dt.datetime | None:
    """The moment a date typed in a form stands for: now for today (or no date), else the start
    of that day in UTC, and never before ``not_before`` on the same day (an acknowledgement the
    day of the filing)."""
    now = timezone.now()
    if day is None or day == now.astimezone(dt.UTC).date():
        moment = now
    else:
        moment = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    if not_before is not None and moment < not_before and day == not_before.date():
        moment = not_before
    return moment


class ReportFilterForm(forms.Form):
    state = forms.ChoiceField(choices=[("", "Any state"), *Report.State.choices], required=False)


class ReportSettingsForm(forms.Form):
    profile = forms.ChoiceField(
        label="Hotline profile",
        help_text="The form of every download: NCMEC's CyberTipline XML or HashHub's generic JSON.",
    )

    def __init__(self, *args: Any, profiles: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["profile"]
        assert isinstance(field, forms.ChoiceField)  # noqa: S101 - declared above
        field.choices = profiles


class ReportEditForm(forms.Form):
    incident_type = forms.ChoiceField(choices=Report.IncidentType.choices)
    uploader_ref = forms.CharField(
        label="Uploader reference",
        required=False,
        max_length=500,
        help_text="The uploader as your platform knows it (an account id). Stored encrypted; "
        "never in the audit log or a webhook.",
    )
    notes = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 4})
    )
    file_viewed_by_esp = forms.ChoiceField(
        label="Did your staff view the file?", choices=VIEWED_CHOICES, required=False
    )

    @classmethod
    def of(cls, report: Report, uploader_ref: str) -> ReportEditForm:
        return cls(
            initial={
                "incident_type": report.incident_type,
                "uploader_ref": uploader_ref,
                "notes": report.notes,
                "file_viewed_by_esp": _viewed_choice(report.file_viewed_by_esp),
            }
        )

    def changes(self) -> dict[str, Any]:
        """The cleaned fields as reports.services.report_update's keyword arguments."""
        data = self.cleaned_data
        return {
            "incident_type": data["incident_type"],
            "uploader_ref": data["uploader_ref"],
            "notes": data["notes"],
            "file_viewed_by_esp": VIEWED_VALUES[data["file_viewed_by_esp"]],
        }


class ReportFileForm(forms.Form):
    hotline_report_id = forms.CharField(
        label="The hotline's report id",
        max_length=100,
        help_text="e.g. the CyberTipline report number",
    )
    filed_at = forms.DateField(
        label="Filed on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Leave empty for today.",
    )

    def moment(self) -> dt.datetime | None:
        return day_moment(self.cleaned_data["filed_at"])


class ReportAcknowledgeForm(forms.Form):
    acknowledged_at = forms.DateField(
        label="Acknowledged on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Leave empty for today.",
    )

    def moment(self, report: Report) -> dt.datetime | None:
        return day_moment(self.cleaned_data["acknowledged_at"], not_before=report.filed_at)
