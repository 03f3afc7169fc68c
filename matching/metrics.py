"""Matching's Prometheus metrics (served by hub.metrics at ``/metrics``).

Counted where they happen: matches and detections by tier (matching.services), webhook delivery
failures (matching.webhooks). Read at scrape time: every process's match index, from the
reports each process leaves in Redis (matching.engine), with its lag behind the database's last
change number. Labels are tiers, modes, outcomes and process names: never an organisation, a
list, a hash or a key.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from hub.metrics import scrape_collector
from lists.changes import sequence_last
from matching import engine
from sharing.selectors import TIER_COMMUNITY, TIER_OWN, TIER_VERIFIED

_TIERS = frozenset({TIER_VERIFIED, TIER_OWN, TIER_COMMUNITY})

MATCHES = Counter(
    "hashhub_matches",
    "Matches recorded in detections, by tier and mode (live, shadow or retroactive).",
    ["tier", "mode"],
)
DETECTIONS = Counter(
    "hashhub_detections",
    "Detections recorded, counted once for each tier among their matches, by mode.",
    ["tier", "mode"],
)
WEBHOOK_FAILURES = Counter(
    "hashhub_webhook_failures",
    "Failed webhook delivery attempts: target (organisation or staff) and outcome "
    "(failed, gave_up: the last attempt, refused: by the address guard).",
    ["target", "outcome"],
)


def detection_counted(*, tiers: Iterable[str], shadow: bool, retroactive: bool) -> None:
    """Count a detection whose matches have ``tiers`` (one item per match)."""
    mode = "shadow" if shadow else "retroactive" if retroactive else "live"
    seen: set[str] = set()
    for tier in tiers:
        label = tier if tier in _TIERS else "other"
        MATCHES.labels(tier=label, mode=mode).inc()
        seen.add(label)
    for label in seen:
        DETECTIONS.labels(tier=label, mode=mode).inc()


def webhook_failed(*, target: str, outcome: str) -> None:
    WEBHOOK_FAILURES.labels(target=target, outcome=str(outcome)).inc()


@scrape_collector
def match_indexes() -> Iterator[Metric]:
    """Each process's index as it last reported (every minute while it searches)."""
    head = sequence_last()
    sequence = GaugeMetricFamily(
        "hashhub_change_sequence", "The database's last committed change number."
    )
    sequence.add_metric([], float(head))
    yield sequence
    size = GaugeMetricFamily(
        "hashhub_index_size",
        "Hashes in a process's match index, by perceptual type, as it last reported.",
        labels=["process", "type"],
    )
    version = GaugeMetricFamily(
        "hashhub_index_version",
        "The change number a process's match index reflected when it last reported.",
        labels=["process"],
    )
    lag = GaugeMetricFamily(
        "hashhub_index_version_lag",
        "Changes committed since a process's match index last reported (it catches up on its "
        "next search).",
        labels=["process"],
    )
    age = GaugeMetricFamily(
        "hashhub_index_report_age_seconds",
        "Seconds since a process's match index last reported.",
        labels=["process"],
    )
    now = time.time()
    for report in engine.reports_read():
        for kind, count in sorted(report.sizes.items()):
            size.add_metric([report.process, kind], float(count))
        version.add_metric([report.process], float(report.version))
        lag.add_metric([report.process], float(max(0, head - report.version)))
        if report.reported_at:
            reported = datetime.fromisoformat(report.reported_at).timestamp()
            age.add_metric([report.process], max(0.0, now - reported))
    yield from (size, version, lag, age)
