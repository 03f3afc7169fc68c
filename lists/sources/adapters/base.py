"""What every upstream adapter gives the import runner, and what it may raise.

An adapter turns one upstream format into :class:`Page` objects: records to apply, per-record
errors, and the checkpoint to store once the page is applied. The runner (lists.sources.runs)
applies each page and stores its checkpoint in one transaction, so a crash between pages loses
nothing and a crash inside a page leaves the old checkpoint: the next run fetches that page again,
and applying it twice gives the state once gives (adds of live entries and removals of absent ones
change nothing).

Adapters never touch the database; they are given the source's ``config`` (plain settings, plus
the *names* of environment variables that hold credentials), a :class:`Credentials` reader (with
the credentials stored on the source, decrypted by the runner), the records of a staff upload
when the source reads one, and an :class:`~lists.sources.adapters.http.Http` client with
timeouts, retries and the address guard.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from queue import Full, Queue
from typing import Any, ClassVar, TypeVar

from lists.sources.adapters.http import Http
from lists.sources.credentials import credential_name, env_name_allowed, env_prefix
from lists.sources.errors import SourceError

T = TypeVar("T")

ADD = "add"
REMOVE = "remove"


@dataclass(frozen=True)
class Record:
    """One upstream record.

    ``hashes`` are (signal type, text value) pairs in the upstream's own spelling; the runner
    parses and canonicalises them (a bad one becomes a per-record error). ``key`` is the
    upstream's id for the record: a later ``add`` with the same key *replaces* the hashes the key
    contributed (an update), and a ``remove`` with a key needs no hashes. Records without a key
    add or remove exactly their hashes. ``category`` is ``csam`` or ``se`` (empty: the source's
    default); ``labels`` become the entries' labels (e.g. NCMEC's A1..B2 classification).
    """

    position: str
    op: str
    hashes: tuple[tuple[str, str], ...] = ()
    key: str = ""
    category: str = ""
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordError:
    """A record the adapter could not read; the rest of the page still applies."""

    position: str
    code: str
    message: str


@dataclass
class Page:
    """What one fetch yields.

    ``checkpoint`` is the adapter's state to resume after this page. For *snapshot* feeds
    (what is absent from the new file is removed) every page of one snapshot carries the same
    ``snapshot`` id and the last one ``snapshot_complete=True``: the runner then removes the
    source's entries that no page of that snapshot named. ``expected`` is the total number of
    records of the run when the upstream says (for the progress bar).
    """

    records: list[Record]
    checkpoint: dict[str, Any]
    errors: list[RecordError] = field(default_factory=list)
    snapshot: str = ""
    snapshot_complete: bool = False
    expected: int | None = None


class Credentials:
    """A source's credentials, as its adapter asks for them by their ``*_env`` config key.

    A credential stored on the source (lists.sources.stored_credentials, decrypted by the runner
    and handed over in ``stored`` by name: ``password`` for ``password_env``) is used when there
    is one; otherwise the environment variable the config names, and only when that name starts
    with HASHHUB_SOURCE_ENV_PREFIX (a config stored before that rule is refused here too, so
    that it cannot send the hub's own secrets anywhere).
    """

    def __init__(
        self, environ: Mapping[str, str] | None = None, *, stored: Mapping[str, str] | None = None
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._stored = dict(stored or {})

    def has(self, config: Mapping[str, Any], name_key: str) -> bool:
        """Whether the source has this credential at all (stored, or a variable named)."""
        return credential_name(name_key) in self._stored or bool(config.get(name_key))

    def get(self, config: Mapping[str, Any], name_key: str) -> str:
        """The credential ``config[name_key]`` stands for; SourceError when there is none.

        Codes: ``credentials_missing`` (neither stored nor an environment variable named, or
        the variable is not set) and ``env_not_allowed`` (the name lacks the prefix).
        """
        name = credential_name(name_key)
        if name in self._stored:
            return self._stored[name]
        variable = config.get(name_key)
        if not variable:
            raise SourceError(
                "credentials_missing",
                f"The source has no {name}: store it on the source's page, or name the "
                f"environment variable that holds it in {name_key}.",
            )
        if not env_name_allowed(variable):
            raise SourceError(
                "env_not_allowed",
                f"{name_key} names an environment variable that does not start with "
                f"{env_prefix()}; it was not read. Name one that does, or store the {name} "
                "on the source's page.",
            )
        value = self._environ.get(str(variable))
        if not value:
            raise SourceError(
                "credentials_missing",
                f"The environment variable {variable} (named by {name_key}) is not set.",
            )
        return value


class Adapter(ABC):
    """One upstream format. Subclasses set ``kind`` and implement ``pages``.

    ``credential_keys`` are the config keys (``*_env``) of the credentials it may ask for; staff
    can store a credential for each (named without ``_env``). ``uploaded`` is the records of the
    source's latest staff upload, by upload id (lists.sources.uploads), for the feed adapter.
    """

    kind: ClassVar[str]
    credential_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        config: Mapping[str, Any],
        credentials: Credentials,
        http: Http,
        uploaded: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.http = http
        self.uploaded = dict(uploaded or {})

    @classmethod
    def credential_names(cls) -> tuple[str, ...]:
        """The names a stored credential of this kind may have (``password``, ``api_key``...)."""
        return tuple(credential_name(key) for key in cls.credential_keys)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config, cleaned; raise SourceError("bad_config", ...) when it cannot work."""
        return dict(config)

    @abstractmethod
    def pages(self, checkpoint: Mapping[str, Any]) -> Iterator[Page]:
        """Pages from ``checkpoint`` on (empty: from the start), until the upstream has no more.

        Raise SourceError for anything that must stop the run (auth failure after retries, a
        malformed page, unsafe XML). A page's checkpoint is stored only once it is applied.
        """


def prefetched(produce: Callable[[], Iterator[T]], *, depth: int, stop_wait: float) -> Iterator[T]:
    """The items of ``produce()``, made by a thread up to ``depth`` items ahead.

    An exception of the producer is raised here after the items made before it (so a failing
    page still lets the good pages before it be applied). Closing this generator early stops
    the producer before its next request; we wait for the one in flight at most ``stop_wait``
    seconds (the thread is a daemon, and drops whatever it fetches after being told to stop).
    """
    channel: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def send(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                channel.put((kind, value), timeout=0.1)
            except Full:
                continue
            return True
        return False

    def work() -> None:
        try:
            for item in produce():
                if not send("item", item):
                    return
        except BaseException as error:  # handed over, to be raised in the consumer's thread
            send("error", error)
        else:
            send("done", None)

    worker = threading.Thread(target=work, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = channel.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join(timeout=stop_wait)
