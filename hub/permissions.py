"""Roles and the one table that says what each role may do in its organisation.

Views and API views declare the permission they need as data (``permission = "members.manage"``);
this module is the only place that maps permissions to roles.
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    ANALYST = "analyst", "Analyst"
    VIEWER = "viewer", "Viewer"


_EVERYONE = frozenset(Role)
_ANALYST_UP = frozenset({Role.OWNER, Role.ADMIN, Role.ANALYST})
_ADMIN_UP = frozenset({Role.OWNER, Role.ADMIN})

PERMISSIONS: dict[str, frozenset[Role]] = {
    "org.read": _EVERYONE,
    "lists.edit": _ANALYST_UP,
    "detections.review": _ANALYST_UP,
    # Reports carry the platform's references and the uploader's: analysts up, never viewers.
    "reports.read": _ANALYST_UP,
    "reports.write": _ANALYST_UP,
    "reports.settings": _ADMIN_UP,
    "members.manage": _ADMIN_UP,
    "keys.manage": _ADMIN_UP,
    "webhooks.manage": _ADMIN_UP,
    "audit.read": _ADMIN_UP,
    "sharing.manage": _ADMIN_UP,
    "org.settings": frozenset({Role.OWNER}),
}

# Only owners may make or unmake owners, so an admin can never lock the owners out.
ROLES_GRANTABLE_BY: dict[Role, frozenset[Role]] = {
    Role.OWNER: frozenset(Role),
    Role.ADMIN: frozenset({Role.ADMIN, Role.ANALYST, Role.VIEWER}),
    Role.ANALYST: frozenset(),
    Role.VIEWER: frozenset(),
}


def role_has(role: str, permission: str) -> bool:
    """Whether ``role`` grants ``permission``; an unknown permission is a programming error."""
    return Role(role) in PERMISSIONS[permission]
