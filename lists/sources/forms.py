"""Forms of the staff pages of upstream sources.

A config box is refused when it seems to hold a credential (lists.sources.credentials), and
emptied, so that a pasted secret is not sent back in the page that refuses it. A stored
credential's value is write-only: its field never renders a value, not even after an error.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from hub.errors import ServiceError
from hub.lib.jsonsafe import JSONLimitError, loads_bounded
from lists.models import HashList, Source
from lists.sources.credentials import config_for_editing, credential_problems
from lists.sources.schedules import MAX_CRON_LENGTH, check_schedule

MAX_CONFIG_CHARS = 20_000
# A config nests two levels (hash_fields, columns); the bound keeps the decoder from recursing.
MAX_CONFIG_DEPTH = 8
MAX_CREDENTIAL_CHARS = 4096
MAX_INTERVAL_MINUTES = 7 * 24 * 60
MAX_VERIFICATION = 2000


def config_loads(text: str) -> Any:
    """A source's config as typed by staff (here or in ``addsource``), decoded with bounds.

    Raises json.JSONDecodeError for what is not JSON and hub.lib.jsonsafe.JSONLimitError for
    JSON nested over MAX_CONFIG_DEPTH, a number that is too long or not finite, or a NUL
    (which the config's jsonb column cannot store: a 500 on saving, before).
    """
    return loads_bounded(
        text, max_depth=MAX_CONFIG_DEPTH, max_bytes=4 * MAX_CONFIG_CHARS, allow_nul=False
    )


class ConfigField(forms.CharField):
    """A JSON object in a text box, refused when it seems to hold a credential.

    A refused box is emptied (``credential_refused`` is set on the form by ``clean_config``),
    so that a pasted secret is not sent back in the page that refuses it.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", MAX_CONFIG_CHARS)
        kwargs.setdefault(
            "widget", forms.Textarea(attrs={"rows": 8, "class": "mono", "spellcheck": "false"})
        )
        kwargs.setdefault(
            "help_text",
            "A JSON object of the adapter's settings. Credentials only as the names of "
            "environment variables starting with HASHHUB_SOURCE_, in keys ending in _env (e.g. "
            '"password_env": "HASHHUB_SOURCE_NCMEC_PASSWORD"), or stored on the source\'s page; '
            "never the credential itself.",
        )
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> dict[str, Any]:  # type: ignore[override]
        text = super().to_python(value) or ""
        if not text.strip():
            return {}
        try:
            parsed = config_loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                f"This is not valid JSON (line {error.lineno}, column {error.colno}).",
                code="bad_json",
            ) from None
        except JSONLimitError as error:
            raise forms.ValidationError(error.message, code="bad_json") from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError('Give a JSON object: {"key": value, …}.', code="bad_json")
        return parsed


class SourceConfigFormMixin(forms.Form):
    config = ConfigField()
    credential_refused = False

    def clean_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.cleaned_data["config"]
        problems = credential_problems(config)
        if problems:
            self.credential_refused = True
            # Do not echo what was typed: it may be the very secret we refuse to keep.
            data = self.data.copy()  # type: ignore[attr-defined]  # a QueryDict
            data[self.add_prefix("config")] = ""
            self.data = data
            raise forms.ValidationError(
                [
                    forms.ValidationError(problem, code="credential_in_config")
                    for problem in problems
                ]
                + [forms.ValidationError("The configuration was not kept.", code="not_kept")]
            )
        return config


class SourceScheduleFormMixin(forms.Form):
    """When beat fetches the source: an interval or a cron schedule (lists.sources.schedules)."""

    interval_minutes = forms.IntegerField(
        min_value=0,
        max_value=MAX_INTERVAL_MINUTES,
        initial=0,
        label="Fetch every (minutes)",
        help_text="0 and no cron schedule: only when someone runs it.",
    )
    cron = forms.CharField(
        max_length=MAX_CRON_LENGTH,
        required=False,
        label="Or on a cron schedule (UTC)",
        help_text="Five fields: minute hour day-of-month month day-of-week, e.g. 0 2 * * *.",
    )

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if "interval_minutes" in data and "cron" in data:
            try:
                data["cron"] = check_schedule(data["interval_minutes"], data["cron"])
            except ServiceError as error:
                field = "interval_minutes" if error.code == "two_schedules" else "cron"
                self.add_error(field, forms.ValidationError(error.message, code=error.code))
        return data


def verification_field() -> forms.CharField:
    """How the source verifies its entries: members read it on the source's list page and with
    every match and export item of its lists, so it is written for them."""
    return forms.CharField(
        max_length=MAX_VERIFICATION,
        required=False,
        label="How entries are verified",
        help_text="Shown to members with the source's list and with each of its matches, e.g. "
        "“Each hash confirmed by two trained analysts; classification A1 to B2.”",
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class SourceCreateForm(SourceConfigFormMixin, SourceScheduleFormMixin):
    name = forms.CharField(max_length=120)
    kind = forms.ChoiceField(choices=Source.Kind.choices)
    default_category = forms.ChoiceField(
        choices=HashList.Category.choices,
        label="Default category",
        help_text="For records that do not say whether they are CSAM or SE.",
    )
    access = forms.ChoiceField(
        choices=Source.Access.choices,
        initial=Source.Access.GRANTED,
        help_text="With “only organisations granted access”, grant them on the source's page.",
    )
    description = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    verification = verification_field()
    field_order = (
        "name",
        "kind",
        "default_category",
        "access",
        "interval_minutes",
        "cron",
        "description",
        "verification",
        "config",
    )


class SourceSettingsForm(SourceConfigFormMixin, SourceScheduleFormMixin):
    enabled = forms.BooleanField(required=False, help_text="A disabled source is never fetched.")
    description = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    default_category = forms.ChoiceField(
        choices=HashList.Category.choices,
        label="Default category",
        help_text="For records that do not say whether they are CSAM or SE.",
    )
    verification = verification_field()
    field_order = (
        "enabled",
        "default_category",
        "interval_minutes",
        "cron",
        "description",
        "verification",
        "config",
    )

    @classmethod
    def for_source(cls, source: Source) -> SourceSettingsForm:
        return cls(
            initial={
                "enabled": source.enabled,
                "default_category": source.default_category,
                "interval_minutes": source.interval_minutes,
                "cron": source.cron,
                "description": source.description,
                "verification": source.verification,
                "config": config_for_editing(source.config),
            },
            auto_id="settings_%s",
        )

    def changes(self, source: Source) -> dict[str, Any]:
        """Only what differs from the source, so the audit event names real changes."""
        data = self.cleaned_data
        return {
            field: data[field]
            for field in self.field_order
            if data[field] != getattr(source, field)
        }


class SourceCredentialForm(forms.Form):
    """Store or clear one credential of a source (lists.sources.stored_credentials)."""

    name = forms.ChoiceField(label="Credential")
    value = forms.CharField(
        required=False,
        max_length=MAX_CREDENTIAL_CHARS,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Encrypted at once and never shown again; leave empty to clear it.",
    )
    clear = forms.BooleanField(required=False, label="Clear the stored value")

    def __init__(self, *args: Any, names: tuple[str, ...], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "credential_%s")
        super().__init__(*args, **kwargs)
        self.fields["name"].choices = [(name, name) for name in names]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if not data.get("clear") and not data.get("value"):
            self.add_error("value", "Type the value to store, or tick “Clear the stored value”.")
        if data.get("clear") and data.get("value"):
            self.add_error("clear", "Either store a value or clear it, not both.")
        return data
