"""Who did something, and the one function that writes the append-only audit log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django_scopes import scopes_disabled

from hub.lib.client_ip import client_ip as resolve_client_ip
from hub.models import ApiKey, AuditEvent, Organization, User
from hub.retention import audit_metadata

if TYPE_CHECKING:
    from django.http import HttpRequest


@dataclass(frozen=True)
class Actor:
    """The user, API key or system process on whose behalf a service acts, and from where."""

    user: User | None = None
    api_key: ApiKey | None = None
    system: str | None = None
    ip: str | None = None

    @property
    def actor_type(self) -> str:
        if self.user is not None:
            return AuditEvent.ActorType.USER
        if self.api_key is not None:
            return AuditEvent.ActorType.API_KEY
        return AuditEvent.ActorType.SYSTEM

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.email
        if self.api_key is not None:
            return f"API key {self.api_key.name} ({self.api_key.prefix})"
        return self.system or "system"

    @classmethod
    def from_request(cls, request: HttpRequest) -> Actor:
        api_key = getattr(request, "auth", None)
        user = (
            request.user
            if getattr(request, "user", None) and request.user.is_authenticated
            else None
        )
        return cls(
            user=user if isinstance(user, User) else None,
            api_key=api_key if isinstance(api_key, ApiKey) else None,
            ip=client_ip(request),
        )


SYSTEM = Actor(system="system")


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as hub.lib.client_ip resolves it behind HASHHUB_TRUSTED_PROXIES."""
    return resolve_client_ip(request)


def audit(
    *,
    actor: Actor,
    action: str,
    organization: Organization | None,
    target_type: str = "",
    target_id: str = "",
    metadata: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event. Call it in the same transaction as the change it records.

    The metadata passes hub.retention's rules: a ``content_ref`` becomes its keyed digest, and
    personal data (an uploader reference) is refused."""
    with scopes_disabled():
        return AuditEvent.objects.create(
            organization=organization,
            actor_type=actor.actor_type,
            actor_user=actor.user,
            actor_api_key=actor.api_key,
            actor_label=actor.label,
            action=action,
            target_type=target_type,
            target_id=target_id,
            metadata=audit_metadata(metadata or {}),
            ip=actor.ip,
        )
