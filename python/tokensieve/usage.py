"""Capacity and usage tracking: :class:`UsageTracker`.

Record the usage of every model request; the tracker knows the tokens and requests of
the current minute and day against the limits of the model's :class:`BudgetConfig`,
warns (``capacity_warning``) at 80% of any limit, counts consecutive HTTP 429 answers
with a backoff suggestion, proposes a failover model when warnings accumulate, and
routes workloads to models. :meth:`UsageTracker.select` acts on all of it: it picks the
model for a request (the route of its task, then the failover chain), fails over before
the limits are hit and fails back after a quiet cool-down.

State lives in SQLite (the standard library's ``sqlite3``): a database file when a
``path`` is given, shared by every process of one agent and kept across restarts (WAL
mode, a busy timeout, one short ``BEGIN IMMEDIATE`` transaction per write); in memory
otherwise. The failover state (which models traffic moved away from, since when, who
probes a model's return) lives in the same database, so the processes sharing it fail
over together and come back one probe at a time, not in a stampede. Windows are rolling: the last 60 seconds and the last 24 hours (not calendar
days), so a day's count never undercounts whatever a provider's reset time is. Rows older
than a day are pruned.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tokensieve import telemetry
from tokensieve.config import PRESETS, ROUTES, BudgetConfig, resolve_config
from tokensieve.errors import ConfigurationError, InputTypeError

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "LIMIT_NAMES",
    "WORKLOADS",
    "CapacityWarning",
    "Routing",
    "TokenUsage",
    "UsageStatus",
    "UsageTracker",
    "read_usage",
]

LimitName = Literal["context_window", "tokens_per_minute", "requests_per_minute", "tokens_per_day"]
#: The limits a tracker watches, in the order warnings are raised.
LIMIT_NAMES: tuple[LimitName, ...] = ("context_window", "tokens_per_minute", "requests_per_minute", "tokens_per_day")

#: The workload of a task class, for :meth:`UsageTracker.route`; other classes are ``"general"``.
WORKLOADS: dict[str, str] = {"CODE_GENERATION": "coding"}
DEFAULT_WORKLOAD = "general"

MINUTE = 60.0
DAY = 86_400.0
BACKOFF_START = 60.0
BACKOFF_MAX = 600.0
#: How long a process's claim to probe a failed-over model's return lasts: if its request
#: never reports back (a crash), another process may probe after this.
PROBE_LEASE = 120.0
#: The limits whose warnings keep a failed-over model down (a large request's
#: ``context_window`` warning says nothing about the provider's capacity).
_RATE_LIMIT_NAMES = ("tokens_per_minute", "requests_per_minute", "tokens_per_day")
_PRUNE_EVERY = 60.0


# --------------------------------------------------------------------------- usage objects


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """The usage of one request (or several: ``requests``), whatever format it came in.

    Example:
        >>> from tokensieve.usage import TokenUsage
        >>> TokenUsage(input_tokens=1_200, output_tokens=300).total_tokens
        1500
    """

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 1
    total: int | None = None

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens (or the reported total, if larger)."""
        both = self.input_tokens + self.output_tokens
        return both if self.total is None else max(both, self.total)


_INPUT_NAMES = ("input_tokens", "prompt_tokens", "request_tokens", "prompt_token_count")
_OUTPUT_NAMES = ("output_tokens", "completion_tokens", "response_tokens", "candidates_token_count")
_TOTAL_NAMES = ("total_tokens", "total_token_count")
# Anthropic reports cached input apart from input_tokens; these add to the input.
_EXTRA_INPUT_NAMES = ("cache_creation_input_tokens", "cache_read_input_tokens")


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputTypeError(f"usage {name}: expected a number, got {type(value).__name__}")
    if value != value or value < 0:
        raise InputTypeError(f"usage {name}: expected 0 or more, got {value!r}")
    return int(value)


