"""The permission a view needs, declared as data next to the view."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from hub.permissions import PERMISSIONS, role_has

View = Callable[..., HttpResponse]


def member_may(request: HttpRequest, permission: str) -> bool:
    """Whether the current member's role grants ``permission`` (False outside an organisation).

    For what a page shows only to some roles; access to a view is declared with
    :func:`org_permission`.
    """
    membership = getattr(request, "membership", None)
    return membership is not None and role_has(membership.role, permission)


def org_permission(
    permission: str, *, post: str | None = None, denied: str | None = None
) -> Callable[[View], View]:
    """Require the current member's role to grant ``permission`` (see hub.permissions).

    ``post`` is what a POST needs as well, for a page every member may see but fewer may submit
    (a form on it). ``denied`` is the refusal's message, instead of the one naming the role.
    Non-members never get here (the middleware answers 404); members without the role get 403.
    """
    for needed in (permission, post):
        if needed is not None and needed not in PERMISSIONS:
            raise ValueError(f"unknown permission {needed!r}")

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = getattr(request, "membership", None)
            if membership is None:
                raise Http404("No such organisation.")
            needs = [permission] + ([post] if post and request.method == "POST" else [])
            if not all(role_has(membership.role, needed) for needed in needs):
                raise PermissionDenied(denied or f"Your role ({membership.role}) may not do this.")
            return view(request, *args, **kwargs)

        wrapper.hashhub_permission = permission  # type: ignore[attr-defined]
        wrapper.hashhub_post_permission = post  # type: ignore[attr-defined]
        return wrapper

    return decorator


def staff_required(view: View) -> View:
    """Hub staff only. Others get the login page (anonymous) or 404 (logged in, not staff)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise Http404("Not found.")
        return view(request, *args, **kwargs)

    return wrapper
