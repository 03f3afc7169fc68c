"""Upstream sources' Prometheus metrics, read from the database at each scrape (hub.metrics).

Import runs by status, rejected records, time since the last successful import (the lag) and
open incidents (lists.sources.alerts), per source. The ``source`` label is the name hub staff gave
the upstream feed, never an organisation's.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Sum
from django.utils import timezone
from django_scopes import scopes_disabled
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from hub.metrics import scrape_collector
from lists.models import ImportRun, Source, SourceIncident


@scrape_collector
def sources() -> Iterator[Metric]:
    runs = CounterMetricFamily(
        "hashhub_source_import_runs",
        "Import runs of each upstream source, by status.",
        labels=["source", "status"],
    )
    rejected = CounterMetricFamily(
        "hashhub_source_record_errors",
        "Records an upstream source sent that its imports rejected.",
        labels=["source"],
    )
    lag = GaugeMetricFamily(
        "hashhub_source_lag_seconds",
        "Seconds since the source's last successful import (absent: never succeeded).",
        labels=["source"],
    )
    failing = GaugeMetricFamily(
        "hashhub_source_incident_open",
        "1 while the source has an open incident of this kind (failing, overdue).",
        labels=["source", "kind"],
    )
    now = timezone.now()
    with scopes_disabled():
        names = dict(Source.objects.values_list("pk", "name"))
        counted = ImportRun.objects.values("source_id", "status").annotate(
            runs=Count("id"), rejected=Sum("rejected")
        )
        errors: dict[int, int] = {}
        for row in counted.order_by():
            name = names.get(row["source_id"])
            if name is None:
                continue
            runs.add_metric([name, row["status"]], float(row["runs"]))
            errors[row["source_id"]] = errors.get(row["source_id"], 0) + (row["rejected"] or 0)
        for pk, name in sorted(names.items(), key=lambda item: item[1]):
            rejected.add_metric([name], float(errors.get(pk, 0)))
        for name, last_success in Source.objects.exclude(last_success_at=None).values_list(
            "name", "last_success_at"
        ):
            if last_success is not None:
                lag.add_metric([name], max(0.0, (now - last_success).total_seconds()))
        open_kinds = set(
            SourceIncident.objects.filter(resolved_at__isnull=True).values_list("source_id", "kind")
        )
        for pk, name in sorted(names.items(), key=lambda item: item[1]):
            for kind in SourceIncident.Kind.values:
                failing.add_metric([name, kind], 1.0 if (pk, kind) in open_kinds else 0.0)
    yield from (runs, rejected, lag, failing)
