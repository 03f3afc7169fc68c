"""Upstream adapters, one module per format; each module names its class ``ADAPTER``."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lists.importers.base import Adapter

_MODULES = {
    "ncmec": "lists.importers.ncmec",
    "stopncii": "lists.importers.stopncii",
    "feed": "lists.importers.feed",
    "hashhub": "lists.importers.hashhub",
}


def adapter_class(kind: str) -> type[Adapter]:
    """The adapter of a source kind (lists.models.Source.Kind)."""
    if kind not in _MODULES:
        raise KeyError(kind)
    adapter: type[Adapter] = import_module(_MODULES[kind]).ADAPTER
    return adapter
