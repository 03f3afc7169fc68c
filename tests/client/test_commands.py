"""The ``hashhub`` subcommands against the hub's real API (in this process, see conftest).

Alice's platform (org A, key with every scope) hashes synthetic pictures, matches them, adds
hashes from a file, and keeps a local copy of the export that matches as the hub does.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from hashhub_client.cli import (
    EXIT_INPUT,
    EXIT_MATCHED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    main,
)
from hashhub_client.hashing import hash_file
from hashhub_client.offline import OfflineMatcher, replay
from hashhub_client.output import Progress
from hub.models import Organization
from tests.client.conftest import HUB_URL, Hashhub, encoded, synthetic_picture
from tests.matching.test_match_api import add, flip, own_list, random_pdq, remove

pytestmark = pytest.mark.django_db

Picture = Callable[..., Path]


def pdq_of(path: Path) -> str:
    return hash_file(path).hashes["pdq"].value


def test_a_picture_near_a_listed_hash_matches_and_fails_when_asked(
    hashhub: Hashhub, org_a: Organization, write_picture: Picture
) -> None:
    listed = write_picture("listed.png", seed=1)
    other = write_picture("other.png", seed=2)
    add(own_list(org_a), ("pdq", flip(pdq_of(listed), 5)))

    shown = hashhub("match", str(listed), str(other))
    failed = hashhub("match", "--fail-on-match", str(listed), str(other))
    clean = hashhub("match", "--fail-on-match", str(other))

    assert shown.code == EXIT_OK, shown.err
    header, row = shown.out.splitlines()
    assert header.split() == ["PATH", "TYPE", "DISTANCE", "TIER", "CATEGORY", "LIST", "CONTRIBUTOR"]
    assert row.split() == [str(listed), "pdq", "5", "own", "csam", "CSAM", "Org", "A"]
    assert "checked 2 files against the hub: 1 matched (1 match)" in shown.err
    assert failed.code == EXIT_MATCHED
    assert (clean.code, clean.out) == (EXIT_OK, "")


def test_json_lines_give_each_files_hashes_matches_and_errors(
    hashhub: Hashhub, org_a: Organization, write_picture: Picture, tmp_path: Path
) -> None:
    listed = write_picture("listed.png", seed=3)
    plain = tmp_path / "plain.png"
    plain.write_bytes(encoded(Image.new("RGB", (64, 64), (200, 10, 10))))
    found = hash_file(listed)
    add(own_list(org_a), ("md5", found.hashes["md5"].value))

    outcome = hashhub("match", "--json", str(listed), str(plain), str(tmp_path / "missing.png"))

    assert outcome.code == EXIT_INPUT  # the missing file, reported; the others were matched
    first, second, third = outcome.json_lines()
    assert first["path"] == str(listed)
    assert first["hashes"]["pdq"] == {"value": found.hashes["pdq"].value, "quality": 100}
    [match] = first["matches"]
    assert (match["type"], match["value"], match["distance"]) == (
        "md5",
        found.hashes["md5"].value,
        0,
    )
    assert match["list"]["id"] == own_list(org_a).public_id
    assert second["matches"] == []
    assert [(e["type"], e["code"]) for e in second["errors"]] == [("pdq", "low_quality")]
    assert third == {
        "path": str(tmp_path / "missing.png"),
        "error": {"code": "unreadable_file", "message": "No such file or directory"},
    }


def test_hashes_go_in_requests_of_at_most_a_thousand(
    hashhub: Hashhub, org_a: Organization, tmp_path: Path
) -> None:
    paths = []
    for seed in range(210):  # 5 hashes each: 1,050 hashes
        path = tmp_path / f"{seed:03}.png"
        path.write_bytes(encoded(synthetic_picture(seed, (48, 48))))
        paths.append(str(path))
    add(own_list(org_a), ("sha256", hash_file(paths[-1]).hashes["sha256"].value))

    outcome = hashhub("match", "--json", *paths)

    batches = hashhub.transport.bodies("/api/v1/match")
    assert [len(body["hashes"]) for body in batches] == [1000, 50]
    assert len(outcome.json_lines()) == 210
    assert [line["path"] for line in outcome.json_lines() if line["matches"]] == [paths[-1]]
    # Images never leave the machine: only hashes are sent.
    assert all(set(body) == {"hashes"} for body in batches)


def test_a_smaller_radius_is_sent_to_the_hub(
    hashhub: Hashhub, org_a: Organization, write_picture: Picture
) -> None:
    listed = write_picture("listed.png", seed=4)
    add(own_list(org_a), ("pdq", flip(pdq_of(listed), 12)))

    near = hashhub("match", "--fail-on-match", "--max-distance", "pdq=11", str(listed))
    bad = hashhub("match", "--max-distance", "pdq=40", str(listed))

    assert near.code == EXIT_OK
    assert hashhub.transport.bodies("/api/v1/match")[0]["max_distance"] == {"pdq": 11}
    assert bad.code == EXIT_USAGE
    assert "--max-distance 'pdq=40': N must be 0 to 31" in bad.err


def test_add_sends_batches_and_reports_each_refused_line(
    hashhub: Hashhub, org_a: Organization, tmp_path: Path
) -> None:
    good = [random_pdq() for _ in range(3)]
    md5 = secrets.token_hex(16)
    source = tmp_path / "hashes.csv"
    source.write_text(
        "# exported from our moderation tool\n"
        f"pdq,{good[0]}\n"
        "\n"
        f"pdq,{good[1]},A1;tag-x,first seen in a report\n"
        "pdq\n"
        f"pdq,{good[2][:-2]}\n"
        f"PDQ,{good[2].upper()}\n"
        f"md5,{md5}\n"
        f"pdq,{good[0]}\n"
    )

    outcome = hashhub("add", "--list", own_list(org_a).public_id, "--batch-size", "2", str(source))

    assert outcome.code == EXIT_INPUT
    assert outcome.out == "added 4, already present 1, refused 2\n"
    assert outcome.err.splitlines() == [
        f"{source}:5: invalid_line: expected type,value (e.g. pdq,<64 hex digits>)",
        f"{source}:6: wrong_length: PDQ hashes are 64 hex characters long; this one has 62.",
    ]
    assert [len(body["entries"]) for body in hashhub.transport.bodies(
        f"/api/v1/lists/{own_list(org_a).public_id}/entries"
    )] == [2, 2, 2]  # fmt: skip
    entries = hashhub.transport.client.get(
        f"/api/v1/lists/{own_list(org_a).public_id}/entries",
        headers={"Authorization": f"Bearer {hashhub.env['HASHHUB_API_KEY']}"},
        secure=True,
    ).json()["entries"]
    assert {(e["type"], e["value"]) for e in entries} == {
        *(("pdq", value) for value in good),
        ("md5", md5),
    }
    [labelled] = [e for e in entries if e["value"] == good[1]]
    assert labelled["labels"] == ["A1", "tag-x"]


def test_add_reads_a_csv_with_a_header(
    hashhub: Hashhub, org_a: Organization, tmp_path: Path
) -> None:
    value = secrets.token_hex(20)
    source = tmp_path / "hashes.csv"
    source.write_text(f"note,value,type\nfrom a report,{value},sha1\n")

    outcome = hashhub("add", "--json", "--list", own_list(org_a).public_id, str(source))

    assert outcome.code == EXIT_OK, outcome.err
    assert outcome.json_lines() == [{"added": 1, "already_present": 0, "refused": 0, "errors": []}]


def test_export_then_offline_match_agrees_with_the_hub(
    hashhub: Hashhub, org_a: Organization, write_picture: Picture, tmp_path: Path
) -> None:
    kept = write_picture("kept.png", seed=5)
    dropped = write_picture("dropped.png", seed=6)
    unrelated = write_picture("unrelated.png", seed=7)
    csam = own_list(org_a)
    add(csam, ("pdq", flip(pdq_of(kept), 9)), ("phash", hash_file(kept).hashes["phash"].value))
    add(csam, ("pdq", pdq_of(dropped)), *[("pdq", random_pdq()) for _ in range(30)])
    feed = tmp_path / "feed.jsonl"

    first = hashhub("export", "--to", str(feed), "--page-size", "7")
    remove(csam, ("pdq", pdq_of(dropped)))
    second = hashhub("export", "--to", str(feed))  # carries on from the file's last cursor

    assert first.code == second.code == EXIT_OK
    cursors = [json.loads(line)["next_cursor"] for line in feed.read_text().splitlines()
               if "next_cursor" in json.loads(line)]  # fmt: skip
    assert first.out.strip() == cursors[4]  # 33 items in pages of 7: five pages
    assert second.out.strip() == cursors[-1] != cursors[4]
    assert hashhub.transport.requests[-1].url.params["cursor"] == cursors[4]
    assert "appended 1 items (0 adds, 1 removes)" in second.err

    paths = [str(kept), str(dropped), str(unrelated)]
    offline = hashhub("match", "--json", "--offline", str(feed), *paths)
    online = hashhub("match", "--json", *paths)

    def found(lines: list[dict[str, Any]]) -> list[list[tuple[Any, ...]]]:
        return [
            sorted(
                (m["type"], m["matched_value"], m["distance"], m["list"]["id"])
                for m in line["matches"]
            )
            for line in lines
        ]

    assert found(offline.json_lines()) == found(online.json_lines())
    assert [len(matches) for matches in found(offline.json_lines())] == [2, 0, 0]
    assert offline.code == online.code == EXIT_OK


def test_offline_matching_replays_adds_and_removes_with_the_hubs_radii() -> None:
    ref = {"id": "L1", "name": "N", "category": "csam", "tier": "own", "contributor": "A",
           "anonymous": False}  # fmt: skip
    centre = random_pdq()
    lines = [
        {"seq": 1, "op": "add", "type": "pdq", "value": flip(centre, 31), "list": ref},
        {"seq": 2, "op": "add", "type": "pdq", "value": flip(centre, 32, start=1), "list": ref},
        {"seq": 3, "op": "add", "type": "phash", "value": "00000000000003ff", "list": ref},
        {"seq": 4, "op": "add", "type": "phash", "value": "00000000000007ff", "list": ref},
        {"seq": 5, "op": "add", "type": "md5", "value": "ab" * 16, "list": ref},
        {"seq": 6, "op": "remove", "type": "md5", "value": "ab" * 16, "list": ref},
        {"next_cursor": "c1"},
    ]
    path_text = "\n".join(json.dumps(line) for line in lines) + "\n"
    live = _replay_text(path_text)
    matcher = OfflineMatcher(live)

    pdq, phash, md5 = matcher.match(
        [("pdq", centre), ("phash", "0000000000000000"), ("md5", "ab" * 16)]
    )

    assert [m["distance"] for m in pdq["matches"]] == [31]  # 32 is beyond PDQ's 31
    assert [m["distance"] for m in phash["matches"]] == [10]  # 11 is beyond pHash's 10
    assert md5["matches"] == []  # removed


def _replay_text(text: str) -> dict[tuple[str, str, str], dict[str, object]]:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as stream:
        stream.write(text)
    try:
        return replay(stream.name)
    finally:
        Path(stream.name).unlink()


def test_the_hubs_refusal_is_printed_with_its_code(
    hashhub: Hashhub, write_picture: Picture, tmp_path: Path
) -> None:
    picture = write_picture("p.png", seed=8)
    source = tmp_path / "h.csv"
    source.write_text(f"pdq,{random_pdq()}\n")

    bad_key = hashhub("match", str(picture), env={**hashhub.env, "HASHHUB_API_KEY": "hh_nope"})
    no_list = hashhub("add", "--list", "no-such-list", str(source))

    assert bad_key.code == EXIT_REFUSED
    assert bad_key.err.startswith("hashhub: the hub answered 401 authentication_failed: ")
    assert no_list.code == EXIT_REFUSED
    assert "the hub answered 404 not_found: " in no_list.err
    assert "stopped after adding 0 (0 already present)" in no_list.err


def test_the_key_comes_from_a_file_and_never_from_an_argument(
    hashhub: Hashhub, org_a: Organization, write_picture: Picture, tmp_path: Path
) -> None:
    picture = write_picture("p.png", seed=9)
    key_file = tmp_path / "key"
    key_file.write_text(hashhub.env["HASHHUB_API_KEY"] + "\n")
    add(own_list(org_a), ("pdq", pdq_of(picture)))

    from_file = hashhub(
        "match", "--fail-on-match", "--key-file", str(key_file), str(picture),
        env={"HASHHUB_URL": HUB_URL},
    )  # fmt: skip
    no_key = hashhub("match", str(picture), env={"HASHHUB_URL": HUB_URL})
    no_url = hashhub("match", str(picture), env={"HASHHUB_API_KEY": "x"})
    as_argument = hashhub("match", "--key", "x", str(picture))

    assert from_file.code == EXIT_MATCHED, from_file.err
    assert (no_key.code, no_key.err) == (
        EXIT_USAGE,
        "hashhub: error: no API key: set HASHHUB_API_KEY or pass --key-file FILE\n",
    )
    assert (no_url.code, no_url.err) == (
        EXIT_USAGE,
        "hashhub: error: no hub URL: set HASHHUB_URL or pass --url\n",
    )
    assert as_argument.code == EXIT_USAGE
    assert "unrecognized arguments: --key" in as_argument.err  # not taken for --key-file


def test_an_unreachable_hub_exits_four(write_picture: Picture) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    err = io.StringIO()
    code = main(
        ["match", str(write_picture("p.png", seed=10))],
        stdout=io.StringIO(),
        stderr=err,
        env={"HASHHUB_URL": "https://hub.invalid", "HASHHUB_API_KEY": "k"},
        transport=httpx.MockTransport(refuse),
    )

    assert code == EXIT_UNREACHABLE
    assert "could not reach the hub at https://hub.invalid: ConnectError" in err.getvalue()


def test_a_rate_limited_request_waits_and_is_sent_again(write_picture: Picture) -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "7"},
                       json={"error": {"code": "rate_limited", "message": "Slow down."}}),
        httpx.Response(200, json={"results": [
            {"type": t, "value": "v", "error": None, "matches": []} for t in range(5)
        ]}),
    ]  # fmt: skip
    waits: list[float] = []
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers.pop(0)

    code = main(
        ["match", str(write_picture("p.png", seed=11))],
        stdout=io.StringIO(),
        stderr=io.StringIO(),
        env={"HASHHUB_URL": "https://hub.example", "HASHHUB_API_KEY": "k"},
        transport=httpx.MockTransport(answer),
        sleep=waits.append,
    )

    assert code == EXIT_OK
    assert waits == [7.0]
    assert len(sent) == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_is_drawn_on_a_terminal_only() -> None:
    ticks = iter(range(100))
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = Progress(stream, 4, "files", clock=lambda: float(next(ticks)))
        for _ in range(4):
            progress.advance()
        progress.close()

    assert "\r[##############################] 4/4 files" in terminal.getvalue()
    assert "[#######.......................] 1/4 files" in terminal.getvalue()
    assert pipe.getvalue() == ""
