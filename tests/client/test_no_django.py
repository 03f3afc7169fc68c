"""The ``hashhub`` command imports no Django: it runs where the hub is not configured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.conftest import encoded, synthetic_picture

ROOT = Path(__file__).resolve().parents[2]

BLOCKED = """
import sys
sys.modules["django"] = None  # any "import django..." now fails
"""

HEAVY = ("django", "celery", "kombu", "rest_framework", "hub", "lists", "sharing")


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", ["hash", "match", "add", "export"])
def test_each_subcommands_help_runs_with_django_blocked(command: str, tmp_path: Path) -> None:
    result = run_python(
        BLOCKED
        + "from hashhub_client.cli import main\n"
        + f"raise SystemExit(main([{command!r}, '--help']))\n",
        tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert f"usage: hashhub {command}" in result.stdout
    assert "exit codes:" in result.stdout
    assert result.stderr == ""


def test_hashing_and_offline_matching_run_with_django_blocked(tmp_path: Path) -> None:
    picture = tmp_path / "picture.png"
    picture.write_bytes(encoded(synthetic_picture(3)))
    feed = tmp_path / "feed.jsonl"
    feed.write_text("")
    code = (
        BLOCKED
        + "from hashhub_client.cli import main\n"
        + "assert main(['hash', '--json', 'picture.png']) == 0\n"
        + "assert main(['match', '--offline', 'feed.jsonl', 'picture.png']) == 0\n"
        + "import json\n"
        + f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )

    result = run_python(code, tmp_path)

    assert result.returncode == 0, result.stderr
    hashed = json.loads(result.stdout.splitlines()[0])
    assert set(hashed["hashes"]) == {"md5", "sha1", "sha256", "pdq", "phash"}
    # "django" is only the blocking None; nothing else of the hub's stack was imported.
    assert json.loads(result.stdout.splitlines()[-1]) == ["django"]


def test_a_run_with_django_available_imports_none_of_it(tmp_path: Path) -> None:
    picture = tmp_path / "picture.png"
    picture.write_bytes(encoded(synthetic_picture(4)))
    (tmp_path / "feed.jsonl").write_text("")
    code = (
        "import sys\n"
        "from hashhub_client.cli import main\n"
        "main(['hash', 'picture.png'])\n"
        "main(['match', '--offline', 'feed.jsonl', 'picture.png'])\n"
        "import json\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )

    result = run_python(code, tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
    assert "matching.index" not in HEAVY  # the one hub module the client uses
