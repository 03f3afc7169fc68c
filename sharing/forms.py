"""Forms of the sharing pages. They check the shape of the input; the rules live in services."""

from __future__ import annotations

from django import forms

from lists.forms import EntryFilterForm
from lists.models import HashList

CATEGORY_FILTER_CHOICES = [("", "Every category"), *HashList.Category.choices]
# The staff reveal's reason is kept in the owner's audit log; a paragraph is plenty.
MAX_REVEAL_REASON = 2000


class CatalogueFilterForm(forms.Form):
    category = forms.ChoiceField(choices=CATEGORY_FILTER_CHOICES, required=False)


class SubscriptionForm(forms.Form):
    """Subscribe to (``subscribed=1``) or leave (``0``) one list or one category."""

    subscribed = forms.TypedChoiceField(
        choices=[("1", "Subscribe"), ("0", "Unsubscribe")], coerce=lambda value: value == "1"
    )
    next = forms.CharField(required=False, max_length=2000)


class CategorySubscriptionForm(SubscriptionForm):
    category = forms.ChoiceField(choices=HashList.Category.choices)


class PreferencesForm(forms.Form):
    ignore_disputed = forms.BooleanField(
        required=False,
        label="Ignore disputed community entries",
        help_text=(
            "Leave out of this organisation's matches the community entries that several "
            "member organisations dispute. Your own lists are never affected."
        ),
    )


class VisibilityForm(forms.Form):
    visibility = forms.ChoiceField(
        choices=HashList.Visibility.choices, widget=forms.RadioSelect, label="Visibility"
    )
    confirm = forms.BooleanField(
        label="I have read what the community will and will not see with this choice.",
        error_messages={"required": "Tick the box to confirm the change."},
    )


class ShareClassificationForm(forms.Form):
    """The owner's choice of whether subscribers see the labels of a list's entries."""

    share_classification = forms.BooleanField(
        required=False, label="Share the classification of this list's entries"
    )


class CommunityEntryFilterForm(EntryFilterForm):
    """The entry filters of a community list: no label filter, labels are the owner's own."""

    id_prefix = "filter"
    label = None  # type: ignore[assignment]


class StaffListLookupForm(forms.Form):
    list = forms.CharField(
        max_length=32,
        label="List id",
        help_text="The list's id as it appears in API results, exports or a list's address.",
        widget=forms.TextInput(attrs={"class": "mono"}),
    )

    def clean_list(self) -> str:
        return str(self.cleaned_data["list"]).strip()


class RevealForm(forms.Form):
    reason = forms.CharField(
        max_length=MAX_REVEAL_REASON,
        label="Why you need to know who owns this list",
        help_text="Kept with the audit event, which the owner sees in its audit log.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
