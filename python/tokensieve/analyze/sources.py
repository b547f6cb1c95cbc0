"""Readers of request logs: one :class:`Record` at a time, whatever the log's format.

Four formats, detected from the file name and its first bytes (or named with ``--format``):

``sqlite``
    The :class:`~tokensieve.UsageTracker` ledger (``UsageTracker(path=...)``): its
    ``usage`` rows are requests, its ``capacity_warnings`` rows warnings, and its
    ``rate_limits`` row per model the current streak of 429s (the ledger keeps no more:
    it prunes rows older than a day).
``csv``
    A usage export, one request per row, columns found by name (see
    :data:`CSV_COLUMNS` for the default names and their aliases; ``--columns`` maps
    others). ``cached_tokens`` are counted as part of ``input_tokens`` (as OpenAI
    reports them). A ``status`` of 429 (or ``rate_limited``, ``rate_limit_error``) is a
    rate-limited request, another non-2xx status an error.
``usage``
    JSON lines of OpenAI or Anthropic responses or bare usage objects: a chat completion
    (``usage.prompt_tokens``, ``prompt_tokens_details.cached_tokens``, a ``length``
    finish reason), a Responses object (``usage.input_tokens``,
    ``input_tokens_details.cached_tokens``, ``incomplete_details.reason ==
    "max_output_tokens"``), an Anthropic message (``cache_creation_input_tokens`` and
    ``cache_read_input_tokens`` added to the input, ``stop_reason == "max_tokens"``), or
    an envelope ``{"timestamp": ..., "session_id": ..., "max_tokens": ..., "task": ...,
    "response": {...}}``; an ``error`` of type ``rate_limit_error`` /
    ``rate_limit_exceeded`` or ``"status": 429`` is a 429.
``spans``
    OpenTelemetry / Logfire span exports, one JSON object per line: OTLP JSON
    (``{"resourceSpans": [...]}``, as the OTLP file exporter writes it), flat spans
    (``name``, ``attributes``, ``start_time``, as the SDK's console exporter writes them)
    or rows of Logfire's ``records`` table (``span_name``, ``start_timestamp``,
    ``attributes``). tokensieve's own events become records (``capacity_warning``,
    ``rate_limit`` as a 429, ``failover``, ``budget_blocked``), its ``compaction`` spans
    compaction records, and model request spans with ``gen_ai.usage.*`` attributes
    (pydantic-ai's instrumentation) requests. A span's session is its ``session.id``
    attribute, else its trace.

Every reader streams: a 10 GB log is read line by line (or row by row), never whole.
``.gz`` files are read through gzip.

Example:
    >>> import io, csv, os, tempfile
    >>> from tokensieve.analyze.sources import read_source
    >>> path = os.path.join(tempfile.mkdtemp(), "usage.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("timestamp,model,input_tokens,output_tokens,status\\n2026-11-02T09:00:00Z,cerebras:x,28000,320,200\\n")
    >>> [(r.model, r.input_tokens, r.output_tokens, r.status) for r in read_source(path)]
    [('cerebras:x', 28000, 320, 'ok')]
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import IO, Any, Literal, NamedTuple

from tokensieve.errors import TokensieveError

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "LogFormatError",
    "Record",
    "detect_format",
    "parse_columns",
    "parse_timestamp",
    "read_source",
]

SourceFormat = Literal["sqlite", "csv", "usage", "spans"]
#: The formats ``--format`` accepts.
FORMATS: tuple[SourceFormat, ...] = ("sqlite", "csv", "usage", "spans")

Kind = Literal["request", "compaction", "capacity_warning", "failover", "budget_blocked"]
Status = Literal["ok", "rate_limited", "error"]


class LogFormatError(TokensieveError, ValueError):
    """A log that cannot be read: the message names the file, the line and what was wrong."""


class Record(NamedTuple):
    """One thing that happened, as every reader reports it.

    Attributes:
        ts: seconds since the epoch (UTC); None when the log has no time for it.
        kind: ``"request"`` (a model request, successful or not), ``"compaction"`` (a
            tokensieve compaction span: ``input_tokens`` is what it left),
            ``"capacity_warning"``, ``"failover"`` or ``"budget_blocked"``.
        model: the model ("" when the log does not say).
        input_tokens, output_tokens: tokens of the request (input includes cached input).
        cached_tokens: input tokens served from the provider's prompt cache (None: the
            log does not say).
        session, request_id: identifiers, where the log has them.
        status: ``"ok"``, ``"rate_limited"`` (HTTP 429) or ``"error"``.
        task: the task class (``"TOOL_CALL"`` ...), where known.
        max_tokens: the request's output budget, where known.
        hit_max: whether the response stopped at the output budget (finish reason
            ``length`` / ``max_tokens``); None: the log does not say.
        requests: requests this row stands for (a ledger row can aggregate several).
        limit_name: for a capacity warning, the limit (``"tokens_per_day"`` ...).
        tokens_before: for a compaction, the history's tokens before it.
    """

    ts: float | None
    kind: Kind = "request"
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int | None = None
    session: str | None = None
    request_id: str | None = None
    status: Status = "ok"
    task: str | None = None
    max_tokens: int | None = None
    hit_max: bool | None = None
    requests: int = 1
    limit_name: str | None = None
    tokens_before: int | None = None


# --------------------------------------------------------------------------- values


def parse_timestamp(value: Any) -> float | None:
    """Seconds since the epoch from an ISO 8601 string (naive means UTC) or a number of
    seconds, milliseconds, microseconds or nanoseconds since the epoch (told apart by size).

    Example:
        >>> from tokensieve.analyze.sources import parse_timestamp
        >>> parse_timestamp("2026-11-02T09:00:00Z"), parse_timestamp(1793610000000), parse_timestamp("")
        (1793610000.0, 1793610000.0, None)
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a time, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                moment = datetime.fromisoformat(text.replace(" UTC", "+00:00"))
            except ValueError:
                raise ValueError(f"expected an ISO 8601 time or a number, got {value!r}") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return moment.timestamp()
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a time, got {value!r}")
    number = float(value)
    # ns, us, ms: seconds since 1970 stay below 1e11 until the year 5138.
    for threshold, divisor in ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3)):
        if abs(number) >= threshold:
            return number / divisor
    return number


