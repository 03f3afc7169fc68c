"""Production settings pass Django's deployment checks, and bad settings stop start-up clearly."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _production_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HASHHUB_"))}
    env.update(
        HASHHUB_MODE="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="hub.example.org",
        HASHHUB_SITE_URL="https://hub.example.org",
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://u@127.0.0.1:1/x"),
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:1/0"),
    )
    return env


def test_check_deploy_with_production_settings_reports_nothing() -> None:
    result = _run("check", "--deploy", "--fail-level", "DEBUG", env=_production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DJANGO_SECRET_KEY", None, "The environment variable DJANGO_SECRET_KEY must be set."),
        ("DJANGO_SECRET_KEY", "short", "DJANGO_SECRET_KEY must be at least 50 random characters."),
        ("DATABASE_URL", "sqlite:///db.sqlite3", "DATABASE_URL must be a PostgreSQL URL"),
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG must be a boolean"),
        ("HASHHUB_MODE", "staging", "HASHHUB_MODE must be one of"),
    ],
)
def test_bad_production_settings_stop_start_up_with_a_clear_message(
    variable: str, value: str | None, message: str
) -> None:
    env = _production_env()
    if value is None:
        del env[variable]
    else:
        env[variable] = value
    result = _run("check", env=env)
    assert result.returncode != 0
    assert message in result.stderr
