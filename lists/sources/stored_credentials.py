"""Credentials staff store on a source, encrypted with the keys of HASHHUB_CREDENTIAL_KEYS.

Besides naming an environment variable (``password_env``), staff may store a credential on the
source's page. It is encrypted at once with ``cryptography``'s MultiFernet over the configured
keys (newest first: new tokens use it, older keys still decrypt; the key setup of
hub.lib.secretbox, which reports share), kept as a lists.models.SourceCredential, and decrypted
only by the runner, just before a run, for the adapter (lists.sources.adapters.base.Credentials
uses it in place of the variable). The value is
never shown back, logged or audited: pages show that it is set, when and by whom; the audit log
names the credential. ``rotatecredentials`` re-encrypts every stored credential with the newest
key, after which older keys can be dropped from the setting.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken, MultiFernet
from django.db import transaction
from django.utils import timezone

from hub.audit import Actor
from hub.errors import ServiceError
from hub.lib import secretbox
from lists.models import Source, SourceCredential
from lists.sources.adapters import adapter_class
from lists.sources.errors import SourceError
from lists.sources.guard import credentials_check
from lists.sources.services import audit_source

MAX_VALUE_CHARS = 4096


def _fernet() -> MultiFernet:
    """The keys of HASHHUB_CREDENTIAL_KEYS (hub.lib.secretbox, the hub's one key setup);
    SourceError when there are none or one is bad."""
    try:
        return secretbox.fernet()
    except secretbox.SecretBoxError as error:
        if error.code == "keys_missing":
            raise SourceError(
                "credential_keys_missing",
                "No key to encrypt source credentials with: set HASHHUB_CREDENTIAL_KEYS to a "
                "Fernet key (python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'), or name an environment variable "
                "instead.",
            ) from None
        raise SourceError(
            "credential_keys_invalid",
            "HASHHUB_CREDENTIAL_KEYS holds a key that is not a Fernet key (32 bytes in URL-safe "
            "base64); no credential can be stored or read until it is fixed.",
        ) from None


def _as_service_error(error: SourceError) -> ServiceError:
    return ServiceError(error.code, error.message)


def credential_names(source: Source) -> tuple[str, ...]:
    """The credentials a source of this kind may have stored (``username``, ``password``...)."""
    return adapter_class(source.kind).credential_names()


def credentials_of(source: Source) -> list[SourceCredential]:
    """The credentials stored on ``source`` (name, when, by whom; never decrypted here)."""
    return list(SourceCredential.objects.filter(source=source).order_by("name"))


@transaction.atomic
def credential_set(*, source: Source, name: str, value: str, actor: Actor) -> SourceCredential:
    """Store (or replace) the credential ``name`` of ``source``, encrypted. Audited by name.

    Refused (ServiceError): a name the source's kind does not use (``invalid_credential``), an
    empty or oversized value (``invalid_value``), a source whose URL is plain http to a host
    HASHHUB_SOURCE_ALLOWED_HOSTS does not name (``insecure_credentials``), and no usable key
    (``credential_keys_missing``/``credential_keys_invalid``). The value is never repeated.
    """
    allowed = credential_names(source)
    if name not in allowed:
        raise ServiceError(
            "invalid_credential",
            f"A {source.get_kind_display()} source stores only: {', '.join(allowed) or 'none'}.",
        )
    value = value.strip()
    if not value or len(value) > MAX_VALUE_CHARS:
        raise ServiceError("invalid_value", f"Give a value of 1 to {MAX_VALUE_CHARS:,} characters.")
    url = source.config.get("url")
    try:
        if isinstance(url, str) and url:
            credentials_check(url)
        token = _fernet().encrypt(value.encode()).decode()
    except SourceError as error:
        raise _as_service_error(error) from None
    Source.objects.select_for_update().filter(pk=source.pk).first()
    credential, created = SourceCredential.objects.update_or_create(
        source=source,
        name=name,
        defaults={"token": token, "set_at": timezone.now(), "set_by": actor.label[:200]},
    )
    audit_source(source, "source.credential_set", actor, credential=name, replaced=not created)
    return credential


@transaction.atomic
def credential_clear(*, source: Source, name: str, actor: Actor) -> None:
    """Delete the stored credential ``name`` of ``source``. Audited by name.

    ServiceError ``credential_not_set`` when there is none.
    """
    deleted, _ = SourceCredential.objects.filter(source=source, name=name).delete()
    if not deleted:
        raise ServiceError("credential_not_set", f"No {name} is stored on this source.")
    audit_source(source, "source.credential_cleared", actor, credential=name)


def credentials_decrypted(source: Source) -> dict[str, str]:
    """The stored credentials of ``source``, decrypted, by name: for the runner only.

    Raises SourceError ``credential_keys_missing``/``credential_keys_invalid``, or
    ``credential_unreadable`` when no configured key opens one (its key was dropped before
    ``rotatecredentials`` ran): store it again.
    """
    stored = credentials_of(source)
    if not stored:
        return {}
    fernet = _fernet()
    values = {}
    for credential in stored:
        try:
            values[credential.name] = fernet.decrypt(credential.token.encode()).decode()
        except InvalidToken:
            raise SourceError(
                "credential_unreadable",
                f"The stored {credential.name} cannot be decrypted with the keys in "
                "HASHHUB_CREDENTIAL_KEYS (was its key removed before rotatecredentials ran?); "
                "store it again on the source's page.",
            ) from None
    return values


def credentials_rotate(*, actor: Actor) -> tuple[int, list[str]]:
    """Re-encrypt every stored credential with the newest key. Audited per source, by name.

    Returns how many were re-encrypted, and "source: name" of those no configured key opens
    (left as they are). Each source's credentials change in a transaction of their own.
    """
    try:
        fernet = _fernet()
    except SourceError as error:
        raise _as_service_error(error) from None
    rotated = 0
    unreadable: list[str] = []
    for source in Source.objects.filter(stored_credentials__isnull=False).distinct():
        with transaction.atomic():
            names = []
            for credential in SourceCredential.objects.select_for_update().filter(source=source):
                try:
                    credential.token = fernet.rotate(credential.token.encode()).decode()
                except InvalidToken:
                    unreadable.append(f"{source.name}: {credential.name}")
                    continue
                credential.save(update_fields=["token"])
                names.append(credential.name)
            if names:
                rotated += len(names)
                audit_source(source, "source.credentials_rotated", actor, credentials=names)
    return rotated, unreadable
