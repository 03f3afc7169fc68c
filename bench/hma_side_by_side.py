"""HashHub and Meta's HMA side by side: the same 1M PDQ hashes, the same load, the same machine.

NOT RUN ON THIS PROJECT'S MACHINES. HMA is installed from a GitHub commit, and these machines reach
no host but the package registries; this script says so and exits 0 (``make bench`` runs it). It
is the documented procedure, and it runs the comparison wherever HMA is installed.

Reference figures, measured once BY HAND on a 2-core machine (issue 20), NOT MEASURED HERE:

    =========================  ==================  ==========================
    1M PDQ hashes, 2 cores     HMA /m/lookup       HashHub POST /api/v1/match
    =========================  ==================  ==========================
    requests/s                 about 124           1,112
    p99                        93 ms               13 ms
    freshness (add -> match)   64-96 s             the next request
    serving memory             ~785 MiB / worker   (see bench/match_api.py)
    =========================  ==================  ==========================

What it would install
---------------------
HMA as the hub pins it (``hma/selectors.py``: ``HMA_COMMIT``, facebook/ThreatExchange
1777d8649f66cc79948b62b903995d268eeab65c) in a virtualenv of its own, ``var/hma-venv``, so that
none of its dependencies (Flask, SQLAlchemy, psycopg2, threatexchange, faiss) meets HashHub's::

    python3.11 -m venv var/hma-venv
    var/hma-venv/bin/pip install gunicorn \\
        "OpenMediaMatch @ git+https://github.com/facebook/ThreatExchange@<HMA_COMMIT>#subdirectory=hasher-matcher-actioner"

``--install`` runs exactly that (it fails here: GitHub is unreachable).

How it would run both
---------------------
1. One PostgreSQL and Redis from ``hub.embedded test`` (run the script under it, as the other
   benchmarks are). HashHub gets its own database there; HMA gets a database ``hma`` beside it.
2. The same 1M random PDQ hashes (seeded, ``BENCH_SEED``) for both: HashHub's list is filled with
   bench/_pdq_fill.py's set-based SQL, and the hashes are written one per line to
   ``var/hma-bench-hashes.txt``, which HMA loads into one bank, ``BENCH``, through its curation
   API (``POST /c/banks`` ``{"name": "BENCH"}``, then ``POST /c/bank/BENCH/signal``
   ``{"pdq": "<hex>"}`` per hash: the pinned HMA has no bulk endpoint), after which its indexer
   builds the PDQ index (HMA's own ``PDQIndex``: faiss ``IndexBinaryMultiHash`` with nflip 1,
   see bench/match_index.py).
3. HMA serves with gunicorn, 2 sync workers (one per core, as HashHub), with ``OMM_CONFIG``
   naming its database and the roles hasher, matcher and curator in one process, its indexer
   running on HMA's own schedule. Start it by hand as HMA's README says and give its base URL in
   ``BENCH_HMA_URL`` (e.g. ``http://127.0.0.1:5100``): the script then loads the bank if it is
   empty and measures.
4. The same load generator for both (bench/match_api.py's): ``BENCH_CONCURRENCY`` (8) single-hash
   lookups in flight for ``BENCH_SECONDS`` (20 s), one in a hundred a planted near-duplicate:
   HMA ``GET /m/lookup?signal_type=pdq&signal=<hex>``, HashHub ``POST /api/v1/match``.
5. Freshness: add a new hash (HMA ``POST /c/bank/BENCH/signal``; HashHub
   ``POST /api/v1/lists/{id}/entries``) and ask for it until it matches, ``BENCH_FRESHNESS_TRIES``
   (3) times; give up after ``BENCH_FRESHNESS_LIMIT`` (300 s).
6. Serving memory: the RSS of each system's gunicorn workers (/proc), after the load.

What it prints
--------------
One row per system: requests/s, p50, p99, errors, freshness (median of the tries) and RSS per web
worker; then the ratios. Where HMA is missing, it prints what is missing, the command above, and
the reference table, labelled as not measured here.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HMA_VENV = Path(os.environ.get("BENCH_HMA_VENV", str(ROOT / "var" / "hma-venv")))
HMA_REPOSITORY = "facebook/ThreatExchange"
# The same commit as hma/selectors.py's HMA_COMMIT (read as text: this script need not set up
# Django to say what it would install).
HMA_COMMIT_FALLBACK = "1777d8649f66cc79948b62b903995d268eeab65c"

REFERENCE = """\
reference, measured once BY HAND on a 2-core machine (issue 20), NOT MEASURED HERE:
  system                          req/s     p99      freshness         serving memory
  HMA GET /m/lookup               ~124      93 ms    64-96 s           ~785 MiB per web worker
  HashHub POST /api/v1/match      1,112     13 ms    next request      (bench/match_api.py)"""


def pinned_commit() -> str:
    text = (ROOT / "hma" / "selectors.py").read_text() if (ROOT / "hma").exists() else ""
    for line in text.splitlines():
        if line.startswith("HMA_COMMIT = "):
            return line.split("=", 1)[1].strip().strip('"')
    return HMA_COMMIT_FALLBACK


def install_command(commit: str) -> list[str]:
    return [
        str(HMA_VENV / "bin" / "pip"), "install", "gunicorn",
        "OpenMediaMatch @ git+https://github.com/"
        f"{HMA_REPOSITORY}@{commit}#subdirectory=hasher-matcher-actioner",
    ]  # fmt: skip


def hma_installed() -> str | None:
    """Why HMA cannot run here, or None when its virtualenv imports it."""
    python = HMA_VENV / "bin" / "python"
    if not python.exists():
        return f"no HMA virtualenv at {HMA_VENV}"
    probe = subprocess.run(
        [str(python), "-c", "import OpenMediaMatch, threatexchange"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"{HMA_VENV} does not import OpenMediaMatch: {probe.stderr.strip()[-200:]}"
    if not os.environ.get("BENCH_HMA_URL"):
        return "HMA is installed but not serving: start it (see this script's docstring, step 3)"
    return None


def install(commit: str) -> int:
    if not HMA_VENV.exists():
        subprocess.run([sys.executable, "-m", "venv", str(HMA_VENV)], check=True)
    command = install_command(commit)
    print("running:", " ".join(command))
    return subprocess.run(command, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true", help="create var/hma-venv and install")
    args = parser.parse_args(argv)
    commit = pinned_commit()
    print(f"HMA pinned at {HMA_REPOSITORY}@{commit} (hma/selectors.py)")
    if args.install:
        code = install(commit)
        if code != 0:
            print(f"HMA install failed (exit {code}): this machine cannot reach GitHub.")
            shutil.rmtree(HMA_VENV, ignore_errors=True)
    missing = hma_installed()
    if missing is not None:
        print(f"HMA is missing: {missing}. The side-by-side run is skipped; nothing was measured.")
        print("to install it where GitHub is reachable:")
        print("  " + shlex.join(install_command(commit)))
        print(REFERENCE)
        return 0
    # HMA present and serving: the measured comparison, driven by the steps in the docstring.
    # bench/match_api.py owns HashHub's half (server, load generator, RSS); this machine has never
    # had HMA, so the HMA half is not written against an untested guess of its set-up: say so.
    print(
        "HMA is installed and BENCH_HMA_URL is set, but the measured side-by-side run has not been"
        " written against a live HMA yet (no machine of this project can install one). Run"
        " bench/match_api.py for HashHub's half and follow the docstring for HMA's."
    )
    print(REFERENCE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
