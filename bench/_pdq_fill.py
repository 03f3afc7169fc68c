"""Filling a list with random PDQ hashes in set-based SQL, for the match benchmarks (a helper
module, not a script: `make bench` runs bench/[!_]*.py)."""

from __future__ import annotations

import random
import secrets

from django.db import connection

FILL_SQL = """
WITH new_hashes AS (
    INSERT INTO lists_hash (signal_type, value)
    SELECT 'pdq', decode(md5(random()::text || g) || md5(random()::text || g), 'hex')
      FROM generate_series(1, %(n)s) AS g
    ON CONFLICT DO NOTHING
    RETURNING id
), numbered AS (
    SELECT id, row_number() OVER (ORDER BY id) AS n FROM new_hashes
)
INSERT INTO lists_entry (hash_list_id, hash_id, public_id, labels, note, added_seq, added_at,
                         added_by_label, removed_by_label, removed_reason)
SELECT %(list)s, id, 'b' || %(tag)s || n, '{}', '', %(base)s + n, now(), 'bench', '', ''
  FROM numbered
"""


def fill_pdq(list_pk: int, n: int) -> int:
    """Add ``n`` random PDQ hashes to the list, taking their change numbers; returns how many."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT last FROM lists_changecounter WHERE id = 1 FOR UPDATE")
        base = cursor.fetchone()[0]
        tag = secrets.token_hex(3)
        cursor.execute(FILL_SQL, {"n": n, "list": list_pk, "base": base, "tag": tag})
        added = cursor.rowcount
        cursor.execute("UPDATE lists_changecounter SET last = last + %s WHERE id = 1", [added])
        cursor.execute("ANALYZE lists_hash; ANALYZE lists_entry")
    return added


def stored_values(list_pk: int, limit: int) -> list[str]:
    """The hex values of the list's first ``limit`` entries."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT encode(h.value, 'hex') FROM lists_entry e JOIN lists_hash h ON h.id = e.hash_id"
            " WHERE e.hash_list_id = %s ORDER BY e.added_seq LIMIT %s",
            [list_pk, limit],
        )
        return [row[0] for row in cursor.fetchall()]


def near(value: str, flips: int) -> str:
    """``value`` with ``flips`` distinct random bits flipped."""
    number = int(value, 16)
    for bit in random.sample(range(256), flips):
        number ^= 1 << bit
    return f"{number:064x}"
