"""The only place django-allauth is customised (STYLE.md: through its adapters, never its views)."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from hub.account_audit import record_login_failed
from hub.lib.client_ip import client_ip
from hub.lib.env import env_bool


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # A hub operator may close self-service sign-up and rely on invitations alone.
        return env_bool("HASHHUB_SIGNUP_OPEN", True)

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        return "/"

    def get_client_ip(self, request: HttpRequest) -> str:
        # The address allauth's per-IP rate limits count: the client behind a trusted proxy
        # (HASHHUB_TRUSTED_PROXIES), not the proxy, so one client's failures lock out nobody else.
        ip = client_ip(request)
        if ip is None:
            raise PermissionDenied("Unable to determine the client's IP address.")
        return ip

    def authentication_failed(self, request: HttpRequest, **credentials: Any) -> None:
        # A failed password login is audited by a keyed hash of the address tried and the
        # client's address; the credentials also hold the password, which goes nowhere.
        login = credentials.get("email") or credentials.get("username") or ""
        record_login_failed(request, login=str(login))
        super().authentication_failed(request, **credentials)

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        context.setdefault("site_url", settings.SITE_URL)
        super().send_mail(template_prefix, email, context)


class MFAAdapter(DefaultMFAAdapter):
    def get_totp_issuer(self) -> str:
        return "HashHub"
