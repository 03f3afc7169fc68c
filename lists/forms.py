"""Forms of the list pages. They check the shape of the input; the rules live in lists.services."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import forms

from hub.errors import ServiceError
from lists.hashtypes import PDQ_MIN_QUALITY, ComputedHash, all_signal_types
from lists.models import HashList
from lists.selectors import decode_cursor, hex_prefix_range
from lists.services import MAX_NOTE, MAX_REASON, EntryInput, normalise_labels

# A page of computed hashes holds one per type this hub can compute; a handful is plenty.
MAX_PICKED = 20
_SEPARATORS = re.compile(r"[\s,;|]+")


def type_choices(*, blank: str | None = None) -> list[tuple[str, str]]:
    """The registered signal types, in the registry's order (optionally after a blank choice)."""
    choices = [(t.name, t.label) for t in all_signal_types()]
    return [("", blank), *choices] if blank is not None else choices


def split_labels(text: str) -> tuple[str, ...]:
    """Labels as typed in one box: separated by commas, semicolons, bars or spaces."""
    return tuple(part for part in _SEPARATORS.split(text) if part)


class LabelsField(forms.CharField):
    """Labels in one text box, normalised as the services store them (A1 upper, tags lower)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 500)
        kwargs.setdefault("help_text", "A1, A2, B1, B2 or your own tags, separated by commas.")
        super().__init__(**kwargs)

    def clean(self, value: Any) -> tuple[str, ...]:
        text = super().clean(value)
        try:
            return tuple(normalise_labels(split_labels(text)))
        except ServiceError as error:
            raise forms.ValidationError(error.message, code=error.code) from None


class PrefixedForm(forms.Form):
    """A form whose field ids start with ``id_prefix``: the list page shows several at once."""

    id_prefix = "id"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)


class ListCreateForm(forms.Form):
    name = forms.CharField(max_length=120)
    category = forms.ChoiceField(choices=HashList.Category.choices)
    description = forms.CharField(
        max_length=MAX_NOTE, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class ListSettingsForm(PrefixedForm):
    id_prefix = "settings"

    name = forms.CharField(max_length=120)
    description = forms.CharField(
        max_length=MAX_NOTE, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class ListDeleteForm(PrefixedForm):
    id_prefix = "delete"

    reason = forms.CharField(
        max_length=MAX_REASON,
        required=False,
        help_text="Optional; kept with every removed entry.",
    )


class EntryAddForm(PrefixedForm):
    id_prefix = "add"

    type = forms.ChoiceField(choices=type_choices)
    value = forms.CharField(
        max_length=1000,
        widget=forms.TextInput(
            attrs={"class": "mono", "autocomplete": "off", "placeholder": "hex digits"}
        ),
    )
    labels = LabelsField(
        help_text="", widget=forms.TextInput(attrs={"placeholder": "A1, B2 or your tags"})
    )
    note = forms.CharField(
        max_length=MAX_NOTE,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "optional"}),
    )

    def entry(self) -> EntryInput:
        data = self.cleaned_data
        return EntryInput(data["type"], data["value"], data["labels"], data["note"])


class EntryRemoveForm(forms.Form):
    type = forms.ChoiceField(choices=type_choices)
    value = forms.CharField(max_length=1000)
    reason = forms.CharField(
        max_length=MAX_REASON, help_text="Why this hash leaves the list (kept with the entry)."
    )

    def entry(self) -> EntryInput:
        return EntryInput(self.cleaned_data["type"], self.cleaned_data["value"])


class EntryFilterForm(PrefixedForm):
    """The list page's query string: search by hash prefix, filter by type or label, a cursor."""

    id_prefix = "filter"

    # The query parameter is "prefix"; the metaclass moves fields off the class, so this does not
    # replace BaseForm.prefix (the form's own name prefix) at run time, whatever mypy thinks.
    prefix = forms.CharField(  # type: ignore[assignment]
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"class": "mono", "placeholder": "hex digits"}),
    )
    type = forms.ChoiceField(required=False, choices=lambda: type_choices(blank="Any type"))
    label = forms.CharField(
        required=False, max_length=40, widget=forms.TextInput(attrs={"placeholder": "A1 or a tag"})
    )
    cursor = forms.CharField(required=False, max_length=64)

    def clean_prefix(self) -> str:
        prefix: str = self.cleaned_data["prefix"].strip().lower()
        if prefix:
            _checked(hex_prefix_range, prefix)
        return prefix

    def clean_label(self) -> str:
        label: str = self.cleaned_data["label"].strip()
        return _checked(normalise_labels, [label])[0] if label else ""

    def clean_cursor(self) -> str:
        cursor: str = self.cleaned_data["cursor"]
        if cursor:
            _checked(decode_cursor, cursor)
        return cursor

    def filters(self) -> dict[str, str]:
        """The filters that are set, as query-string parameters (for links that keep them)."""
        keys = ("prefix", "type", "label")
        return {key: self.cleaned_data[key] for key in keys if self.cleaned_data.get(key)}