def read_usage(usage: Any) -> TokenUsage:
    """Read a request's usage from any supported format (duck-typed, nothing imported).

    Accepted: pydantic-ai ``RequestUsage`` / ``RunUsage`` (``input_tokens``,
    ``output_tokens``, ``requests``); OpenAI chat usage (``prompt_tokens``,
    ``completion_tokens``, ``total_tokens``); OpenAI Responses usage (``input_tokens``,
    ``output_tokens``); Anthropic usage (``input_tokens``, ``output_tokens``, plus
    ``cache_creation_input_tokens`` and ``cache_read_input_tokens``, counted as input);
    Gemini ``usage_metadata`` (``prompt_token_count``, ``candidates_token_count``,
    ``total_token_count``); any of these as a dict; a number (input tokens); or a pair
    ``(input_tokens, output_tokens)``. A usage with tokens but ``requests == 0`` (a
    pydantic-ai ``RunUsage`` read before the request was committed) counts as one request.

    Example:
        >>> from tokensieve.usage import read_usage
        >>> read_usage({"prompt_tokens": 900, "completion_tokens": 100, "total_tokens": 1000})
        TokenUsage(input_tokens=900, output_tokens=100, requests=1, total=1000)
        >>> read_usage({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2000}).input_tokens
        2010
        >>> read_usage((1200, 300)).total_tokens
        1500
    """
    if isinstance(usage, TokenUsage):
        return usage
    if isinstance(usage, (int, float)) and not isinstance(usage, bool):
        return TokenUsage(input_tokens=_count(usage, "input_tokens"))
    if isinstance(usage, (tuple, list)):
        if len(usage) != 2:
            raise InputTypeError(f"usage: expected a pair (input_tokens, output_tokens), got {len(usage)} items")
        return TokenUsage(_count(usage[0], "input_tokens"), _count(usage[1], "output_tokens"))
    if usage is None or isinstance(usage, (str, bytes)):
        raise InputTypeError(f"usage: expected a usage object, a mapping or numbers, got {type(usage).__name__}")

    if isinstance(usage, Mapping):
        get: Callable[[str], Any] = usage.get
    else:

        def get(name: str) -> Any:
            return getattr(usage, name, None)

    def first(names: tuple[str, ...]) -> tuple[str, Any]:
        for name in names:
            value = get(name)
            if value is not None:
                return name, value
        return names[0], None

    in_name, inp = first(_INPUT_NAMES)
    out_name, out = first(_OUTPUT_NAMES)
    total_name, total = first(_TOTAL_NAMES)
    if inp is None and out is None and total is None:
        raise InputTypeError(
            f"usage: {type(usage).__name__} has no token counts "
            "(input_tokens/output_tokens, prompt_tokens/completion_tokens or total_tokens)"
        )
    input_tokens = 0 if inp is None else _count(inp, in_name)
    for name in _EXTRA_INPUT_NAMES:
        extra = get(name)
        if extra is not None:
            input_tokens += _count(extra, name)
    output_tokens = 0 if out is None else _count(out, out_name)
    total_tokens = None if total is None else _count(total, total_name)
    requests = get("requests")
    requests = 1 if requests is None else _count(requests, "requests")
    if requests == 0 and (input_tokens or output_tokens or total_tokens):
        requests = 1
    return TokenUsage(input_tokens, output_tokens, requests, total_tokens)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CapacityWarning:
    """A limit at or above the warning fraction (80% by default) after a request.

    Attributes:
        limit_name: ``"context_window"`` (the request's input tokens against the model's
            input window), ``"tokens_per_minute"``, ``"requests_per_minute"`` or
            ``"tokens_per_day"``.
        used: tokens (or requests) used in the window; for ``context_window`` the input
            tokens of the request.
        limit: the limit.
        fraction: ``used / limit``.
        model: the model the limit is for (None: the tracker has no model).
        timestamp: when it was raised (seconds since the epoch, the tracker's clock).

    Example:
        >>> from tokensieve.usage import CapacityWarning
        >>> print(CapacityWarning("tokens_per_day", 20_000_000, 24_000_000, 20 / 24, "cerebras:llama-3.3-70b"))
        tokens_per_day at 83% (20,000,000 of 24,000,000) for cerebras:llama-3.3-70b
    """

    limit_name: LimitName
    used: int
    limit: int
    fraction: float
    model: str | None = None
    timestamp: float = 0.0

    def __str__(self) -> str:
        model = f" for {self.model}" if self.model else ""
        return f"{self.limit_name} at {self.fraction:.0%} ({self.used:,} of {self.limit:,}){model}"


@dataclass(frozen=True, slots=True)
class UsageStatus:
    """A snapshot of a tracker (see :meth:`UsageTracker.status`).

    Attributes:
        model: the current model.
        minute_tokens, minute_requests: tokens and requests of the last 60 seconds.
        day_tokens, day_requests: tokens and requests of the last 24 hours.
        last_input_tokens: input tokens of the last single request recorded by this
            tracker (None: none yet).
        limits: each limit's value (None: not tracked), by limit name.
        fractions: each tracked limit's used fraction, by limit name.
        consecutive_429s: HTTP 429 answers since the last success.
        recent_warnings: requests that raised capacity warnings in the failover window.
        failover: what :meth:`UsageTracker.should_failover` answers.

    Example:
        >>> from tokensieve.usage import UsageTracker
        >>> UsageTracker("groq:llama-3.1-8b-instant").status().limits["tokens_per_minute"]
        6000
    """

    model: str | None
    minute_tokens: int
    minute_requests: int
    day_tokens: int
    day_requests: int
    last_input_tokens: int | None
    limits: Mapping[str, int | None]
    fractions: Mapping[str, float]
    consecutive_429s: int
    recent_warnings: int
    failover: str | None


RoutingReason = Literal["route", "default", "failover", "probe"]


@dataclass(frozen=True, slots=True)
class Routing:
    """Where a request goes, and why (see :meth:`UsageTracker.select`).

    Attributes:
        model: the model to send the request to.
        reason: ``"route"`` (the model the task's route names, healthy), ``"default"``
            (no route matched: the caller's own model, healthy), ``"failover"`` (the
            preferred model is failed over: the next healthy one of the chain) or
            ``"probe"`` (the preferred model's cool-down is over: this request tries it;
            a success without capacity warnings fails back for every process).
        task: the task class of the request (``"CODE_GENERATION"``).
        workload: its workload (``"coding"``, ``"general"``).
        preferred: the model the route (or the default) names.
        skipped: the models passed over because traffic failed over from them, in chain
            order.
        detail: the decision as a sentence, with the failover's cause.

    Example:
        >>> from tokensieve.usage import UsageTracker
        >>> tracker = UsageTracker(routes={"coding": "zai:glm-4.7"})
        >>> routing = tracker.select("CODE_GENERATION", default="moonshot:kimi-k2.5")
        >>> routing.model, routing.reason
        ('zai:glm-4.7', 'route')
        >>> print(routing)
        CODE_GENERATION (coding) -> zai:glm-4.7: the coding route
    """

    model: str
    reason: RoutingReason
    task: str
    workload: str
    preferred: str
    skipped: tuple[str, ...] = ()
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.task} ({self.workload}) -> {self.model}: {self.detail}"


