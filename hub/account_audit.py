"""Account-security events (sign-up, logins, password and MFA changes) in the audit log.

They belong to a person rather than an organisation, so they are written with no organisation:
hub staff see them, and no organisation can read another's members' account history.
"""

from __future__ import annotations

from typing import Any

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from django.dispatch import Signal

from hub.audit import Actor, audit, client_ip
from hub.models import User


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
