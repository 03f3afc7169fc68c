"""Account-security events (sign-up, logins, failed logins, password and MFA changes).

They belong to a person rather than an organisation, so they are written with no organisation:
hub staff see them, and no organisation can read another's members' account history.

A failed password login names nobody: whether the address tried belongs to an account is not
the log's to tell, so it keeps a keyed hash of that address (repeated attempts on one address
share it; without the hub's secret key no one can tell which address it was), the address it
came from, and never the password.
"""

from __future__ import annotations

from typing import Any

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from django.dispatch import Signal
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from hub.audit import Actor, audit, client_ip
from hub.models import User, superuser_created


def _record(action: str) -> Any:
    def receiver(
        sender: object, request: Any = None, user: User | None = None, **kwargs: Any
    ) -> None:
        who = user or getattr(request, "user", None)
        if not isinstance(who, User):
            return
        metadata = {}
        authenticator = kwargs.get("authenticator")
        if authenticator is not None:
            metadata["type"] = str(authenticator.type)
        audit(
            actor=Actor(user=who, ip=client_ip(request) if request is not None else None),
            action=action,
            organization=None,
            target_type="user",
            target_id=str(who.pk),
            metadata=metadata,
        )

    return receiver


# The salt that makes the failed-login hash of an address differ from every other use of the
# secret key; changing it makes earlier and later hashes of one address unrelated.
_LOGIN_HASH_SALT = "hashhub.account.login_failed"


def login_identifier_hash(login: str) -> str:
    """The keyed hash a failed login records instead of the address (or name) that was tried."""
    return salted_hmac(_LOGIN_HASH_SALT, login.strip().lower(), algorithm="sha256").hexdigest()


def record_login_failed(request: HttpRequest | None, *, login: str) -> None:
    """A password login failed (called by hub.adapters.AccountAdapter.authentication_failed)."""
    audit(
        actor=Actor(system="login attempt", ip=client_ip(request) if request else None),
        action="account.login_failed",
        organization=None,
        metadata={"method": "password", "login_hash": login_identifier_hash(login)},
    )


def _mfa_failed(
    sender: object, request: Any = None, user: User | None = None, **kwargs: Any
) -> None:
    # The second factor was wrong: the password (or the session, on re-authentication) was
    # right, so the account is known and named.
    if not isinstance(user, User):
        return
    authenticator = kwargs.get("authenticator")
    audit(
        actor=Actor(user=user, ip=client_ip(request) if request is not None else None),
        action="account.mfa_failed",
        organization=None,
        target_type="user",
        target_id=str(user.pk),
        metadata={
            "type": str(authenticator.type) if authenticator is not None else "",
            "reauthentication": bool(kwargs.get("reauthentication", False)),
        },
    )


_RECEIVERS: list[tuple[Signal, str]] = [
    (account_signals.user_signed_up, "account.signed_up"),
    (account_signals.user_logged_in, "account.logged_in"),
    (account_signals.password_changed, "account.password_changed"),
    (account_signals.password_reset, "account.password_reset"),
    (account_signals.email_confirmed, "account.email_confirmed"),
    (mfa_signals.authenticator_added, "account.mfa_added"),
    (mfa_signals.authenticator_removed, "account.mfa_removed"),
    (mfa_signals.authenticator_reset, "account.mfa_reset"),
]
_CONNECTED: list[Any] = []


def connect() -> None:
    for signal, action in _RECEIVERS:
        receiver = _record(action)
        _CONNECTED.append(receiver)  # Signals hold weak references; keep ours alive.
        signal.connect(receiver, dispatch_uid=f"hashhub-audit-{action}")
    mfa_signals.authentication_failed.connect(
        _mfa_failed, dispatch_uid="hashhub-audit-account.mfa_failed"
    )
    superuser_created.connect(_superuser_staff, dispatch_uid="hashhub-superuser-staff")


def _superuser_staff(sender: object, user: User, staff: bool, **kwargs: Any) -> None:
    """Django's ``createsuperuser``: staff status through the one audited service."""
    from hub.management.base import cli_actor
    from hub.services import user_set_staff

    user_set_staff(user=user, staff=staff, actor=cli_actor())
