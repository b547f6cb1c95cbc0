"""Logfire's health-check SQL, run on captured spans.

The queries are read from ``docs/observability.md`` (each ```sql block after a
``<!-- health-check: name -->`` marker), so the documented query is the tested one. The
spans go into an SQLite table shaped like Logfire's ``records`` (``start_timestamp`` in
seconds, ``attributes`` as JSON text), and the few spellings of Logfire's SQL (Apache
DataFusion, PostgreSQL-like) that SQLite lacks are translated: ``interval '5 minutes'``
becomes seconds, ``(x)::int`` a CAST, ``EXTRACT(EPOCH FROM (a - b))`` the difference
itself, ``attributes->>'a.b'`` a quoted JSON path; ``now()`` (the session's end) and
``time_bucket(width, ts)`` are SQL functions.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
_MARKED = re.compile(r"<!-- health-check: ([\w-]+) -->\s*```sql\n(.*?)```", re.S)
_UNITS = {"second": 1, "minute": 60, "hour": 3_600, "day": 86_400}


def health_checks() -> dict[str, str]:
    """The marked queries of the observability guide, by name."""
    return {m[1]: m[2] for m in _MARKED.finditer(DOC.read_text(encoding="utf-8"))}


def _seconds(text: str) -> int:
    number, unit = text.split()
    return int(number) * _UNITS[unit.rstrip("s")]


def to_sqlite(sql: str) -> str:
    """A Logfire query in SQLite's dialect (only what the guide's queries use)."""
    sql = re.sub(r"interval '([^']+)'", lambda m: str(_seconds(m[1])), sql)
    sql = re.sub(r"EXTRACT\(EPOCH FROM (\((?:[^()]|\([^()]*\))*\))\)", r"\1", sql)
    sql = re.sub(r"(\([^()]*\))::int\b", r"CAST(\1 AS INTEGER)", sql)
    sql = re.sub(r"(\([^()]*\))::float\b", r"CAST(\1 AS REAL)", sql)
    return re.sub(r"->>'([^']*)'", lambda m: f"->>'$.\"{m[1]}\"'", sql)


def records(spans: Iterable[Mapping[str, Any]]) -> sqlite3.Connection:
    """An in-memory database whose ``records`` table holds the spans (as given by
    ``TestExporter.exported_spans_as_dict()``)."""
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.execute(
        "CREATE TABLE records (start_timestamp REAL, span_name TEXT, trace_id TEXT, level INTEGER,"
        " message TEXT, attributes TEXT)"
    )
    rows = []
    for span in spans:
        attributes = dict(span["attributes"])
        rows.append(
            (
                span["start_time"] / 1e9,
                span["name"],
                f"{span['context']['trace_id']:032x}",
                attributes.get("logfire.level_num", 9),
                attributes.get("logfire.msg"),
                json.dumps({k: v for k, v in attributes.items() if not k.startswith("logfire.")}),
            )
        )
    conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    return _with_functions(conn, max((r[0] for r in rows), default=0.0) + 1.0)


def _with_functions(conn: sqlite3.Connection, end: float) -> sqlite3.Connection:
    conn.create_function("now", 0, lambda: end)
    conn.create_function("time_bucket", 2, lambda width, ts: ts - ts % _seconds(width))
    return conn


def copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    """A copy of a ``records`` database, to change without touching the original."""
    out = sqlite3.connect(":memory:")
    out.row_factory = sqlite3.Row
    conn.backup(out)
    return _with_functions(out, conn.execute("SELECT now()").fetchone()[0])


def run(conn: sqlite3.Connection, name: str) -> list[dict[str, Any]]:
    """Run the guide's health check ``name``; rows as dicts."""
    return [dict(row) for row in conn.execute(to_sqlite(health_checks()[name]))]
