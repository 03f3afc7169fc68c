"""What counts as a credential in a source's settings, refused everywhere they are kept or shown.

A source's ``config`` holds plain settings and the *names* of environment variables that hold
credentials (keys ending in ``_env``); the credentials themselves never enter the config, a page
or a log (staff may also store one encrypted: lists.sources.stored_credentials). Only variables
whose name starts with ``settings.HASHHUB_SOURCE_ENV_PREFIX`` may be named, so that a source can
never be pointed at the hub's own secrets (DJANGO_SECRET_KEY, DATABASE_URL, ...) and send them to
its URL. :func:`credential_problems` finds a config that looks like it carries a credential or
names another variable (the source services refuse it, the forms and ``addsource`` say so
early), and :func:`config_for_display` is the only way a page or an audit event shows a config.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.conf import settings

ENV_SUFFIX = "_env"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
HIDDEN = "(hidden)"
NONE = "(none)"
# Words that make a config key (or a URL's query parameter) look like it holds a credential.
_SECRET_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "bearer",
        "cookie",
        "credential",
        "credentials",
        "login",
        "passphrase",
        "passwd",
        "password",
        "pwd",
        "secret",
        "signature",
        "token",
        "user",
        "username",
    }
)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


def env_prefix() -> str:
    """The prefix every environment variable a source names must start with."""
    return str(settings.HASHHUB_SOURCE_ENV_PREFIX)


def env_name_allowed(name: object) -> bool:
    """Whether a source may read the environment variable ``name``: a well-formed name that
    starts with HASHHUB_SOURCE_ENV_PREFIX (compared as written: environment names are
    case-sensitive)."""
    return isinstance(name, str) and bool(ENV_NAME.match(name)) and name.startswith(env_prefix())


def credential_name(key: str) -> str:
    """The credential a ``*_env`` key stands for, as stored credentials are named
    (``password_env`` -> ``password``)."""
    return key[: -len(ENV_SUFFIX)] if key.lower().endswith(ENV_SUFFIX) else key


def looks_secret(name: str) -> bool:
    """Whether a key or query parameter named ``name`` would hold a credential."""
    lowered = name.lower()
    if lowered.endswith(ENV_SUFFIX):
        return False
    parts = {part for part in _WORD_SPLIT.split(lowered) if part}
    return bool(parts & _SECRET_WORDS) or lowered.endswith("key") or lowered == "sig"


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every key of nested objects, and ("path[i]", "", item) of lists."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, str(key), item
            yield from _walk(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            where = f"{path}[{index}]"
            yield where, "", item
            yield from _walk(item, where)


def _url_problem(text: str) -> str:
    """Why a URL string would carry a credential ('' when it does not). Never quotes the value."""
    if "://" not in text:
        return ""
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return ""
    if parts.username or parts.password or "@" in parts.netloc:
        return "has a user name or password in it"
    secret_params = sorted({name for name, _ in parse_qsl(parts.query) if looks_secret(name)})
    if secret_params:
        return f"carries {', '.join(secret_params)} in its query string"
    return ""


def credential_problems(config: Mapping[str, Any]) -> list[str]:
    """Sentences naming each place ``config`` seems to hold a credential; empty when it is clean.

    Keys ending in ``_env`` must name an environment variable starting with
    HASHHUB_SOURCE_ENV_PREFIX; other keys that sound like a credential (password, token,
    api_key, ...) are refused, and so are URLs with a user name, password or token in them. The
    sentences name keys, never values.
    """
    problems = []
    for where, key, value in _walk(config):
        if key.lower().endswith(ENV_SUFFIX):
            if not isinstance(value, str) or not ENV_NAME.match(value):
                problems.append(
                    f"{where} must be the name of an environment variable "
                    "(letters, digits and underscores), not its value."
                )
            elif not env_name_allowed(value):
                # The name is not repeated: it may be a pasted secret that looks like one.
                problems.append(
                    f"{where} must name an environment variable starting with {env_prefix()}: "
                    "a source may read no other variable (never the hub's own settings)."
                )
        elif key and looks_secret(key):
            problems.append(
                f"{where} looks like a credential: give the name of an environment variable "
                f"that holds it as {key}{ENV_SUFFIX} instead."
            )
        elif isinstance(value, str) and (why := _url_problem(value)):
            problems.append(
                f"The URL in {where} {why}: give credentials as the name of an environment "
                "variable (…_env) instead."
            )
    return problems


@dataclass(frozen=True)
class ConfigRow:
    """One top-level setting as a page may show it."""

    key: str
    value: str
    env_name: bool = False  # the value is the name of an environment variable
    env_set: bool = False  # ... which this web process has (the value is never read out)
    env_refused: bool = False  # ... outside HASHHUB_SOURCE_ENV_PREFIX: never read, not shown
    hidden: bool = False


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def config_for_display(config: Mapping[str, Any]) -> list[ConfigRow]:
    """The rows of a config, with anything that looks like a credential replaced by (hidden)."""
    rows = []
    for key, value in sorted(config.items()):
        if key.lower().endswith(ENV_SUFFIX) and env_name_allowed(value):
            rows.append(ConfigRow(key, value, env_name=True, env_set=bool(os.environ.get(value))))
        elif key.lower().endswith(ENV_SUFFIX) and isinstance(value, str) and ENV_NAME.match(value):
            # Stored before the prefix rule: never read at fetch time, and not shown (it may be
            # a secret that looks like a name).
            rows.append(ConfigRow(key, HIDDEN, env_name=True, env_refused=True, hidden=True))
        elif looks_secret(key) or credential_problems({key: value}):
            rows.append(ConfigRow(key, HIDDEN, hidden=True))
        else:
            rows.append(ConfigRow(key, _shown(value)))
    return rows


def config_for_editing(config: Mapping[str, Any]) -> str:
    """The config as the edit box shows it: JSON, with credential-looking values hidden."""
    safe = {
        key: HIDDEN if (looks_secret(key) or credential_problems({key: value})) else value
        for key, value in config.items()
    }
    return json.dumps(safe, indent=2, sort_keys=True)


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The keys whose value differs, each with its old and new value as a page shows them
    (config_for_display: credential-looking values are "(hidden)"; a key that was not there is
    "(none)"). For the audit log: it names what changed, never a secret."""
    shown_old = {row.key: row.value for row in config_for_display(old)}
    shown_new = {row.key: row.value for row in config_for_display(new)}
    return {
        key: {"old": shown_old.get(key, NONE), "new": shown_new.get(key, NONE)}
        for key in sorted(set(old) | set(new))
        if key not in old or key not in new or old[key] != new[key]
    }
