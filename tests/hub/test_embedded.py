"""The throwaway servers of ``python -m hub.embedded test`` go with it, even when it is killed."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _postgres_serving(datadir: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue  # gone meanwhile
            if "postgres" in command and datadir in command:
                return True
    return False


def test_terminating_the_test_command_stops_its_servers_and_removes_their_data() -> None:
    child = "import time; print('command running', flush=True); time.sleep(120)"
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.embedded", "test", "--", sys.executable, "-c", child],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    datadir = ""
    try:
        for line in process.stdout:
            found = re.search(r"PostgreSQL ready at \S+ \(data in (\S+)\)", line)
            if found:
                datadir = found.group(1)
            if "command running" in line:
                break
        assert datadir and _postgres_serving(datadir)
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=60)[0]
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 128 + signal.SIGTERM
    assert "PostgreSQL stopped" in rest
    assert not _postgres_serving(datadir)
    assert not Path(datadir).exists()
