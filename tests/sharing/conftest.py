from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.lists.feed_fixtures import Upstream, serve_upstream


@pytest.fixture
def upstream(settings: Any) -> Iterator[Upstream]:
    """A feed server on 127.0.0.1; runs against it try once, without waiting between tries."""
    settings.HASHHUB_SOURCE_HTTP_ATTEMPTS = 1
    settings.HASHHUB_SOURCE_HTTP_BACKOFF = 0
    settings.HASHHUB_SOURCE_HTTP_TIMEOUT = 5
    yield from serve_upstream()
