"""The only place django-allauth is customised (STYLE.md: through its adapters, never its views)."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from django.conf import settings
from django.http import HttpRequest

from hub.lib.env import env_bool


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # A hub operator may close self-service sign-up and rely on invitations alone.
        return env_bool("HASHHUB_SIGNUP_OPEN", True)

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        return "/"

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        context.setdefault("site_url", settings.SITE_URL)
        super().send_mail(template_prefix, email, context)


class MFAAdapter(DefaultMFAAdapter):
    def get_totp_issuer(self) -> str:
        return "HashHub"
