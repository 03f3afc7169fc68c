from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from hub.permissions import PERMISSIONS
from hub.selectors import memberships_of


def organization(request: HttpRequest) -> dict[str, Any]:
    """The current organisation, the user's others (for the switcher) and what the role may do."""
    membership = getattr(request, "membership", None)
    user = getattr(request, "user", None)
    context: dict[str, Any] = {
        "current_org": getattr(request, "organization", None),
        "current_membership": membership,
        "can": {},
        "my_memberships": [],
    }
    if user is not None and user.is_authenticated:
        context["my_memberships"] = list(memberships_of(user=user))
    if membership is not None:
        context["can"] = {
            name.replace(".", "_"): membership.role in roles for name, roles in PERMISSIONS.items()
        }
    return context
