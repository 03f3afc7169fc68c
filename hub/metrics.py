"""Prometheus metrics at ``/metrics``, in prometheus_client's multiprocess mode.

Two kinds of figures:

* **counted in the process** where something happens (request latency here; matches, detections
  and webhook failures in ``matching.metrics``): prometheus_client's ``Counter`` and
  ``Histogram``. With several gunicorn workers and Celery processes, each process writes its
  values to files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape adds them up. The launcher
  (``hub.embedded run``) sets that variable to ``var/prometheus`` and empties it at each start;
  in production every web and worker process on a machine must get the same empty directory
  (``hub/Procfile`` shows how). Without the variable (tests, ``manage.py``) values stay in the
  process.
* **read at scrape time** (Celery queue depths from Redis here; per-source import figures and
  every process's match index in ``lists.metrics`` and ``matching.metrics``): functions
  registered with :func:`scrape_collector`. They read the database or Redis, so they are right
  whichever process answers the scrape.

Each app keeps its own metrics in a ``metrics`` module (found the way the admin finds
``admin`` modules), so the dependency arrows stay one-way: hub defines the helpers, higher apps
define and increment their own metrics.

No label ever carries an organisation's name, a list's name, a hash, a key or an id taken from a
URL: request latency is labelled by the URL pattern's name, never by the path.

Who may scrape: a session of a hub staff member (with two-factor when staff need it), or a
request with ``Authorization: Bearer <HASHHUB_METRICS_TOKEN>`` (compared in constant time).
Everyone else gets 404, as if there were no such page.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.module_loading import autodiscover_modules
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from hub.celery import app
from hub.selectors import user_has_mfa

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUEST_SECONDS = Histogram(
    "hashhub_http_request_duration_seconds",
    "Time to answer a request, by URL pattern name (never the path), method and status class.",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# kombu's Redis transport keeps priorities 3, 6 and 9 of a queue under keys of their own.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITIES = (3, 6, 9)

ScrapeFunction = Callable[[], Iterable[Metric]]
_scrape_functions: list[ScrapeFunction] = []


def scrape_collector(function: ScrapeFunction) -> ScrapeFunction:
    """Register ``function`` (no arguments, yields metric families) to run at every scrape.

    An app's ``metrics`` module decorates its functions; a function that raises is logged and
    left out of that scrape, so one unreachable dependency does not hide every other figure.
    """
    if function not in _scrape_functions:
        _scrape_functions.append(function)
    return function


class _AtScrape(Collector):
    def __init__(self, function: ScrapeFunction) -> None:
        self.function = function

    def collect(self) -> Iterator[Metric]:
        try:
            yield from list(self.function())
        except Exception:
            logger.exception("metrics: %s failed", self.function.__qualname__)


class _ThisProcess(Collector):
    """The process's own registry, when there is no multiprocess directory."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV, "").strip())


def exposition() -> bytes:
    """Every metric, in Prometheus's text format: the processes' values, then scrape-time ones."""
    autodiscover_modules("metrics")
    registry = CollectorRegistry()
    if multiprocess_enabled():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    for function in _scrape_functions:
        registry.register(_AtScrape(function))
    return generate_latest(registry)


# --- who may scrape ---------------------------------------------------------------------------


def _bearer_token_ok(request: HttpRequest) -> bool:
    expected = settings.HASHHUB_METRICS_TOKEN
    if not expected:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def _staff_session(request: HttpRequest) -> bool:
    user: Any = request.user
    if not (user.is_authenticated and user.is_staff and user.is_active):
        return False
    return not settings.HASHHUB_STAFF_REQUIRE_MFA or user_has_mfa(user)


def may_scrape(request: HttpRequest) -> bool:
    """A staff session or the metrics token; nobody else learns that the page exists."""
    return _bearer_token_ok(request) or _staff_session(request)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not may_scrape(request) or request.method not in ("GET", "HEAD"):
        raise Http404("Not found.")
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


# --- request latency ------------------------------------------------------------------------


def endpoint_label(request: HttpRequest) -> str:
    """The URL pattern's name (``api_match``), or its route for an unnamed one; never the path,
    which may carry ids or hashes. ``unresolved`` for what no pattern matched (static files,
    404s)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unresolved"
    return match.view_name or match.route or "unnamed"


class RequestMetricsMiddleware:
    """Times every request (first in MIDDLEWARE, so the whole stack counts)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "other"
        REQUEST_SECONDS.labels(
            endpoint=endpoint_label(request),
            method=method,
            status=f"{response.status_code // 100}xx",
        ).observe(time.perf_counter() - started)
        return response


# --- Celery queue depths, read from Redis at scrape time ---------------------------------------


@scrape_collector
def celery_queue_depths() -> Iterator[Metric]:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return
    family = GaugeMetricFamily(
        "hashhub_celery_queue_length",
        "Tasks waiting in each Celery queue (read from the broker at scrape time).",
        labels=["queue"],
    )
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        for queue in sorted({queue.name for queue in app.conf.task_queues or ()}):
            keys = [queue, *(f"{queue}{_PRIORITY_SEPARATOR}{p}" for p in _PRIORITIES)]
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.llen(key)
            family.add_metric([queue], float(sum(pipe.execute())))
    finally:
        client.close()
    yield family