def _checked(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except ServiceError as error:
        raise forms.ValidationError(error.message, code=error.code) from None


class HashFileForm(forms.Form):
    file = forms.FileField(
        label="Hash file",
        help_text="UTF-8 text: CSV or TSV lines “type,value[,labels,note]”, or one value a line.",
    )
    default_type = forms.ChoiceField(
        required=False,
        label="Type of lines with only a value",
        choices=lambda: type_choices(blank="(every line names its type)"),
    )


class ImageForm(forms.Form):
    image = forms.FileField(
        help_text="Hashed in memory and discarded at once: the image is never stored.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/*"}),
    )


@dataclass(frozen=True)
class PickedHash:
    """One computed hash as the pick page shows it (and as its hidden fields carry it)."""

    type: str
    value: str
    quality: int | None = None

    @property
    def low_quality(self) -> bool:
        return self.quality is not None and self.quality < PDQ_MIN_QUALITY

    @property
    def pair(self) -> str:
        return f"{self.type}:{self.value}"

    @property
    def shown(self) -> str:
        """``type:value:quality``, the hidden field that lets the page be shown again."""
        return f"{self.pair}:{'' if self.quality is None else self.quality}"

    @classmethod
    def of(cls, computed: ComputedHash) -> PickedHash:
        return cls(computed.signal_type, computed.text, computed.quality)

    @classmethod
    def parse(cls, text: str) -> PickedHash:
        kind, _, rest = text.partition(":")
        value, _, quality = rest.partition(":")
        if not kind or not value or (quality and not quality.isdigit()):
            raise forms.ValidationError("A chosen hash is not of the form type:value.")
        return cls(kind, value, int(quality) if quality else None)


class HashPairsField(forms.Field):
    """Repeated ``type:value[:quality]`` fields (the computed hashes of an image)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[PickedHash]:
        items = [str(item) for item in value or ()]
        if len(items) > MAX_PICKED:
            raise forms.ValidationError(f"At most {MAX_PICKED} hashes at once.")
        return [PickedHash.parse(item[:1100]) for item in items]


class ImageHashesForm(forms.Form):
    """The pick page: every computed hash (``computed``), the chosen ones (``hash``) and labels."""

    computed = HashPairsField(required=False)
    hash = HashPairsField(error_messages={"required": "Choose at least one hash to add."})
    labels = LabelsField()
    note = forms.CharField(
        max_length=MAX_NOTE, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def entries(self) -> list[EntryInput]:
        data = self.cleaned_data
        # The quality computed for each hash, so that entry_add refuses a low-quality PDQ.
        quality = {h.pair: h.quality for h in data.get("computed") or ()}
        return [
            EntryInput(h.type, h.value, data["labels"], data["note"], quality.get(h.pair))
            for h in data["hash"]
        ]

    def shown(self) -> list[PickedHash]:
        """The hashes to show again when the form comes back with an error."""
        try:
            shown: list[PickedHash] = self.fields["computed"].clean(self._posted("computed"))
        except forms.ValidationError:
            return []
        return shown

    def chosen(self) -> set[str]:
        return set(self._posted("hash"))

    def _posted(self, name: str) -> list[str]:
        widget = self.fields[name].widget
        return list(widget.value_from_datadict(self.data, self.files, self.add_prefix(name)) or ())
