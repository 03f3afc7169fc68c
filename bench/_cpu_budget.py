"""Where a timed stretch's CPU went, across the whole machine (a helper of the benchmarks).

A run whose processes keep every core busy is limited by the sum of their CPU time, not by any
one of them: on a machine with C cores it cannot finish faster than (CPU seconds it needs) / C.
:class:`CpuBudget` shows that for a timed stretch: the machine's busy and idle time from
``/proc/stat``, and the CPU seconds of each process in it, sampled from ``/proc/PID/stat``
twice a second on a thread so that processes that end meanwhile (a helper, its database
connection) are counted up to their last sample. Each process is named by the caller's
``classify(pid, ppid, command line)``; what it returns None for is "rest of the machine". The
sampling itself (a few milliseconds a second) counts as the calling process's CPU.
Linux only; a helper module, not a script (``make bench`` runs bench/[!_]*.py).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

_TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.5

Classify = Callable[[int, int, str], "str | None"]


def _machine_ticks() -> tuple[int, int]:
    """(busy, idle) clock ticks of every core since boot."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields[:8]) - idle, idle  # guest time is counted within user time already


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far) of every process."""
    found: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return found


def _command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_text().replace("\0", " ").strip()
    except OSError:
        return ""


class CpuBudget:
    """``with CpuBudget(classify) as budget: …`` then ``budget.report()``."""

    def __init__(self, classify: Classify) -> None:
        self.classify = classify
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._names: dict[int, str | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._machine: tuple[int, int] = (0, 0)
        self.elapsed_busy = self.elapsed_idle = 0.0

    def __enter__(self) -> CpuBudget:
        self._machine = _machine_ticks()
        for pid, (_, seconds) in _processes().items():
            self._start[pid] = seconds
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        busy, idle = _machine_ticks()
        self.elapsed_busy = (busy - self._machine[0]) / _TICK
        self.elapsed_idle = (idle - self._machine[1]) / _TICK

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        for pid, (ppid, seconds) in _processes().items():
            if pid not in self._names:
                self._names[pid] = self.classify(pid, ppid, _command_line(pid))
            self._last[pid] = seconds

    def by_name(self) -> dict[str, float]:
        """CPU seconds per name over the stretch (processes that began in it count whole)."""
        totals: dict[str, float] = defaultdict(float)
        for pid, seconds in self._last.items():
            name = self._names.get(pid) or "rest of the machine"
            totals[name] += seconds - self._start.get(pid, 0.0)
        return {name: seconds for name, seconds in totals.items() if seconds >= 0.05}

    def report(self) -> str:
        """Lines for a bench's output: the machine's use, then each name, largest first."""
        available = self.elapsed_busy + self.elapsed_idle
        cores = os.cpu_count() or 1
        lines = [
            f"  machine: {self.elapsed_busy:.1f} of {available:.1f} CPU seconds busy "
            f"({100 * self.elapsed_busy / available if available else 0:.0f} % of {cores} cores)"
        ]
        lines += [
            f"    {seconds:6.1f} s  {name}"
            for name, seconds in sorted(self.by_name().items(), key=lambda item: -item[1])
        ]
        return "\n".join(lines)
