from __future__ import annotations

from typing import Any

from django import forms

from hub.models import ApiKey
from hub.permissions import Role
from hub.quotas import MAX_QUOTA, QUOTA_LABELS, QUOTA_NAMES, Quotas
from hub.services import MAX_API_KEY_DAYS


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=120, label="Organisation name")
    slug = forms.SlugField(
        max_length=60, required=False, label="Short name",
        help_text="Used in addresses: letters, digits and hyphens. Empty: derived from the name.",
    )  # fmt: skip


class OrganizationSettingsForm(forms.Form):
    name = forms.CharField(max_length=120, label="Organisation name")
    require_mfa = forms.BooleanField(
        required=False,
        label="Require two-factor authentication for every member",
        help_text="Members without it are sent to set it up before they can see this organisation.",
    )


class InvitationForm(forms.Form):
    email = forms.EmailField(label="E-mail address")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANALYST)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=80, label="Key name", help_text="e.g. “upload pipeline (prod)”"
    )
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.MATCH],
        help_text="match: match hashes and images · lists:read: read the entries of lists · "
        "lists:write: add/remove hashes · lists:admin: visibility and subscriptions · "
        "export: the delta feed · review: read and review detections.",
    )
    expires_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_API_KEY_DAYS,
        label="Expires after (days)",
        help_text="Empty: the key never expires. A rotated key keeps the same expiry.",
    )


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, max_length=64)
    actor = forms.CharField(required=False, max_length=200)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:  # type: ignore[operator, unused-ignore]
            raise forms.ValidationError("“From” must not be after “until”.", code="invalid_range")
        return data


class OrganizationQuotaForm(forms.Form):
    """Hub staff's overrides of one organisation's quotas: an empty field takes the default."""

    def __init__(self, *args: Any, defaults: Quotas, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in QUOTA_NAMES:
            self.fields[name] = forms.IntegerField(
                required=False,
                min_value=0,
                max_value=MAX_QUOTA,
                label=QUOTA_LABELS[name],
                help_text=f"Empty: the default ({defaults.limit(name):,}).",
            )
