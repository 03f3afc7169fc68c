"""Read-your-writes across processes: a change made through one process is matched by the very
next request served by another (DESIGN.md, "The match path"). Two real processes: this test's
own (Django's test client) and a gunicorn server on the same test database."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from hub.models import Organization
from tests.matching.test_match_api import flip, own_list, random_pdq

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def other_process(transactional_db: None) -> Iterator[str]:
    """A gunicorn process (one sync worker) serving the test database; yields its base URL."""
    db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "hub.wsgi", "--workers", "1",
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=Path(__file__).resolve().parents[2], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310
                break
        except OSError:
            time.sleep(0.2)
    if server.poll() is not None:
        pytest.fail(f"gunicorn did not start: {server.communicate()[0]}")
    yield base
    server.terminate()
    server.communicate(timeout=30)


def _call(base: str, key: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(  # noqa: S310 - our own server on 127.0.0.1
        base + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def test_a_change_through_one_process_is_matched_by_the_next_request_of_another(
    other_process: str, api_a: Client, key_a: Any, org_a: Organization
) -> None:
    secret = key_a[1]
    csam = own_list(org_a).public_id
    entries = f"/api/v1/lists/{csam}/entries"
    first, second = random_pdq(), random_pdq()
    probe = [{"type": "pdq", "value": flip(first, 4)}, {"type": "pdq", "value": flip(second, 4)}]

    # Both processes build their index first, so what follows goes through the delta path.
    assert [
        r["matches"]
        for r in _call(other_process, secret, "/api/v1/match", {"hashes": probe})["results"]
    ] == [[], []]
    assert [
        r["matches"]
        for r in api_a.post(
            "/api/v1/match", {"hashes": probe}, content_type="application/json"
        ).json()["results"]
    ] == [[], []]

    # Added here, matched there.
    response = api_a.post(
        entries, {"entries": [{"type": "pdq", "value": first}]}, content_type="application/json"
    )
    assert response.json()["added"] == 1
    there = _call(other_process, secret, "/api/v1/match", {"hashes": probe})["results"]
    assert [len(r["matches"]) for r in there] == [1, 0]

    # Added there, matched here.
    assert (
        _call(other_process, secret, entries, {"entries": [{"type": "pdq", "value": second}]})[
            "added"
        ]
        == 1
    )
    here = api_a.post("/api/v1/match", {"hashes": probe}, content_type="application/json")
    assert [len(r["matches"]) for r in here.json()["results"]] == [1, 1]

    # Removed here, gone there on the next request.
    api_a.post(
        f"{entries}/remove",
        {"entries": [{"type": "pdq", "value": first}]},
        content_type="application/json",
    )
    there = _call(other_process, secret, "/api/v1/match", {"hashes": probe})["results"]
    assert [len(r["matches"]) for r in there] == [0, 1]
