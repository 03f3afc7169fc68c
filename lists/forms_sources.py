"""Forms of the staff pages of upstream sources, and the check that keeps credentials out of config.

A source's ``config`` holds plain settings and the *names* of environment variables that hold
credentials (keys ending in ``_env``); the credentials themselves never enter the database, a
page or a log. :func:`credential_problems` refuses a config that looks like it carries one, and
:func:`config_for_display` is the only way a page shows a config.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django import forms

from hub.errors import ServiceError
from lists.models import HashList, Source
from lists.source_schedules import MAX_CRON_LENGTH, check_schedule

ENV_SUFFIX = "_env"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_CONFIG_CHARS = 20_000
MAX_INTERVAL_MINUTES = 7 * 24 * 60
HIDDEN = "(hidden)"
# Words that make a config key (or a URL's query parameter) look like it holds a credential.
_SECRET_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "bearer",
        "cookie",
        "credential",
        "credentials",
        "login",
        "passphrase",
        "passwd",
        "password",
        "pwd",
        "secret",
        "signature",
        "token",
        "user",
        "username",
    }
)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


def looks_secret(name: str) -> bool:
    """Whether a key or query parameter named ``name`` would hold a credential."""
    lowered = name.lower()
    if lowered.endswith(ENV_SUFFIX):
        return False
    parts = {part for part in _WORD_SPLIT.split(lowered) if part}
    return bool(parts & _SECRET_WORDS) or lowered.endswith("key") or lowered == "sig"


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every key of nested objects, and ("path[i]", "", item) of lists."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, str(key), item
            yield from _walk(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            where = f"{path}[{index}]"
            yield where, "", item
            yield from _walk(item, where)


def _url_problem(text: str) -> str:
    """Why a URL string would carry a credential ('' when it does not). Never quotes the value."""
    if "://" not in text:
        return ""
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return ""
    if parts.username or parts.password or "@" in parts.netloc:
        return "has a user name or password in it"
    secret_params = sorted({name for name, _ in parse_qsl(parts.query) if looks_secret(name)})
    if secret_params:
        return f"carries {', '.join(secret_params)} in its query string"
    return ""


def credential_problems(config: Mapping[str, Any]) -> list[str]:
    """Sentences naming each place ``config`` seems to hold a credential; empty when it is clean.

    Keys ending in ``_env`` must name an environment variable; other keys that sound like a
    credential (password, token, api_key, ...) are refused, and so are URLs with a user name,
    password or token in them. The sentences name keys, never values.
    """
    problems = []
    for where, key, value in _walk(config):
        if key.lower().endswith(ENV_SUFFIX):
            if not isinstance(value, str) or not ENV_NAME.match(value):
                problems.append(
                    f"{where} must be the name of an environment variable "
                    "(letters, digits and underscores), not its value."
                )
        elif key and looks_secret(key):
            problems.append(
                f"{where} looks like a credential: give the name of an environment variable "
                f"that holds it as {key}{ENV_SUFFIX} instead."
            )
        elif isinstance(value, str) and (why := _url_problem(value)):
            problems.append(
                f"The URL in {where} {why}: give credentials as the name of an environment "
                "variable (…_env) instead."
            )
    return problems


@dataclass(frozen=True)
class ConfigRow:
    """One top-level setting as a page may show it."""

    key: str
    value: str
    env_name: bool = False  # the value is the name of an environment variable
    env_set: bool = False  # ... which this web process has (the value is never read out)
    hidden: bool = False


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def config_for_display(config: Mapping[str, Any]) -> list[ConfigRow]:
    """The rows of a config, with anything that looks like a credential replaced by (hidden)."""
    rows = []
    for key, value in sorted(config.items()):
        if key.lower().endswith(ENV_SUFFIX) and isinstance(value, str) and ENV_NAME.match(value):
            rows.append(ConfigRow(key, value, env_name=True, env_set=bool(os.environ.get(value))))
        elif looks_secret(key) or credential_problems({key: value}):
            rows.append(ConfigRow(key, HIDDEN, hidden=True))
        else:
            rows.append(ConfigRow(key, _shown(value)))
    return rows


def config_for_editing(config: Mapping[str, Any]) -> str:
    """The config as the edit box shows it: JSON, with credential-looking values hidden."""
    safe = {
        key: HIDDEN if (looks_secret(key) or credential_problems({key: value})) else value
        for key, value in config.items()
    }
    return json.dumps(safe, indent=2, sort_keys=True)


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
            'environment variables, in keys ending in _env (e.g. "password_env": '
            '"NCMEC_PASSWORD"); never the credential itself.',
        )
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> dict[str, Any]:  # type: ignore[override]
        text = super().to_python(value) or ""
        if not text.strip():
            return {}
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                f"This is not valid JSON (line {error.lineno}, column {error.colno}).",
                code="bad_json",
            ) from None
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
    """When beat fetches the source: an interval or a cron schedule (lists.source_schedules)."""

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
    field_order = (
        "name",
        "kind",
        "default_category",
        "access",
        "interval_minutes",
        "cron",
        "description",
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
    field_order = (
        "enabled",
        "default_category",
        "interval_minutes",
        "cron",
        "description",
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
