"""Binary COPY of rows that carry vectors into a temporary staging table, for the statements
that then read it: inserting a source's chunks (knowledge.ingest_steps) and swapping a bot's
vectors to another model (knowledge.reembedding, training.retrieval). COPY is far faster than
bulk_create or row-by-row UPDATEs for rows of 384+ floats (docs/decisions.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from django.db import connection
from pgvector.psycopg.vector import register_vector_info
from psycopg.types import TypeInfo


def stage_and_run(
    *,
    table: str,
    columns: Sequence[tuple[str, str, str]],
    rows: Iterable[tuple],
    statements: Sequence[tuple[str, Sequence]],
) -> None:
    """Inside the caller's transaction: create the temp table `table` with `columns`
    ((name, SQL type, COPY type) each), COPY `rows` into it (numpy arrays for vector columns),
    run `statements` ((sql, params) each), and drop the table."""
    names = ", ".join(name for name, _, _ in columns)
    ddl = ", ".join(f"{name} {sql_type}" for name, sql_type, _ in columns)
    with connection.cursor() as cursor:
        raw = cursor.cursor
        # Registered on this cursor only, so Django's own vector handling is untouched.
        register_vector_info(raw, TypeInfo.fetch(raw.connection, "vector"))
        raw.execute(f"CREATE TEMP TABLE {table} ({ddl}) ON COMMIT DROP")
        with raw.copy(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types([copy_type for _, _, copy_type in columns])
            for row in rows:
                copy.write_row(row)
        for sql, params in statements:
            raw.execute(sql, params)
        raw.execute(f"DROP TABLE {table}")


def as_vector(vector) -> np.ndarray:
    return np.asarray(vector, dtype=np.float32)
