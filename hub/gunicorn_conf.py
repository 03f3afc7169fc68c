"""gunicorn's settings for HashHub's web processes: ``gunicorn --config python:hub.gunicorn_conf``.

* With ``PROMETHEUS_MULTIPROC_DIR`` set (hub.metrics), a worker that exits is marked dead, so
  that its files stop counting towards the live values of the other workers.
* The access log names the path without its query string, and no referrer: a query (an HMA
  lookup, say) may carry a hash, which must never reach the log. Its lines, and gunicorn's own,
  pass hub.logging's redaction and are JSON objects when ``HASHHUB_LOG_FORMAT=json``.

Every name below that is one of gunicorn's settings is read by gunicorn; the rest is ignored.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from gunicorn.glogging import Logger
from prometheus_client import multiprocess

from hub.logging import JsonFormatter, RedactFilter

accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
logger_class = "hub.gunicorn_conf.RedactingLogger"


class RedactingLogger(Logger):
    """gunicorn's logger, its handlers redacted (and formatting JSON when asked)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        json_lines = os.environ.get("HASHHUB_LOG_FORMAT", "").strip() == "json"
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not any(isinstance(f, RedactFilter) for f in handler.filters):
                    handler.addFilter(RedactFilter())
                if json_lines:
                    handler.setFormatter(JsonFormatter())
                elif log is self.access_log:
                    handler.setFormatter(logging.Formatter("%(message)s"))


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
        multiprocess.mark_process_dead(worker.pid)
