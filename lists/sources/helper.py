"""The helper process a run forks to work one page ahead, and the statistics it refreshes.

In a worker (not inside a caller's transaction) a helper process, forked by the run, works one
page ahead: it fetches and parses the next page and upserts its hashes on its own connection
while the runner applies this one. A process, not a thread: the runner spends most of a page
waiting for PostgreSQL, and each time it got an answer it waited again for a thread that held
the interpreter lock to parse XML.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import logging
import os
import pickle
import signal
import threading
from collections.abc import Generator, Iterator, Mapping
from dataclasses import replace
from typing import Any, NoReturn

from django.db import connection, connections

from lists.changes import sql_rows
from lists.models import HashList, Source
from lists.sources.adapters.base import Page
from lists.sources.errors import SourceError
from lists.sources.pages import PreparedPage, page_prepare

logger = logging.getLogger(__name__)


def statistics_due(page_number: int) -> bool:
    """A large import changes the tables faster than autovacuum re-reads their statistics:
    refresh them on pages 0, 1, 2, 4, 8, … so that no table grows more than twice over between
    two reads of it. Every statement of a page looks its rows up through an index whatever the
    statistics say (see apply._PAGE_SETTINGS); what they still steer is left to the planner, and
    each ANALYZE of million-row tables costs most of a second of a core the import needs."""
    return page_number & (page_number - 1) == 0


def statistics_refresh() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE lists_hash, lists_entry, lists_sourcerecord")


def _analyze_alone() -> None:
    """statistics_refresh on this thread's own connection, then closed (in a helper process)."""
    try:
        statistics_refresh()
    except Exception:  # statistics are an optimisation: the import goes on without them
        logger.exception("refreshing statistics during an import failed")
    finally:
        connection.close()


# Of the database connections a forked helper inherits: kept referenced, never used or closed,
# since the socket is the runner's.
_INHERITED: list[Any] = []

# Room in the pipe for a whole prepared page, so that the helper goes on to the next one while
# the runner applies this one (Linux allows an unprivileged process up to 1 MiB).
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031


def prepared_in_child(
    source: Source, lists: Mapping[str, HashList], pages: Iterator[Page]
) -> Generator[PreparedPage, None, None]:
    """What :func:`_prepared_ahead` makes, made by a forked helper process and read from a pipe.

    An upstream error of the helper is raised here after the pages it prepared before it;
    anything else it hit fails the run as an internal error (the helper logs it). Closing this
    generator early kills the helper; the helper also dies with the runner (a killed worker).
    When no process can be made, the pages are prepared here, in order.
    """
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, _PIPE_BYTES)
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        logger.warning("no helper process for an import of %s; preparing in order", source.name)
        for number, page in enumerate(pages):
            if statistics_due(number):
                statistics_refresh()
            yield page_prepare(source, page)
        return
    if pid == 0:  # pragma: no cover - the helper process (its work is _prepared_ahead's)
        os.close(read_end)
        _helper_main(source, lists, pages, write_end)
    os.close(write_end)
    finished = False
    try:
        with os.fdopen(read_end, "rb") as stream:
            while True:
                try:
                    kind, value = pickle.load(stream)  # noqa: S301 - our own forked child
                except EOFError:
                    raise RuntimeError("the import's helper process stopped unexpectedly") from None
                if kind == "page":
                    yield value
                elif kind == "failed":
                    raise SourceError(*value)
                elif kind == "crashed":
                    raise RuntimeError(f"the import's helper process failed: {value}")
                else:
                    finished = True
                    return
    finally:
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # it may be waiting for upstream
        os.waitpid(pid, 0)


def _helper_main(
    source: Source, lists: Mapping[str, HashList], pages: Iterator[Page], fd: int
) -> NoReturn:  # pragma: no cover
    """The forked helper: prepare the pages into the pipe, then leave without any clean-up
    (the runner's connections, sockets and files are shared with it: touch none of them)."""
    status = 1
    try:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        for number in _PLAIN_SIGNALS:  # not the worker's handlers (a warm shutdown, say)
            signal.signal(number, signal.SIG_DFL)
        for alias in connections:
            wrapper = connections[alias]
            if wrapper.connection is not None:
                _INHERITED.append(wrapper.connection)
                wrapper.connection = None  # a new one on first use
        # Everything inherited (the whole Django process) out of the cyclic collector's way:
        # its full collections, walking all of it, took half of the time of parsing a page.
        gc.freeze()
        with os.fdopen(fd, "wb") as out:
            message: tuple[str, Any]
            try:
                for prepared in _prepared_ahead(source, lists, pages):
                    # The runner needs the page's checkpoint and flags, not its raw records.
                    prepared.page = replace(prepared.page, records=[])
                    pickle.dump(("page", prepared), out, protocol=pickle.HIGHEST_PROTOCOL)
                    out.flush()
                message = ("done", None)
            except SourceError as error:
                message = ("failed", (error.code, error.message))
            except Exception as error:
                logger.exception("the helper process of an import of %s failed", source.name)
                message = ("crashed", f"{type(error).__name__}: {error}")
            pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
        status = 0
    except BaseException:  # noqa: S110 - the runner stopped reading (or killed us): just go
        pass
    finally:
        os._exit(status)


_PR_SET_PDEATHSIG = 1
_PLAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)


def _prepared_ahead(
    source: Source, lists: Mapping[str, HashList], pages: Iterator[Page]
) -> Iterator[PreparedPage]:
    """Each page parsed, its hashes upserted (on this process's own database connection) and
    the page planned.

    Run by the helper process one page ahead of the runner, so that PostgreSQL upserts the next
    page's hashes (on a second backend, in autocommit) while the runner's transaction applies
    this one. Committing hashes early changes nothing anyone sees: a hash is matched, listed
    and exported only through an entry, and entries come with their page's transaction.
    It also has the tables' statistics refreshed when due (see statistics_due), by a
    thread on a connection of its own, so that neither the runner nor this waits for that.
    """
    analyzing: threading.Thread | None = None
    list_pks = {category: hl.pk for category, hl in lists.items()}
    try:
        sql_rows("SET jit = off", {})  # see apply._PAGE_SETTINGS
        for number, page in enumerate(pages):
            if statistics_due(number) and (analyzing is None or not analyzing.is_alive()):
                analyzing = threading.Thread(target=_analyze_alone, name="analyze", daemon=True)
                analyzing.start()
            yield page_prepare(source, page, list_pks)
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()  # here, where it is iterated
        connection.close()  # this process's own connection
