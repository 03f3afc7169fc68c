"""Secrets the hub keeps encrypted at rest, with the keys of HASHHUB_CREDENTIAL_KEYS.

One key setup for everything the hub must be able to read back but must not keep in clear:
credentials staff store on upstream sources (lists.sources.stored_credentials) and the uploader
reference of a report (reports.services). ``cryptography``'s MultiFernet over the configured
keys, newest first: new tokens use the first key, every key still decrypts, and
:func:`rotate` re-encrypts a token with the newest one (after which older keys can be dropped).

A missing or malformed key is a :class:`SecretBoxError` with a code (``keys_missing``,
``keys_invalid``, ``unreadable``) and a sentence naming the setting; callers turn it into their
own error type.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

SETTING = "HASHHUB_CREDENTIAL_KEYS"


class SecretBoxError(Exception):
    """No usable key, or a token no configured key opens."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def fernet() -> MultiFernet:
    """The keys of HASHHUB_CREDENTIAL_KEYS; SecretBoxError when there are none or one is bad."""
    keys = [str(key).strip() for key in settings.HASHHUB_CREDENTIAL_KEYS if str(key).strip()]
    if not keys:
        raise SecretBoxError(
            "keys_missing",
            f"No key to encrypt with: set {SETTING} to a Fernet key (python -c 'from "
            "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())').",
        )
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise SecretBoxError(
            "keys_invalid",
            f"{SETTING} holds a key that is not a Fernet key (32 bytes in URL-safe base64); "
            "nothing can be encrypted or read until it is fixed.",
        ) from None


def encrypt(text: str) -> str:
    """``text`` as a Fernet token (str), under the newest key."""
    return fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """The text of ``token``; SecretBoxError ``unreadable`` when no configured key opens it."""
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretBoxError(
            "unreadable",
            f"A stored secret cannot be decrypted with the keys in {SETTING} (was its key "
            "removed before the secrets were re-encrypted?).",
        ) from None


def rotate(token: str) -> str:
    """``token`` re-encrypted under the newest key; SecretBoxError ``unreadable`` if no key
    opens it."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretBoxError(
            "unreadable", f"A stored secret cannot be decrypted with the keys in {SETTING}."
        ) from None
