"""HASHHUB_LOG_FORMAT=json: one JSON object a line, with the request id; no hash or key, ever."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from hub.logging import JsonFormatter, RedactFilter, RequestIdMiddleware, redact

ROOT = Path(__file__).resolve().parents[2]


def api_key() -> str:
    return f"hh_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


SECRETS = {
    "md5": lambda: secrets.token_hex(16),
    "sha1": lambda: secrets.token_hex(20),
    "sha256": lambda: secrets.token_hex(32).upper(),
    "pdq": lambda: secrets.token_hex(32),
    "phash": lambda: secrets.token_hex(8),
    "photodna base64": lambda: base64.b64encode(secrets.token_bytes(144)).decode(),
    "photodna url-safe base64": lambda: base64.urlsafe_b64encode(secrets.token_bytes(144)).decode(),
    "photodna hex": lambda: secrets.token_hex(144),
    "api key": api_key,
    "webhook secret": lambda: "whsec_" + secrets.token_urlsafe(32),
}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """A logger whose handler is configured as hub.settings configures the console's."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactFilter())
    logger = logging.getLogger("hashhub.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_on_one_line(captured: io.StringIO) -> None:
    logging.getLogger("hashhub.test").warning("imported %d records\nfrom %s", 3, "the feed")
    [entry] = lines(captured)
    assert set(entry) == {"time", "level", "logger", "message"}
    assert entry["level"] == "WARNING" and entry["logger"] == "hashhub.test"
    assert entry["message"] == "imported 3 records\nfrom the feed"
    assert str(entry["time"]).endswith("+00:00")


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_hashes_and_keys_are_redacted_from_messages_and_tracebacks(
    kind: str, captured: io.StringIO
) -> None:
    value = SECRETS[kind]()
    logger = logging.getLogger("hashhub.test")
    logger.info("matched %s for the upload", value)
    logger.info(f"Authorization: Bearer {value}")
    try:
        raise ValueError(f"bad value {value}")
    except ValueError:
        logger.exception("failed on %r", value)
    text = captured.getvalue()
    assert value not in text
    assert value[:16] not in text and value[-16:] not in text
    assert "[redacted" in text
    assert len(lines(captured)) == 3
    assert "ValueError" in str(lines(captured)[2]["exception"])


def test_ordinary_words_ids_and_short_hex_are_kept() -> None:
    text = "list q3V9k2mX0aLp7cTz run 42 colour #deadbeef at /staff/sources/abcDEF123/runs/x/"
    assert redact(text) == text


def test_bearer_and_basic_credentials_are_redacted() -> None:
    assert redact("Authorization: Bearer abcdefgh.ijkl") == "Authorization: Bearer [redacted]"
    assert redact("authorization: basic dXNlcjpwYXNzd29yZA==") == "authorization: basic [redacted]"


def test_the_request_id_is_in_each_line_and_in_the_answer(captured: io.StringIO) -> None:
    def view(request: HttpRequest) -> HttpResponse:
        logging.getLogger("hashhub.test").info("answering")
        return HttpResponse("ok")

    middleware = RequestIdMiddleware(view)
    response = middleware(RequestFactory().get("/", headers={"X-Request-ID": "edge-42.a"}))
    assert response["X-Request-ID"] == "edge-42.a"
    fresh = middleware(RequestFactory().get("/", headers={"X-Request-ID": "bad id <script>"}))
    assert fresh["X-Request-ID"] not in ("", "bad id <script>")
    logging.getLogger("hashhub.test").info("outside a request")
    first, second, outside = lines(captured)
    assert first["request_id"] == "edge-42.a"
    assert second["request_id"] == fresh["X-Request-ID"]
    assert "request_id" not in outside


def test_the_hub_answers_with_a_request_id(db: None) -> None:
    response = Client().get("/healthz")
    assert len(response["X-Request-ID"]) >= 8


def test_the_setting_switches_the_console_to_json_lines(tmp_path: Path) -> None:
    """As a deployed process would start: hub.settings' LOGGING with HASHHUB_LOG_FORMAT=json."""
    key, pdq = api_key(), secrets.token_hex(32)
    code = (
        "import django, logging; django.setup()\n"
        f"logging.getLogger('lists.sources').warning('key %s hash %s', {key!r}, {pdq!r})\n"
    )
    env = {**os.environ, "HASHHUB_LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "hub.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [entry] = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert entry["logger"] == "lists.sources" and entry["level"] == "WARNING"
    assert entry["message"] == "key hh_[redacted-key] hash [redacted-hex]"
    assert key not in done.stderr and pdq not in done.stderr
