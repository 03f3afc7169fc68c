"""lists migration 0017: every entry, old or new, gets its own random 53-bit ``hma_id``."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

migration = importlib.import_module("lists.migrations.0017_entry_hma_id")


def test_adding_the_column_gives_each_existing_row_its_own_value() -> None:
    # What AddField does to lists_entry's existing rows, on a table of its own: PostgreSQL
    # evaluates a volatile default once per row when it adds the column.
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE hma_probe (n int)")
        cursor.execute("INSERT INTO hma_probe SELECT generate_series(1, 200)")
        cursor.execute(
            f"ALTER TABLE hma_probe ADD COLUMN hma_id bigint DEFAULT ({migration.HMA_ID_SQL})"
        )
        cursor.execute("SELECT count(DISTINCT hma_id), min(hma_id), max(hma_id) FROM hma_probe")
        distinct, low, high = cursor.fetchone()
        cursor.execute("INSERT INTO hma_probe (n) VALUES (201)")  # a later insert: the default
        cursor.execute("SELECT hma_id FROM hma_probe WHERE n = 201")
        (later,) = cursor.fetchone()
    assert distinct == 200
    assert low >= 0 and high < 2**53 and 0 <= later < 2**53
    # Spread over the 53 bits, not a counter: 200 draws span far more than 2**50.
    assert high - low > 2**50
