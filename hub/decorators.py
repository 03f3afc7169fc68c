"""The permission a view needs, declared as data next to the view."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, overload
from urllib.parse import urlencode, urlsplit

from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.account.authentication import get_authentication_records
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

from hub.permissions import PERMISSIONS, role_has
from hub.selectors import user_has_mfa

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


# What proves it is the user, for a fresh login or a re-authentication: the password or a second
# factor. Never an e-mailed code ("code"), which whoever reads the mailbox could use.
FRESH_METHODS = frozenset({"password", "mfa"})
SECOND_FACTOR = frozenset({"mfa"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def authenticated_within(request: HttpRequest, *, minutes: int, methods: frozenset[str]) -> bool:
    """Whether the user logged in or re-authenticated with one of ``methods`` in the last
    ``minutes`` minutes (allauth's record of this session's authentications)."""
    if not request.user.is_authenticated:
        return False
    times = [
        record["at"]
        for record in get_authentication_records(request, request.user)
        if record.get("method") in methods and isinstance(record.get("at"), int | float)
    ]
    return bool(times) and time.time() - max(times) < minutes * 60


def _back_to(request: HttpRequest, fallback: str) -> str:
    """Where to come back after re-authenticating: this page, or for a POST (which is not
    replayed) the page its form was on."""
    if request.method in SAFE_METHODS and not getattr(request, "htmx", False):
        return request.get_full_path()
    # A form's page (Referer), or the page an htmx request was made from; both only on this host.
    came_from = request.headers.get("HX-Current-URL") or request.headers.get("Referer") or ""
    if came_from and url_has_allowed_host_and_scheme(
        came_from, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(came_from)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return fallback


def _reauthenticate(
    request: HttpRequest, *, second_factor: bool, message: str, fallback: str
) -> HttpResponse:
    """Send the user into allauth's re-authentication, coming back afterwards.

    allauth's own decorator would keep a POST in the session and replay it after the user
    re-authenticates, by calling the view directly: the replay would skip this project's
    middleware (the organisation, its tenant scope, CSRF), so nothing is replayed here. The user
    comes back to the page and does the action again, now within the window.
    """
    methods = [
        method
        for method in get_account_adapter(request).get_reauthentication_methods(request.user)
        if method["id"] != "reauthenticate_by_code"
        and (not second_factor or method["id"].startswith("mfa_reauthenticate"))
    ]
    if not methods:
        raise PermissionDenied(
            "Your account has no password or second factor to confirm it is you."
        )
    messages.info(request, message)
    query = urlencode({REDIRECT_FIELD_NAME: _back_to(request, fallback)})
    url = f"{methods[0]['url']}?{query}"
    if getattr(request, "htmx", False):
        # An htmx request would swap the re-authentication page into a fragment: load it whole.
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


def _reauthentication_message(request: HttpRequest, *, proof: str) -> str:
    if request.method in SAFE_METHODS and not getattr(request, "htmx", False):
        return f"Confirm it is you ({proof}) to continue."
    return f"Confirm it is you ({proof}), then do that again: nothing was changed."


@overload
def reauthentication_required(view: View) -> View: ...


@overload
def reauthentication_required(
    *, when: Callable[[HttpRequest], bool] | None = None
) -> Callable[[View], View]: ...


def reauthentication_required(
    view: View | None = None, *, when: Callable[[HttpRequest], bool] | None = None
) -> View | Callable[[View], View]:
    """A sensitive action: its POST (any unsafe method) needs a login or re-authentication, by
    password or second factor, within ``HASHHUB_REAUTH_MINUTES``; otherwise the member is sent to
    re-authenticate and the action is not done. GET shows the page without asking.

    ``when`` narrows it to the requests for which it returns True (turning a setting off, say).
    Put it below :func:`org_permission`, so that whoever may not act at all is refused first.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            needed = request.method not in SAFE_METHODS and (when is None or when(request))
            if needed and not authenticated_within(
                request, minutes=settings.HASHHUB_REAUTH_MINUTES, methods=FRESH_METHODS
            ):
                return _reauthenticate(
                    request,
                    second_factor=False,
                    message=_reauthentication_message(
                        request, proof="your password or a two-factor code"
                    ),
                    fallback="/",
                )
            return view(request, *args, **kwargs)

        # Read by the permission table (tests/test_permissions.py): every such view has a row.
        wrapper.hashhub_reauthentication = "when" if when else "always"  # type: ignore[attr-defined]
        return wrapper

    return decorator(view) if view is not None else decorator


def staff_required(view: View) -> View:
    """Hub staff only. Others get the login page (anonymous) or 404 (logged in, not staff).

    Staff also need two-factor authentication set up (``HASHHUB_STAFF_REQUIRE_MFA``; without it
    they are sent to set it up) and a login or re-authentication within
    ``HASHHUB_STAFF_REAUTH_MINUTES`` (with the second factor when it is required); otherwise they
    are sent to re-authenticate and come back to the page, and a POST is not acted on.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise Http404("Not found.")
        require_mfa = settings.HASHHUB_STAFF_REQUIRE_MFA
        if require_mfa and not user_has_mfa(request.user):
            messages.warning(request, "Hub staff pages need two-factor authentication: set it up.")
            return redirect("mfa_required")
        if not authenticated_within(
            request,
            minutes=settings.HASHHUB_STAFF_REAUTH_MINUTES,
            methods=SECOND_FACTOR if require_mfa else FRESH_METHODS,
        ):
            return _reauthenticate(
                request,
                second_factor=require_mfa,
                message=_reauthentication_message(
                    request,
                    proof="a two-factor code: staff pages ask for it again every "
                    f"{settings.HASHHUB_STAFF_REAUTH_MINUTES} minutes"
                    if require_mfa
                    else "your password",
                ),
                fallback=reverse("staff_organizations"),
            )
        return view(request, *args, **kwargs)

    wrapper.hashhub_staff = True  # type: ignore[attr-defined]
    return wrapper
