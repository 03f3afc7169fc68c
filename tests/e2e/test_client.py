"""A platform uses the installed ``hashhub`` command against a hub started as `make run` does.

Lima Media (made with the documented commands) hashes a synthetic picture with the command, adds
its hashes to its CSAM list from a file, and matches the picture: the match makes
``--fail-on-match`` exit non-zero. Then it keeps a local copy of the export and matches the same
picture offline. The command runs from a directory of its own, with only the variables the README
names (no Django settings, no path to the code), the key in the environment or a key file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import COMMAND_SECONDS, Api, RunningHub, synthetic_png

pytestmark = pytest.mark.e2e

HASHHUB = Path(sys.executable).parent / "hashhub"
SCOPES = "match,lists:read,lists:write,export"


@pytest.fixture(scope="module")
def lima(hub: RunningHub) -> Iterator[tuple[Api, str]]:
    hub.manage("createorg", "--name", "Lima Media", "--slug", "client-lima", "--approve")
    key = hub.manage("createapikey", "--org", "client-lima", "--name", "cli", "--scopes", SCOPES)
    api = hub.api(key.stdout.strip())
    yield api, key.stdout.strip()
    api.close()


def hashhub(
    hub: RunningHub, key: str, cwd: Path, *args: str, key_in_env: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "HASHHUB_URL": hub.url}
    if key_in_env:
        env["HASHHUB_API_KEY"] = key
    return subprocess.run(
        [str(HASHHUB), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=COMMAND_SECONDS, check=False,
    )  # fmt: skip


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_platform_adds_matches_and_matches_offline_with_the_command(
    hub: RunningHub, lima: tuple[Api, str], tmp_path: Path
) -> None:
    api, key = lima
    csam = api.list_id("CSAM")
    (tmp_path / "flagged.png").write_bytes(synthetic_png(2001))
    (tmp_path / "harmless.png").write_bytes(synthetic_png(2002))

    hashed = hashhub(hub, key, tmp_path, "hash", "--json", "flagged.png")
    assert hashed.returncode == 0, hashed.stderr
    [picture] = json_lines(hashed.stdout)
    hashes = picture["hashes"]
    assert set(hashes) == {"md5", "sha1", "sha256", "pdq", "phash"}
    assert hashes["pdq"]["quality"] >= 50
    (tmp_path / "confirmed.csv").write_text(
        f"pdq,{hashes['pdq']['value']}\nmd5,{hashes['md5']['value']}\nmd5,not-hex\n"
    )

    added = hashhub(hub, key, tmp_path, "add", "--list", csam, "confirmed.csv")
    assert added.returncode == 5, added.stderr  # one line refused, the rest added
    assert added.stdout == "added 2, already present 0, refused 1\n"
    assert added.stderr.startswith("confirmed.csv:3: bad_characters: ")
    assert set(api.entries(csam)) == {
        ("pdq", hashes["pdq"]["value"]),
        ("md5", hashes["md5"]["value"]),
    }

    matched = hashhub(
        hub, key, tmp_path, "match", "--fail-on-match", "--json", "flagged.png", "harmless.png"
    )
    assert matched.returncode == 1, matched.stderr
    flagged, harmless = json_lines(matched.stdout)
    assert {
        (m["type"], m["distance"], m["list"]["id"], m["list"]["tier"]) for m in flagged["matches"]
    } == {
        ("pdq", 0, csam, "own"),
        ("md5", 0, csam, "own"),
    }
    assert harmless["matches"] == []
    clean = hashhub(hub, key, tmp_path, "match", "--fail-on-match", "harmless.png")
    assert (clean.returncode, clean.stdout) == (0, ""), clean.stderr

    (tmp_path / "key").write_text(key + "\n")
    exported = hashhub(
        hub, key, tmp_path, "export", "--to", "feed.jsonl", "--key-file", "key", key_in_env=False
    )
    assert exported.returncode == 0, exported.stderr
    cursor = exported.stdout.strip()
    assert cursor
    assert json.loads((tmp_path / "feed.jsonl").read_text().splitlines()[-1]) == {
        "next_cursor": cursor
    }

    offline = hashhub(
        hub, key, tmp_path, "match", "--offline", "feed.jsonl", "--fail-on-match", "--json",
        "flagged.png", "harmless.png", key_in_env=False,
    )  # fmt: skip
    assert offline.returncode == 1, offline.stderr
    offline_flagged, offline_harmless = json_lines(offline.stdout)
    assert {(m["type"], m["distance"], m["list"]["id"]) for m in offline_flagged["matches"]} == {
        ("pdq", 0, csam),
        ("md5", 0, csam),
    }
    assert offline_harmless["matches"] == []

    # Nothing new since: the export carries on from the file's cursor and appends nothing.
    again = hashhub(hub, key, tmp_path, "export", "--to", "feed.jsonl")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == cursor
    assert "appended 0 items" in again.stderr


def test_the_command_says_what_the_hub_refused(
    hub: RunningHub, lima: tuple[Api, str], tmp_path: Path
) -> None:
    (tmp_path / "picture.png").write_bytes(synthetic_png(2003))

    refused = hashhub(hub, "hh_not_a_key", tmp_path, "match", "picture.png")
    unreachable = subprocess.run(
        [str(HASHHUB), "match", "picture.png"], cwd=tmp_path, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "HASHHUB_URL": "http://127.0.0.1:9", "HASHHUB_API_KEY": "k"},
        timeout=COMMAND_SECONDS, check=False,
    )  # fmt: skip

    assert refused.returncode == 3
    assert "the hub answered 401 " in refused.stderr
    assert unreachable.returncode == 4
    assert "could not reach the hub at http://127.0.0.1:9" in unreachable.stderr
