"""Opaque public identifiers: what leaves the hub is never a row number."""

from __future__ import annotations

import secrets


def new_public_id() -> str:
    """A random 16-character URL-safe id (96 bits), e.g. ``q3V9k2mX0aLp7cTz``."""
    return secrets.token_urlsafe(12)
