"""Smoke benchmark: API-key authentication + GET /api/v1/me through the full Django stack.

Run by `make bench` against throwaway servers. Prints N, median, p99 and peak memory; never asserts.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
os.environ.setdefault("HASHHUB_API_RATE", "1000000/min")

import django

django.setup()

from django.core.management import call_command
from django.test import Client
from django_scopes import scope

from hub.audit import Actor
from hub.models import Organization
from hub.services import api_key_create, organization_create

N = int(os.environ.get("BENCH_N", "2000"))


def main() -> None:
    call_command("migrate", verbosity=0)
    org = Organization.objects.filter(slug="bench").first() or organization_create(
        name="Bench", slug="bench", owner=None, actor=Actor(system="bench"), approved=True
    )
    with scope(organization=org.pk):
        _key, secret = api_key_create(
            org=org, name="bench", scopes=["match"], actor=Actor(system="bench")
        )
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    for _ in range(50):  # warm-up: connections, caches, imports
        client.get("/api/v1/me")
    timings = []
    for _ in range(N):
        start = time.perf_counter()
        response = client.get("/api/v1/me")
        timings.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise SystemExit(f"unexpected status {response.status_code}: {response.content!r}")
    timings.sort()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"smoke GET /api/v1/me (key auth + throttle + scope): N={N} "
        f"median={statistics.median(timings) * 1000:.2f} ms "
        f"p99={timings[int(N * 0.99) - 1] * 1000:.2f} ms "
        f"throughput={N / sum(timings):.0f} req/s (one process) peak_rss={peak_mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
