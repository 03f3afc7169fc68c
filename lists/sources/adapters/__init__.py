"""Upstream adapters, one module per format; each module names its class ``ADAPTER``."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lists.sources.adapters.base import Adapter

_MODULES = {
    "ncmec": "lists.sources.adapters.ncmec",
    "stopncii": "lists.sources.adapters.stopncii",
    "feed": "lists.sources.adapters.feed",
    "hashhub": "lists.sources.adapters.hashhub",
}


def adapter_class(kind: str) -> type[Adapter]:
    """The adapter of a source kind (lists.models.Source.Kind)."""
    if kind not in _MODULES:
        raise KeyError(kind)
    adapter: type[Adapter] = import_module(_MODULES[kind]).ADAPTER
    return adapter