def _int(value: Any, what: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.replace(",", "").replace("_", "")) if value.strip() else 0
        except ValueError:
            raise ValueError(f"{what}: expected a number, got {value!r}") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}: expected 0 or more, got {value!r}")
    return int(value)


def _opt_int(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    return _int(value, what)


_RATE_LIMITED = {"429", "rate_limited", "rate_limit", "rate_limit_error", "rate_limit_exceeded", "too_many_requests"}
_OK = {"", "ok", "success", "succeeded", "completed", "complete", "incomplete", "200", "201", "true", "1"}
_HIT_MAX = {"length", "max_tokens", "max_output_tokens", "max_completion_tokens"}


def _status(value: Any) -> Status:
    """``ok``, ``rate_limited`` or ``error`` from a status column (a code or a word)."""
    if value is None:
        return "ok"
    text = str(value).strip().lower()
    if text.endswith(".0"):
        text = text[:-2]
    if text in _RATE_LIMITED or "429" in text or "rate" in text and "limit" in text:
        return "rate_limited"
    if text in _OK or (text.isdigit() and 200 <= int(text) < 300):
        return "ok"
    return "error"


def _task(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(getattr(value, "value", value)).strip().upper() or None


def _hit(finish: Any) -> bool | None:
    if finish is None or finish == "":
        return None
    if isinstance(finish, (list, tuple)):
        return any(_hit(f) for f in finish)
    return str(finish).strip().lower() in _HIT_MAX


# --------------------------------------------------------------------------- files


def _open_binary(path: str) -> IO[bytes]:
    f: IO[bytes] = open(path, "rb")
    if path.endswith(".gz"):
        return gzip.open(f)  # type: ignore[return-value]
    return f


def _peek(path: str, size: int = 65536) -> bytes:
    with _open_binary(path) as f:
        return f.read(size)


def detect_format(path: str) -> SourceFormat:
    """The format of a log, from its name and first bytes.

    ``.db`` / ``.sqlite`` or SQLite's magic bytes: ``sqlite``; ``.csv`` / ``.tsv``:
    ``csv``; JSON lines: ``spans`` when the first object is an OTLP export or a span
    (``name`` or ``span_name`` with ``attributes`` or a start time), ``usage`` otherwise;
    anything else not starting with ``{``: ``csv``.

    Example:
        >>> from tokensieve.analyze.sources import detect_format
        >>> detect_format("tokensieve-usage.sqlite")
        'sqlite'
    """
    name = path[:-3] if path.endswith(".gz") else path
    ext = os.path.splitext(name)[1].lower()
    if ext in (".db", ".sqlite", ".sqlite3"):
        return "sqlite"
    try:
        head = _peek(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise LogFormatError(f"{path}: {e.strerror or e}") from None
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if ext in (".csv", ".tsv"):
        return "csv"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"{"):
        return "csv"
    first = text.split(b"\n", 1)[0]
    try:
        obj = json.loads(first)
    except ValueError:
        return "usage"  # a truncated first line: the reader will name the error
    return "spans" if _looks_like_span(obj) else "usage"


def _looks_like_span(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    if "resourceSpans" in obj or "resource_spans" in obj:
        return True
    named = "name" in obj or "span_name" in obj
    timed = any(k in obj for k in ("start_time", "start_timestamp", "startTimeUnixNano", "context", "trace_id"))
    return named and ("attributes" in obj or timed) and "usage" not in obj


def _json_lines(path: str) -> Iterator[tuple[int, Any]]:
    with _open_binary(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            try:
                yield number, json.loads(line)
            except ValueError as e:
                raise LogFormatError(f"{path}: line {number}: not JSON lines (one JSON object per line): {e}") from None


# --------------------------------------------------------------------------- sqlite


def read_sqlite(path: str) -> Iterator[Record]:
    """The requests, capacity warnings and current 429 streaks of a UsageTracker ledger.

    Example:
        >>> import os, tempfile
        >>> from tokensieve import UsageTracker
        >>> from tokensieve.analyze.sources import read_sqlite
        >>> path = os.path.join(tempfile.mkdtemp(), "usage.sqlite")
        >>> tracker = UsageTracker("cerebras", path=path)
        >>> _ = tracker.record(input_tokens=42_000, output_tokens=500, model="cerebras:x")
        >>> tracker.close()
        >>> [(r.kind, r.input_tokens, r.limit_name) for r in read_sqlite(path)]
        [('request', 42000, None), ('capacity_warning', 0, 'context_window')]
    """
    import sqlite3

    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise LogFormatError(f"{path}: cannot open the SQLite file ({e})") from None
    try:
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            raise LogFormatError(f"{path}: not a SQLite database ({e})") from None
        if "usage" not in tables:
            raise LogFormatError(f"{path}: not a UsageTracker ledger (no 'usage' table; tables: {sorted(tables)})")
        # Requests and warnings merged by time, each side read lazily in time order.
        usage = (
            Record(float(ts), "request", model or "", int(i), int(o), requests=max(int(n), 1))
            for ts, model, i, o, n in conn.execute(
                "SELECT ts, model, input_tokens, output_tokens, requests FROM usage ORDER BY ts, id"
            )
        )
        streams: list[Iterator[Record]] = [usage]
        if "capacity_warnings" in tables:
            cursor = conn.cursor()  # a second cursor: both are read in step
            streams.append(
                Record(float(ts), "capacity_warning", model or "", limit_name=name)
                for ts, model, name in cursor.execute(
                    "SELECT ts, model, limit_name FROM capacity_warnings ORDER BY ts, id"
                )
            )
        if "rate_limits" in tables:
            rows = conn.execute("SELECT model, consecutive, ts FROM rate_limits ORDER BY ts").fetchall()
            streams.append(
                iter([Record(float(ts), "request", model or "", status="rate_limited") for model, n, ts in rows for _ in range(int(n))])
            )
        import heapq

        yield from heapq.merge(*streams, key=lambda r: r.ts or 0.0)
    finally:
        conn.close()


# --------------------------------------------------------------------------- csv

#: The fields of a CSV export and the header names each is found by (compared in lower
#: case, spaces and dashes read as ``_``); the first name is the documented default.
#: ``timestamp`` and ``input_tokens`` are required, the rest optional.
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "time", "datetime", "date", "created_at", "created", "start_time", "ts"),
    "model": ("model", "model_name", "model_id"),
    "input_tokens": ("input_tokens", "prompt_tokens", "tokens_in", "input", "prompt"),
    "output_tokens": ("output_tokens", "completion_tokens", "tokens_out", "output", "completion"),
    "cached_tokens": (
        "cached_tokens",
        "cached_input_tokens",
        "cache_read_tokens",
        "cache_read_input_tokens",
        "prompt_cache_hit_tokens",
    ),
    "session_id": ("session_id", "session", "conversation_id", "thread_id"),
    "request_id": ("request_id", "id", "call_id"),
    "status": ("status", "status_code", "http_status", "response_code"),
    "task": ("task", "task_class", "task_type"),
    "max_tokens": ("max_tokens", "max_output_tokens", "max_completion_tokens"),
    "finish_reason": ("finish_reason", "stop_reason"),
}
_REQUIRED = ("timestamp", "input_tokens")


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower().lstrip("\ufeff")).strip("_")


def parse_columns(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``--columns`` as a mapping of field to header: ``"input_tokens=Prompt Tokens,timestamp=Time"``.

    Example:
        >>> from tokensieve.analyze.sources import parse_columns
        >>> parse_columns("input_tokens=Prompt Tokens, timestamp=Time")
        {'input_tokens': 'Prompt Tokens', 'timestamp': 'Time'}
    """
    if spec is None:
        return {}
    items = spec.items() if isinstance(spec, Mapping) else (
        part.split("=", 1) if "=" in part else (part, "") for part in spec.split(",") if part.strip()
    )
    mapping: dict[str, str] = {}
    for field, header in items:
        field = field.strip()
        if field == "session":
            field = "session_id"
        if field not in CSV_COLUMNS:
            raise LogFormatError(f"--columns: unknown field {field!r}; expected one of {', '.join(CSV_COLUMNS)}")
        if not header.strip():
            raise LogFormatError(f"--columns: {field}= needs a column name (FIELD=HEADER)")
        mapping[field] = header.strip()
    return mapping


def _csv_positions(path: str, header: list[str], columns: Mapping[str, str]) -> dict[str, int]:
    normalized = [_norm(h) for h in header]
    positions: dict[str, int] = {}
    for field, aliases in CSV_COLUMNS.items():
        if field in columns:
            wanted = _norm(columns[field])
            if wanted not in normalized:
                raise LogFormatError(f"{path}: --columns {field}={columns[field]!r}: no such column (columns: {', '.join(header)})")
            positions[field] = normalized.index(wanted)
            continue
        for alias in aliases:
            if alias in normalized:
                positions[field] = normalized.index(alias)
                break
    missing = [f for f in _REQUIRED if f not in positions]
    if missing:
        raise LogFormatError(
            f"{path}: no {' or '.join(missing)} column (columns: {', '.join(header)}); "
            f"name it with --columns {missing[0]}=HEADER"
        )
    return positions


def read_csv(path: str, columns: Mapping[str, str] | None = None) -> Iterator[Record]:
    """The requests of a CSV usage export, one per row (see :data:`CSV_COLUMNS`).

    Errors name the file, the line and the column:

    >>> import os, tempfile
    >>> from tokensieve.analyze.sources import read_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "usage.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("Time,Prompt Tokens\\n2026-11-02 09:00,lots\\n")
    >>> list(read_csv(path))
    Traceback (most recent call last):
    ...
    tokensieve.analyze.sources.LogFormatError: .../usage.csv: line 2: input_tokens: expected a number, got 'lots'
    """
    with _open_binary(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
        first = text.readline()
        # The delimiter the header uses most: "," by default, ";" in exports made for
        # locales with a decimal comma, tabs in TSV.
        delimiter = max(",;\t|", key=lambda d: (first.count(d), d == ","))
        reader = csv.reader(_chain_first(first, text), delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as e:
            raise LogFormatError(f"{path}: not UTF-8 text ({e.reason})") from None
        pos = _csv_positions(path, header, columns or {})
        get = {field: _getter(pos.get(field)) for field in CSV_COLUMNS}
        try:
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                try:
                    ts = parse_timestamp(get["timestamp"](row))
                    status = _status(get["status"](row))
                    finish = get["finish_reason"](row)
                    cached = get["cached_tokens"](row)
                    yield Record(
                        ts,
                        "request",
                        (get["model"](row) or "").strip(),
                        _int(get["input_tokens"](row), "input_tokens"),
                        _int(get["output_tokens"](row), "output_tokens"),
                        _opt_int(cached, "cached_tokens"),
                        get["session_id"](row) or None,
                        get["request_id"](row) or None,
                        status,
                        _task(get["task"](row)),
                        _opt_int(get["max_tokens"](row), "max_tokens"),
                        _hit(finish),
                    )
                except ValueError as e:
                    raise LogFormatError(f"{path}: line {reader.line_num}: {e}") from None
        except UnicodeDecodeError as e:
            raise LogFormatError(f"{path}: line {reader.line_num + 1}: not UTF-8 text ({e.reason})") from None
        except csv.Error as e:
            raise LogFormatError(f"{path}: line {reader.line_num}: {e}") from None


def _getter(i: int | None) -> Callable[[list[str]], str | None]:
    """The reader of one column of a row (None for a column the file does not have)."""
    if i is None:
        return lambda row: None
    return lambda row: row[i] if i < len(row) else None


def _chain_first(first: str, rest: Iterable[str]) -> Iterator[str]:
    yield first
    yield from rest


# --------------------------------------------------------------------------- usage JSONL


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        if isinstance(obj, dict) and obj.get(name) is not None:
            return obj[name]
    return None


def usage_record(obj: Any, where: str = "") -> Record | None:
    """The request one JSON object of a usage log stands for (None: not a usage line).

    Example:
        >>> from tokensieve.analyze.sources import usage_record
        >>> r = usage_record({"type": "message", "model": "claude-x", "stop_reason": "max_tokens",
        ...                   "usage": {"input_tokens": 20, "cache_read_input_tokens": 9000, "output_tokens": 4096}})
        >>> r.input_tokens, r.cached_tokens, r.hit_max
        (9020, 9000, True)
    """
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    envelope = obj
    response = _get(obj, "response", "body", "result", "message")
    body = response if isinstance(response, dict) else obj
    outer = body
    while isinstance(body.get("body"), dict):  # OpenAI Batch output: {"response": {"status_code", "body": {...}}}
        body = body["body"]
    error = _get(body, "error") or _get(obj, "error")
    # An HTTP status beside the body; a Responses object's own "status" is a word
    # ("completed", "incomplete"), read as ok.
    code = _get(obj, "status_code", "http_status", "status")
    if code is None and outer is not obj:
        code = _get(outer, "status_code")
    status: Status = "ok"
    if error is not None:
        kind = error.get("type") or error.get("code") if isinstance(error, dict) else error
        status = _status(kind)
        if status == "ok":
            status = "error"
    if code is not None and _status(code) != "ok":
        status = _status(code)
    usage = _get(body, "usage", "usage_metadata")
    if usage is None and any(k in body for k in ("input_tokens", "prompt_tokens", "output_tokens", "completion_tokens")):
        usage = body
    if usage is None and status == "ok":
        return None
    if usage is not None and not isinstance(usage, dict):
        raise ValueError(f"usage: expected an object, got {type(usage).__name__}")
    usage = usage or {}
    inp = _int(_get(usage, "input_tokens", "prompt_tokens", "prompt_token_count"), "input_tokens")
    creation = _int(usage.get("cache_creation_input_tokens"), "cache_creation_input_tokens")
    read = usage.get("cache_read_input_tokens")
    cached: int | None
    if read is not None:  # Anthropic: cache reads and writes come on top of input_tokens
        cached = _int(read, "cache_read_input_tokens")
        inp += cached + creation
    else:
        inp += creation
        details = _get(usage, "prompt_tokens_details", "input_tokens_details")
        cached = _opt_int(details.get("cached_tokens"), "cached_tokens") if isinstance(details, dict) else None
        if cached is None:
            cached = _opt_int(usage.get("cached_content_token_count"), "cached_content_token_count")
    out = _int(_get(usage, "output_tokens", "completion_tokens", "candidates_token_count"), "output_tokens")
    finish: Any = _get(body, "stop_reason", "finish_reason")
    choices = body.get("choices")
    if finish is None and isinstance(choices, list):
        finish = [c.get("finish_reason") for c in choices if isinstance(c, dict) and c.get("finish_reason")]
        finish = finish or None
    incomplete = body.get("incomplete_details")
    if finish is None and isinstance(incomplete, dict):
        finish = incomplete.get("reason")
    ts = parse_timestamp(_get(envelope, "timestamp", "time", "ts", "created_at", "created") or _get(body, "created_at", "created"))
    max_tokens = _get(envelope, "max_tokens", "max_output_tokens", "max_completion_tokens")
    request = envelope.get("request")
    if max_tokens is None and isinstance(request, dict):
        max_tokens = _get(request, "max_tokens", "max_output_tokens", "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _get(body, "max_output_tokens")  # Responses echo the request's limit
    return Record(
        ts,
        "request",
        str(_get(envelope, "model") or _get(body, "model") or ""),
        inp,
        out,
        cached,
        _str(_get(envelope, "session_id", "session", "conversation_id", "thread_id")),
        _str(_get(envelope, "request_id", "custom_id") or _get(body, "id")),
        status,
        _task(_get(envelope, "task", "task_class")),
        _opt_int(max_tokens, "max_tokens"),
        _hit(finish),
    )


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def read_usage_jsonl(path: str) -> Iterator[Record]:
    """The requests of a JSON-lines log of OpenAI / Anthropic responses or usage objects
    (lines that carry no usage and no error are skipped)."""
    for number, obj in _json_lines(path):
        try:
            record = usage_record(obj)
        except (ValueError, TypeError, AttributeError) as e:
            raise LogFormatError(f"{path}: line {number}: {e}") from None
        if record is not None:
            yield record


# --------------------------------------------------------------------------- spans


def _otlp_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_otlp_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def _attributes(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, list):  # OTLP: [{"key": ..., "value": {"intValue": ...}}]
        return {str(a.get("key")): _otlp_value(a.get("value")) for a in raw if isinstance(a, dict)}
    if isinstance(raw, str):  # a Logfire query export may carry the attributes as JSON text
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def _nanos(value: Any) -> float | None:
    """Seconds from OTLP's ``*UnixNano`` (a number or a string of one): nanoseconds by
    definition, whatever their size (the size heuristic of :func:`parse_timestamp` would
    take a time near 1970 for seconds)."""
    if value is None or value == "":
        return None
    try:
        return int(value) / 1e9
    except (TypeError, ValueError):
        raise ValueError(f"startTimeUnixNano: expected nanoseconds, got {value!r}") from None


def _spans(obj: Any) -> Iterator[dict[str, Any]]:
    """The spans of one JSON line, each as ``{name, attributes, start, trace}``."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    resource_spans = obj.get("resourceSpans", obj.get("resource_spans"))
    if resource_spans is not None:
        for rs in resource_spans or ():
            for ss in rs.get("scopeSpans", rs.get("scope_spans")) or ():
                for span in ss.get("spans") or ():
                    yield {
                        "name": span.get("name"),
                        "attributes": _attributes(span.get("attributes")),
                        "start": _nanos(span.get("startTimeUnixNano", span.get("start_time_unix_nano"))),
                        "trace": span.get("traceId", span.get("trace_id")),
                    }
        return
    context = obj.get("context")
    yield {
        "name": obj.get("span_name", obj.get("name")),
        "attributes": _attributes(obj.get("attributes")),
        "start": obj.get("start_timestamp", obj.get("start_time")) or _nanos(obj.get("startTimeUnixNano")),
        "trace": obj.get("trace_id") or (context.get("trace_id") if isinstance(context, dict) else None),
    }


_SESSION_KEYS = ("session.id", "session_id", "gen_ai.conversation.id", "conversation_id")


def span_record(span: Mapping[str, Any]) -> Record | None:
    """The record of one span (None: a span that says nothing about usage).

    Example:
        >>> from tokensieve.analyze.sources import span_record
        >>> span_record({"name": "capacity_warning", "start": "2026-11-02T09:00:00Z",
        ...              "attributes": {"limit_name": "tokens_per_day", "model": "cerebras:x"}}).limit_name
        'tokens_per_day'
    """
    name = span.get("name")
    a = span["attributes"]
    if a.get("logfire.span_type") == "pending_span":
        return None  # logfire exports a span's start too; the finished span carries the outcome
    ts = parse_timestamp(span.get("start"))
    model = str(a.get("model") or a.get("gen_ai.response.model") or a.get("gen_ai.request.model") or "")
    session = _str(next((a[k] for k in _SESSION_KEYS if a.get(k) is not None), None) or span.get("trace"))
    if name == "compaction":
        return Record(
            ts,
            "compaction",
            model,
            _int(a.get("tokens_after"), "tokens_after"),
            session=session,
            task=_task(a.get("task")),
            max_tokens=_opt_int(a.get("max_output_tokens"), "max_output_tokens"),
            tokens_before=_opt_int(a.get("tokens_before"), "tokens_before"),
        )
    if name == "capacity_warning":
        return Record(ts, "capacity_warning", model, session=session, limit_name=_str(a.get("limit_name")))
    if name == "rate_limit":
        return Record(ts, "request", model, session=session, status="rate_limited")
    if name in ("failover", "budget_blocked"):
        return Record(ts, name, str(a.get("from_model") or model), session=session, task=_task(a.get("task")))
    if "gen_ai.usage.input_tokens" in a or "gen_ai.usage.output_tokens" in a:
        cached = a.get("gen_ai.usage.cache_read_input_tokens", a.get("gen_ai.usage.details.cache_read_tokens"))
        return Record(
            ts,
            "request",
            model,
            _int(a.get("gen_ai.usage.input_tokens"), "gen_ai.usage.input_tokens"),
            _int(a.get("gen_ai.usage.output_tokens"), "gen_ai.usage.output_tokens"),
            _opt_int(cached, "cache_read_input_tokens"),
            session=session,
            status="error" if a.get("error.type") else "ok",
            max_tokens=_opt_int(a.get("gen_ai.request.max_tokens"), "gen_ai.request.max_tokens"),
            hit_max=_hit(a.get("gen_ai.response.finish_reasons")),
        )
    return None


def read_spans(path: str) -> Iterator[Record]:
    """The records of a span export (tokensieve's events and compactions, model requests)."""
    for number, obj in _json_lines(path):
        try:
            for span in _spans(obj):
                record = span_record(span)
                if record is not None:
                    yield record
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            raise LogFormatError(f"{path}: line {number}: {e}") from None


# --------------------------------------------------------------------------- entry point


def read_source(path: str, format: SourceFormat | None = None, *, columns: Mapping[str, str] | None = None) -> Iterator[Record]:
    """Records of a log file, streamed, in the file's order (the ledger's: by time).

    Args:
        path: the log (``.gz`` is read through gzip).
        format: ``"sqlite"``, ``"csv"``, ``"usage"`` or ``"spans"``; None detects it
            (:func:`detect_format`).
        columns: for CSV, field -> header names that override the defaults.

    Raises:
        LogFormatError: the file cannot be read as that format (naming file and line).
        OSError: the file cannot be opened.
    """
    fmt = format or detect_format(path)
    if fmt == "sqlite":
        return read_sqlite(path)
    if fmt == "csv":
        return read_csv(path, columns)
    if fmt == "usage":
        return read_usage_jsonl(path)
    if fmt == "spans":
        return read_spans(path)
    raise LogFormatError(f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}")