# --------------------------------------------------------------------------- storage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    requests INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
CREATE INDEX IF NOT EXISTS usage_model_ts ON usage (model, ts);
CREATE TABLE IF NOT EXISTS capacity_warnings (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    usage_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    limit_name TEXT NOT NULL,
    used INTEGER NOT NULL,
    lim INTEGER NOT NULL,
    fraction REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS capacity_warnings_model_ts ON capacity_warnings (model, ts);
CREATE TABLE IF NOT EXISTS rate_limits (
    model TEXT PRIMARY KEY,
    consecutive INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failover_state (
    model TEXT PRIMARY KEY,         -- a model traffic failed over from (and maybe back to)
    state TEXT NOT NULL,            -- 'down', 'probing' (one request tries it) or 'up' (failed back)
    to_model TEXT NOT NULL,         -- where its traffic went
    reason TEXT NOT NULL,           -- capacity_warnings | rate_limits
    since REAL NOT NULL,            -- when it went down, or came back up
    quiet_since REAL NOT NULL,      -- its last warning or 429 while down: the cool-down starts here
    probe_until REAL NOT NULL       -- the probing process's lease
);
"""
# Version 2 added failover_state; every statement is IF NOT EXISTS, so upgrading a
# version 1 database is running the schema again.
_SCHEMA_VERSION = 2


class _Store:
    """One SQLite connection (reopened after a fork), used under a lock, one short
    transaction at a time."""

    __slots__ = ("_conn", "_lock", "_pid", "path")

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        with self.transaction(write=True):
            pass

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        conn = sqlite3.connect(
            self.path if self.path is not None else ":memory:",
            timeout=30.0,
            isolation_level=None,  # transactions are explicit
            check_same_thread=False,  # guarded by self._lock
        )
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            if self.path is not None:
                # Switching to WAL needs a moment alone with the file: retry while
                # another process is creating it.
                for attempt in range(50):
                    try:
                        conn.execute("PRAGMA journal_mode = WAL").fetchone()
                        break
                    except sqlite3.OperationalError:
                        if attempt == 49:
                            raise
                        time.sleep(0.02)
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > _SCHEMA_VERSION:
                    raise ConfigurationError(
                        f"usage database {self.path!r} has schema version {version}, newer than this "
                        f"tokensieve's ({_SCHEMA_VERSION})"
                    )
                if version < _SCHEMA_VERSION:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        if self._conn is None or (pid != self._pid and self.path is not None):
            # A connection must not cross a fork: the child opens its own (the parent's
            # is abandoned, not closed, so the parent's stays intact).
            self._conn = self._connect()
            self._pid = pid
        return self._conn

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


# --------------------------------------------------------------------------- the tracker


def _task_name(task: Any) -> str:
    task = getattr(task, "task", task)  # a TaskClassification carries its class in .task
    value = getattr(task, "value", task)
    if not isinstance(value, str):
        raise InputTypeError(f"task: expected a task class name or enum member, got {type(task).__name__}")
    return value.upper()


def _resolve(config: BudgetConfig | str | None) -> BudgetConfig:
    if isinstance(config, str) and config not in PRESETS:
        return BudgetConfig.for_model(config)
    return resolve_config(config, {})


class UsageTracker:
    """Tracks a model's usage against its limits, shared by the processes of one agent.

    Args:
        config: the budget whose limits apply (``max_input_tokens`` for the context
            window, ``tokens_per_minute``, ``requests_per_minute``, ``tokens_per_day``):
            a :class:`BudgetConfig`, a preset name (``"cerebras"``), any other string as a
            model name (``"groq:llama-3.1-8b-instant"``, through
            :meth:`BudgetConfig.for_model`), or None for the defaults. A config with a
            ``model`` applies to that model and its name is the current model; other
            models (failover targets) get :meth:`BudgetConfig.for_model` of their name.
            A config without a model applies to every model.
        path: an SQLite database file to keep the state in, shared by every tracker (in
            any process) opened on it and kept across restarts (``~`` is expanded, missing
            directories are created). None: in memory, this tracker only.
        failover: the failover chain, in order; :meth:`should_failover` proposes the model
            after the current one, :meth:`select` moves along it.
        routes: workload routing for :meth:`route` and :meth:`select`: task class
            (``"CODE_GENERATION"``, ``"TOOL_CALL"``), workload (``"coding"``,
            ``"general"``) or ``"*"`` -> model; or the name of a route set shipped in
            ``presets.json`` (``"groq-small-for-tool-calls"``, see ``ROUTES``). None: no
            routes (the caller's model serves every task).
        warn_at: the fraction of a limit from which ``capacity_warning`` is raised.
        failover_after: failover is proposed once this many requests raised capacity
            warnings within ``failover_window`` seconds, or after this many consecutive
            HTTP 429s.
        failover_window: seconds within which capacity warnings count as recent.
        failback: the cool-down, in seconds: a failed-over model is tried again (one
            probe request, whichever process claims it first) once it has had no
            capacity warning or 429 for this long and its minute and day windows are
            below ``warn_at``; the probe's success without warnings fails back.
        clock: seconds since the epoch (inject a fake one in tests).

    Usage is kept per model: windows, warnings and 429 counts are those of the current
    model (or of ``model=``); a tracker with no model counts everything together. The
    minute is the last 60 seconds and the day the last 24 hours (rolling).

    Example:
        >>> from tokensieve.usage import UsageTracker
        >>> now = [1_000_000.0]
        >>> tracker = UsageTracker("groq:llama-3.1-8b-instant", failover=["cerebras:llama-3.3-70b"],
        ...                        clock=lambda: now[0])
        >>> tracker.record({"prompt_tokens": 2_000, "completion_tokens": 500})
        []
        >>> tracker.minute_tokens, tracker.minute_requests
        (2500, 1)
        >>> [str(w) for w in tracker.record(input_tokens=2_300, output_tokens=200)]
        ['tokens_per_minute at 83% (5,000 of 6,000) for groq:llama-3.1-8b-instant']
        >>> now[0] += 61  # a minute later the minute window is empty again
        >>> tracker.minute_tokens, tracker.day_tokens
        (0, 5000)
        >>> tracker.record_rate_limit(), tracker.record_rate_limit(), tracker.consecutive_429s
        (60.0, 120.0, 2)
    """

    def __init__(
        self,
        config: BudgetConfig | str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        failover: Sequence[str] = (),
        routes: Mapping[str, str] | str | None = None,
        warn_at: float = 0.8,
        failover_after: int = 3,
        failover_window: float = 300.0,
        failback: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = _resolve(config)
        if isinstance(failover, str):
            raise InputTypeError("failover: expected a sequence of model names, got a single string")
        self.failover_chain: tuple[str, ...] = tuple(failover)
        if not all(isinstance(m, str) and m for m in self.failover_chain):
            raise InputTypeError("failover: every model must be a non-empty string")
        self.routes: dict[str, str] = {}
        if isinstance(routes, str):
            if routes not in ROUTES:
                raise ConfigurationError(f"unknown route set {routes!r}; route sets: {', '.join(sorted(ROUTES))}")
            routes = ROUTES[routes]
        for key, model in (routes or {}).items():
            if not isinstance(model, str) or not model:
                raise InputTypeError(f"routes[{key!r}]: expected a model name, got {model!r}")
            self.routes[_task_name(key).lower()] = model
        if isinstance(warn_at, bool) or not isinstance(warn_at, (int, float)) or not 0 < warn_at <= 1:
            raise ConfigurationError(f"warn_at must be in (0, 1], got {warn_at!r}")
        if isinstance(failover_after, bool) or not isinstance(failover_after, int) or failover_after < 1:
            raise ConfigurationError(f"failover_after must be a positive int, got {failover_after!r}")
        if isinstance(failover_window, bool) or not isinstance(failover_window, (int, float)) or failover_window <= 0:
            raise ConfigurationError(f"failover_window must be a positive number, got {failover_window!r}")
        if isinstance(failback, bool) or not isinstance(failback, (int, float)) or not failback >= 0:
            raise ConfigurationError(f"failback must be 0 or more seconds, got {failback!r}")
        self.warn_at = float(warn_at)
        self.failover_after = failover_after
        self.failover_window = float(failover_window)
        self.failback = float(failback)
        self.clock = clock
        self.path: str | None = None if path is None else os.path.expanduser(os.fspath(path))
        if self.path == ":memory:":
            self.path = None
        if self.path is not None:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
        #: The current model: where requests go, whose usage the properties show.
        self.model: str | None = self.config.model
        self._configs: dict[str, BudgetConfig] = {}
        self._last_input: dict[str, int] = {}
        self._next_prune = 0.0
        self._store = _Store(self.path)
        self._prune_if_due(force=True)

    # ----------------------------------------------------------------- helpers

    def __repr__(self) -> str:
        where = self.path if self.path is not None else ":memory:"
        return f"UsageTracker(model={self.model!r}, path={where!r})"

    def __enter__(self) -> UsageTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection (an in-memory tracker loses its state).

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> with UsageTracker() as tracker:
            ...     tracker.record(100)
            []
        """
        self._store.close()

    def config_for(self, model: str | None = None) -> BudgetConfig:
        """The budget whose limits apply to ``model`` (default: the current model).

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> tracker = UsageTracker("cerebras:llama-3.3-70b")
            >>> tracker.config_for().tokens_per_day, tracker.config_for("groq:llama-3.1-8b").tokens_per_minute
            (24000000, 6000)
        """
        model = self.model if model is None else model
        if model is None or self.config.model is None or model == self.config.model:
            return self.config
        config = self._configs.get(model)
        if config is None:
            config = self._configs[model] = BudgetConfig.for_model(model)
        return config

    def _key(self, model: str | None) -> str | None:
        return self.model if model is None else model

    @staticmethod
    def _where(key: str | None) -> tuple[str, tuple[Any, ...]]:
        return ("", ()) if key is None else (" AND model = ?", (key,))

    def _prune_if_due(self, *, force: bool = False) -> None:
        now = self.clock()
        if not force and now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY
        with self._store.transaction(write=True) as conn:
            self._prune(conn, now)

    @staticmethod
    def _prune(conn: sqlite3.Connection, now: float) -> None:
        cutoff = now - DAY
        conn.execute("DELETE FROM usage WHERE ts <= ?", (cutoff,))
        conn.execute("DELETE FROM capacity_warnings WHERE ts <= ?", (cutoff,))

    @staticmethod
    def _windows(conn: sqlite3.Connection, now: float, key: str | None) -> tuple[int, int, int, int]:
        where, params = UsageTracker._where(key)
        row = conn.execute(
            "SELECT COALESCE(SUM(CASE WHEN ts > ? THEN total_tokens END), 0),"
            " COALESCE(SUM(CASE WHEN ts > ? THEN requests END), 0),"
            " COALESCE(SUM(total_tokens), 0), COALESCE(SUM(requests), 0)"
            f" FROM usage WHERE ts > ?{where}",
            (now - MINUTE, now - MINUTE, now - DAY, *params),
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    def _recent_warnings(self, conn: sqlite3.Connection, now: float, key: str | None) -> int:
        # Warnings from before the model's failback were answered by the failover already.
        start = now - self.failover_window
        if key is not None:
            row = conn.execute("SELECT since FROM failover_state WHERE model = ? AND state = 'up'", (key,)).fetchone()
            if row is not None:
                start = max(start, float(row[0]))
        where, params = self._where(key)
        row = conn.execute(
            f"SELECT COUNT(DISTINCT usage_id) FROM capacity_warnings WHERE ts > ?{where}",
            (start, *params),
        ).fetchone()
        return int(row[0])

    @staticmethod
    def _state(conn: sqlite3.Connection, model: str) -> tuple[str, str, str, float, float, float] | None:
        row = conn.execute(
            "SELECT state, to_model, reason, since, quiet_since, probe_until FROM failover_state WHERE model = ?",
            (model,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], float(row[3]), float(row[4]), float(row[5]))

    @staticmethod
    def _mark_down(conn: sqlite3.Connection, model: str, to_model: str, reason: str, now: float) -> None:
        # The cool-down counts from the model's last trouble (a 429 or a rate warning), not
        # from the moment a request noticed it.
        row = conn.execute(
            "SELECT MAX(ts) FROM (SELECT ts FROM rate_limits WHERE model = ?1 UNION ALL"
            " SELECT MAX(ts) FROM capacity_warnings WHERE model = ?1"
            f" AND limit_name IN {_RATE_LIMIT_NAMES!r})",
            (model,),
        ).fetchone()
        quiet_since = now if row is None or row[0] is None else min(float(row[0]), now)
        conn.execute(
            "INSERT INTO failover_state (model, state, to_model, reason, since, quiet_since, probe_until)"
            " VALUES (?, 'down', ?, ?, ?, ?, 0) ON CONFLICT (model) DO UPDATE SET state = 'down',"
            " to_model = excluded.to_model, reason = excluded.reason, since = excluded.since,"
            " quiet_since = excluded.quiet_since, probe_until = 0",
            (model, to_model, reason, now, quiet_since),
        )

    def _below_warn_at(self, conn: sqlite3.Connection, now: float, model: str) -> bool:
        """Whether the model's minute and day windows are all below ``warn_at``."""
        config = self.config_for(model)
        minute_tokens, minute_requests, day_tokens, _ = self._windows(conn, now, model)
        used = {"tokens_per_minute": minute_tokens, "requests_per_minute": minute_requests, "tokens_per_day": day_tokens}
        for name in _RATE_LIMIT_NAMES:
            limit = getattr(config, name)
            if limit is not None and used[name] / limit >= self.warn_at:
                return False
        return True

    @staticmethod
    def _consecutive_429s(conn: sqlite3.Connection, key: str | None) -> int:
        where, params = UsageTracker._where(key)
        row = conn.execute(f"SELECT COALESCE(MAX(consecutive), 0) FROM rate_limits WHERE 1{where}", params).fetchone()
        return int(row[0])

    # ----------------------------------------------------------------- recording

    def record(
        self,
        usage: Any = None,
        *,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        requests: int | None = None,
    ) -> list[CapacityWarning]:
        """Record a successful request's usage; returns the capacity warnings it raised.

        ``usage`` is anything :func:`read_usage` reads (pydantic-ai, OpenAI, Anthropic
        usage objects or dicts, a number of input tokens, a pair), or give the numbers by
        keyword. A success resets the model's count of consecutive 429s. Each limit at or
        above ``warn_at`` raises a :class:`CapacityWarning`, emitted as a
        ``capacity_warning`` event and remembered (for :meth:`should_failover`). The
        context window is checked against the input tokens of a single request (not of an
        aggregate such as a whole run's ``RunUsage``).

        Args:
            usage: the usage to record.
            model: the model that served the request (default: the current model).
            input_tokens, output_tokens, requests: the numbers, instead of ``usage``.

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> tracker = UsageTracker("cerebras:llama-3.3-70b")
            >>> [w.limit_name for w in tracker.record(input_tokens=42_000, output_tokens=800)]
            ['context_window']
        """
        keywords = {"input_tokens": input_tokens, "output_tokens": output_tokens, "requests": requests}
        given = {k: v for k, v in keywords.items() if v is not None}
        if usage is not None and given:
            raise InputTypeError("record(): give a usage object or keyword counts, not both")
        if usage is None:
            if not given:
                raise InputTypeError("record(): nothing to record (give a usage object or input_tokens=...)")
            usage = read_usage(given)
        else:
            usage = read_usage(usage)
        key = self._key(model)
        config = self.config_for(key)
        now = self.clock()
        warnings: list[CapacityWarning] = []
        with self._store.transaction(write=True) as conn:
            usage_id = conn.execute(
                "INSERT INTO usage (ts, model, input_tokens, output_tokens, total_tokens, requests)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now, key or "", usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.requests),
            ).lastrowid
            conn.execute("DELETE FROM rate_limits WHERE model = ?", (key or "",))
            minute_tokens, minute_requests, day_tokens, _ = self._windows(conn, now, key)
            used: dict[str, int] = {
                "tokens_per_minute": minute_tokens,
                "requests_per_minute": minute_requests,
                "tokens_per_day": day_tokens,
            }
            if usage.requests <= 1:
                used["context_window"] = usage.input_tokens
            for name in LIMIT_NAMES:
                limit = config.max_input_tokens if name == "context_window" else getattr(config, name)
                if limit is None or name not in used:
                    continue
                fraction = used[name] / limit
                if fraction >= self.warn_at:
                    warnings.append(CapacityWarning(name, used[name], limit, fraction, key, now))
            conn.executemany(
                "INSERT INTO capacity_warnings (ts, usage_id, model, limit_name, used, lim, fraction)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(now, usage_id, key or "", w.limit_name, w.used, w.limit, w.fraction) for w in warnings],
            )
            if usage.requests <= 1:
                self._last_input[key or ""] = usage.input_tokens
            failback = self._after_success(conn, key, warnings, now)
        for w in warnings:
            telemetry.capacity_warning(w.limit_name, used=w.used, limit=w.limit, fraction=w.fraction, model=w.model)
        if failback is not None:
            telemetry.failback(from_model=failback[0], to_model=key or "", down_seconds=failback[1])
        self._prune_if_due()
        return warnings

    def _after_success(
        self, conn: sqlite3.Connection, key: str | None, warnings: list[CapacityWarning], now: float
    ) -> tuple[str, float] | None:
        """A failed-over model's request succeeded: a probe without rate warnings fails
        back (returns ``(from_model, seconds down)``); a warning restarts the cool-down."""
        state = None if key is None else self._state(conn, key)
        if state is None or state[0] == "up":
            return None
        if any(w.limit_name in _RATE_LIMIT_NAMES for w in warnings):
            conn.execute(
                "UPDATE failover_state SET state = 'down', quiet_since = ?, probe_until = 0 WHERE model = ?",
                (now, key),
            )
            return None
        if state[0] != "probing":
            return None  # a request sent before the failover, finishing late
        conn.execute(
            "UPDATE failover_state SET state = 'up', since = ?, probe_until = 0 WHERE model = ?", (now, key)
        )
        return state[1], now - state[3]

    def record_rate_limit(self, *, model: str | None = None) -> float:
        """Record an HTTP 429 (rate limited) answer; returns the seconds to wait.

        The backoff doubles with each consecutive 429 of the model: 60, 120, 240, 480,
        then 600 s at most. A ``rate_limit`` event carries ``consecutive_429s``. The count
        is shared by every tracker on the same database and reset by :meth:`record`.

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> tracker = UsageTracker("cerebras")
            >>> [tracker.record_rate_limit() for _ in range(6)]
            [60.0, 120.0, 240.0, 480.0, 600.0, 600.0]
            >>> tracker.record(1_000)
            []
            >>> tracker.consecutive_429s
            0
        """
        key = self._key(model)
        now = self.clock()
        with self._store.transaction(write=True) as conn:
            conn.execute(
                "INSERT INTO rate_limits (model, consecutive, ts) VALUES (?, 1, ?)"
                " ON CONFLICT (model) DO UPDATE SET consecutive = consecutive + 1, ts = excluded.ts",
                (key or "", now),
            )
            count = int(conn.execute("SELECT consecutive FROM rate_limits WHERE model = ?", (key or "",)).fetchone()[0])
            # A 429 from a failed-over model (its probe, or a late request) restarts its cool-down.
            conn.execute(
                "UPDATE failover_state SET state = 'down', quiet_since = ?, probe_until = 0"
                " WHERE model = ? AND state <> 'up'",
                (now, key or ""),
            )
        backoff = min(BACKOFF_START * 2.0 ** min(count - 1, 32), BACKOFF_MAX)
        telemetry.rate_limit(consecutive_429s=count, backoff_seconds=backoff, model=key)
        return backoff

    # ----------------------------------------------------------------- reading

    def usage(self, model: str | None = None) -> tuple[int, int, int, int]:
        """``(minute_tokens, minute_requests, day_tokens, day_requests)`` of ``model``
        (default: the current model).

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> tracker = UsageTracker()
            >>> tracker.record(input_tokens=100, output_tokens=20, model="a")
            []
            >>> tracker.usage("a"), tracker.usage("b")
            ((120, 1, 120, 1), (0, 0, 0, 0))
        """
        with self._store.transaction(write=False) as conn:
            return self._windows(conn, self.clock(), self._key(model))

    @property
    def minute_tokens(self) -> int:
        """Tokens (input and output) of the current model in the last 60 seconds."""
        return self.usage()[0]

    @property
    def minute_requests(self) -> int:
        """Requests of the current model in the last 60 seconds."""
        return self.usage()[1]

    @property
    def day_tokens(self) -> int:
        """Tokens (input and output) of the current model in the last 24 hours."""
        return self.usage()[2]

    @property
    def day_requests(self) -> int:
        """Requests of the current model in the last 24 hours."""
        return self.usage()[3]

    @property
    def last_input_tokens(self) -> int | None:
        """Input tokens of the last single request of the current model recorded here."""
        return self._last_input.get(self.model or "")

    @property
    def consecutive_429s(self) -> int:
        """HTTP 429 answers for the current model since its last successful request."""
        with self._store.transaction(write=False) as conn:
            return self._consecutive_429s(conn, self.model)

    @property
    def warnings(self) -> list[CapacityWarning]:
        """The capacity warnings of the current model within the failover window, oldest
        first (from every process sharing the database).

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> tracker = UsageTracker("groq:llama-3.1-8b-instant")
            >>> _ = tracker.record(5_000)
            >>> [w.limit_name for w in tracker.warnings]
            ['tokens_per_minute']
        """
        where, params = self._where(self.model)
        with self._store.transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT limit_name, used, lim, fraction, model, ts FROM capacity_warnings"
                f" WHERE ts > ?{where} ORDER BY ts, id",
                (self.clock() - self.failover_window, *params),
            ).fetchall()
        return [CapacityWarning(r[0], int(r[1]), int(r[2]), float(r[3]), r[4] or None, float(r[5])) for r in rows]

    def status(self) -> UsageStatus:
        """A snapshot of the current model's windows, limits, warnings and 429s.

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> tracker = UsageTracker("cerebras")
            >>> _ = tracker.record(input_tokens=10_000, output_tokens=2_000)
            >>> status = tracker.status()
            >>> status.day_tokens, status.fractions["context_window"], status.fractions["tokens_per_day"]
            (12000, 0.2, 0.0005)
        """
        key = self.model
        config = self.config_for(key)
        now = self.clock()
        with self._store.transaction(write=False) as conn:
            minute_tokens, minute_requests, day_tokens, day_requests = self._windows(conn, now, key)
            recent = self._recent_warnings(conn, now, key)
            count_429 = self._consecutive_429s(conn, key)
            last_input = self._last_input.get(key or "")
        limits: dict[str, int | None] = {
            "context_window": config.max_input_tokens,
            "tokens_per_minute": config.tokens_per_minute,
            "requests_per_minute": config.requests_per_minute,
            "tokens_per_day": config.tokens_per_day,
        }
        used = {
            "context_window": last_input or 0,
            "tokens_per_minute": minute_tokens,
            "requests_per_minute": minute_requests,
            "tokens_per_day": day_tokens,
        }
        fractions = {name: used[name] / limit for name, limit in limits.items() if limit}
        return UsageStatus(
            model=key,
            minute_tokens=minute_tokens,
            minute_requests=minute_requests,
            day_tokens=day_tokens,
            day_requests=day_requests,
            last_input_tokens=last_input,
            limits=limits,
            fractions=fractions,
            consecutive_429s=count_429,
            recent_warnings=recent,
            failover=self._failover_target(recent, count_429),
        )

    # ----------------------------------------------------------------- failover and routing

    def _next_model(self) -> str | None:
        chain = self.failover_chain
        if self.model in chain:
            i = chain.index(self.model)
            return chain[i + 1] if i + 1 < len(chain) else None
        return next((m for m in chain if m != self.model), None)

    def _failover_target(self, recent_warnings: int, consecutive_429s: int) -> str | None:
        if recent_warnings < self.failover_after and consecutive_429s < self.failover_after:
            return None
        return self._next_model()

    def should_failover(self) -> str | None:
        """The model to move to, or None: failover is due once ``failover_after`` requests
        raised capacity warnings within ``failover_window`` seconds, or after
        ``failover_after`` consecutive 429s; the answer is the model after the current one
        in the failover chain (the first of the chain if the current model is not in it;
        None at the end of the chain). Nothing changes: see :meth:`fail_over`.

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> tracker = UsageTracker("groq:llama-3.1-8b-instant", failover=["cerebras:llama-3.3-70b"])
            >>> [tracker.record_rate_limit() for _ in range(2)] and tracker.should_failover() is None
            True
            >>> _ = tracker.record_rate_limit()
            >>> tracker.should_failover()
            'cerebras:llama-3.3-70b'
        """
        key = self.model
        now = self.clock()
        with self._store.transaction(write=False) as conn:
            recent = self._recent_warnings(conn, now, key)
            count_429 = self._consecutive_429s(conn, key)
        return self._failover_target(recent, count_429)

    def fail_over(self) -> str | None:
        """Move to the model :meth:`should_failover` proposes, if any, with a ``failover``
        event; returns the new model (None: no move).

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> tracker = UsageTracker("groq:llama-3.1-8b-instant", failover=["cerebras:llama-3.3-70b"],
            ...                        failover_after=1)
            >>> _ = tracker.record(5_500)
            >>> tracker.fail_over(), tracker.model
            ('cerebras:llama-3.3-70b', 'cerebras:llama-3.3-70b')
        """
        key = self.model
        now = self.clock()
        with self._store.transaction(write=True) as conn:
            recent = self._recent_warnings(conn, now, key)
            count_429 = self._consecutive_429s(conn, key)
            target = self._failover_target(recent, count_429)
            if target is None:
                return None
            reason = "capacity_warnings" if recent >= self.failover_after else "rate_limits"
            if key is not None:  # shared: select() in every process now passes it over
                self._mark_down(conn, key, target, reason, now)
        self.model = target
        telemetry.failover(
            from_model=key, to_model=target, reason=reason, recent_warnings=recent, consecutive_429s=count_429
        )
        return target

    def route(self, task: Any) -> str | None:
        """The model for a task's workload, from ``routes``, with a ``workload_routing``
        event; None if no route matches.

        ``task`` is a task class name (``"CODE_GENERATION"``), an enum member whose value
        is one (``TaskType.CODE_GENERATION``), or a classification with a ``.task``. Routes
        are looked up by the task class, then its workload (``"coding"`` for
        CODE_GENERATION, ``"general"`` for every other class, see ``WORKLOADS``), then
        ``"*"``; case does not matter.

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> tracker = UsageTracker(routes={"coding": "zai:glm-4.7", "*": "moonshot:kimi-k2.5"})
            >>> tracker.route("CODE_GENERATION"), tracker.route("planning")
            ('zai:glm-4.7', 'moonshot:kimi-k2.5')
        """
        name, workload, _, model = self._route_for(task)
        if model is not None:
            telemetry.workload_routing(task=name, workload=workload, model=model)
        return model

    def _route_for(self, task: Any) -> tuple[str, str, str | None, str | None]:
        """(task class, workload, the matching route's key, its model)."""
        name = _task_name(task)
        workload = WORKLOADS.get(name, DEFAULT_WORKLOAD)
        for key in (name.lower(), workload, "*"):
            model = self.routes.get(key)
            if model is not None:
                return name, workload, key, model
        return name, workload, None, None

    def preferred(self, task: Any = "UNKNOWN", *, default: str | None = None) -> str | None:
        """The model :meth:`select` starts from for ``task``: its route, else ``default``,
        else the current model (None: none of them). No event, no state read or changed.

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> tracker = UsageTracker(routes={"coding": "zai:glm-4.7"})
            >>> tracker.preferred("CODE_GENERATION"), tracker.preferred("REVIEW", default="moonshot:kimi-k2.5")
            ('zai:glm-4.7', 'moonshot:kimi-k2.5')
        """
        return self._route_for(task)[3] or default or self.model

    @property
    def routing_enabled(self) -> bool:
        """Whether :meth:`select` has anything to decide: routes or a failover chain.

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> UsageTracker().routing_enabled, UsageTracker(failover=["groq:llama-3.3-70b"]).routing_enabled
            (False, True)
        """
        return bool(self.routes or self.failover_chain)

    def _candidates(self, preferred: str) -> list[str]:
        """``preferred``, then the failover chain after it (all of it if it is not in it)."""
        chain = self.failover_chain
        rest = chain[chain.index(preferred) + 1 :] if preferred in chain else chain
        out = [preferred]
        for model in rest:
            if model not in out:
                out.append(model)
        return out

    def select(self, task: Any = "UNKNOWN", *, default: str | None = None) -> Routing:
        """Pick the model for a request, acting on the routes and the failover state.

        The preferred model is the task's route (task class, then workload, then
        ``"*"``), else ``default`` (the caller's own model), else the current model. Then
        the failover chain after it is walked, in one transaction on the shared ledger:

        - a model that is due to fail over (:meth:`should_failover`'s rule: capacity
          warnings in ``failover_after`` requests within ``failover_window``, or
          ``failover_after`` consecutive 429s) is marked failed over, for every process
          sharing the database, with a ``failover`` event, and passed over; the last
          model of the chain never is (there is nowhere to go);
        - a failed-over model is passed over until its cool-down (``failback`` seconds
          without a rate warning or 429, windows below ``warn_at``) is over; then one
          request, in one process, probes it (``reason="probe"``); the probe's success
          without warnings fails back (a ``failback`` event), a warning or a 429 restarts
          the cool-down;
        - the first other model serves.

        Every decision is a ``workload_routing`` event (task, workload, model, with the
        ``reason`` and the ``preferred`` model). Record the request's outcome with
        :meth:`record` / :meth:`record_rate_limit` and ``model=routing.model``.

        Args:
            task: the task class (name, enum member or classification), for the routes.
            default: the model when no route matches (the caller's own).

        Example:
            >>> from tokensieve.usage import UsageTracker
            >>> now = [1_000_000.0]
            >>> tracker = UsageTracker("groq:llama-3.1-8b-instant", failover=["cerebras:llama-3.3-70b"],
            ...                        failover_after=1, failback=600, clock=lambda: now[0])
            >>> tracker.select("TOOL_CALL").model
            'groq:llama-3.1-8b-instant'
            >>> _ = tracker.record(5_500)  # 92% of the minute's 6,000 tokens: a capacity warning
            >>> routing = tracker.select("TOOL_CALL")
            >>> routing.model, routing.reason
            ('cerebras:llama-3.3-70b', 'failover')
            >>> now[0] += 600  # the cool-down, without warnings: one request probes the way back
            >>> tracker.select("TOOL_CALL").reason, tracker.select("TOOL_CALL").model
            ('probe', 'cerebras:llama-3.3-70b')
            >>> _ = tracker.record(1_000, model="groq:llama-3.1-8b-instant")  # the probe went well
            >>> tracker.select("TOOL_CALL").reason
            'default'
        """
        name, workload, route_key, routed = self._route_for(task)
        preferred = routed or default or self.model
        if preferred is None:  # see preferred()
            raise ConfigurationError(
                "select(): no model to route to: no route matches "
                f"{name} and neither default= nor the tracker's model is set"
            )
        candidates = self._candidates(preferred)
        now = self.clock()
        failovers: list[tuple[str, str, int, int]] = []  # (from, reason, recent, 429s)
        skipped: list[str] = []
        causes: list[str] = []
        chosen, reason = candidates[-1], "failover"
        with self._store.transaction(write=True) as conn:
            for i, model in enumerate(candidates):
                last = i == len(candidates) - 1
                state = self._state(conn, model)
                if state is not None and state[0] != "up" and not last:
                    _, _, why, _, quiet_since, probe_until = state
                    cooled = now - quiet_since >= self.failback
                    free = state[0] == "down" or probe_until <= now
                    if cooled and free and self._below_warn_at(conn, now, model):
                        conn.execute(
                            "UPDATE failover_state SET state = 'probing', probe_until = ? WHERE model = ?",
                            (now + PROBE_LEASE, model),
                        )
                        chosen, reason = model, "probe"
                        break
                    skipped.append(model)
                    causes.append(f"{model} is failed over ({why})")
                    continue
                if not last:
                    recent = self._recent_warnings(conn, now, model)
                    count_429 = self._consecutive_429s(conn, model)
                    if recent >= self.failover_after or count_429 >= self.failover_after:
                        why = "capacity_warnings" if recent >= self.failover_after else "rate_limits"
                        self._mark_down(conn, model, candidates[i + 1], why, now)
                        failovers.append((model, why, recent, count_429))
                        skipped.append(model)
                        causes.append(f"{model} failed over now ({why})")
                        continue
                chosen = model
                reason = "failover" if i > 0 else ("route" if routed is not None else "default")
                break
            for model, *_ in failovers:  # the state names where the traffic went
                conn.execute("UPDATE failover_state SET to_model = ? WHERE model = ?", (chosen, model))
        for model, why, recent, count_429 in failovers:
            telemetry.failover(
                from_model=model, to_model=chosen, reason=why, recent_warnings=recent, consecutive_429s=count_429
            )
        if reason == "route":
            detail = f"the {route_key} route"
        elif reason == "default":
            detail = "no route matches; the caller's model"
        elif reason == "probe":
            detail = f"probing {chosen}'s return after its cool-down"
        else:
            detail = "; ".join(causes) + f"; next in the failover chain: {chosen}"
        routing = Routing(chosen, reason, name, workload, preferred, tuple(skipped), detail)  # type: ignore[arg-type]
        telemetry.workload_routing(task=name, workload=workload, model=chosen, reason=reason, preferred=preferred)
        return routing
