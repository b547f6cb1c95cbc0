"""The figures of a request log: one pass, mergeable partial aggregates, one report.

:class:`Aggregate` takes records one at a time (``add``) and keeps only sums, counts,
per-minute buckets and quantile sketches, so a log of any size is read in bounded memory;
two aggregates of different files ``merge`` into the aggregate of both, so files are read
in parallel (one process each) and combined. :func:`figures` turns an aggregate and a
budget into the report: a dict of plain values (what ``--json`` prints).

Quantiles (p50 / p95 of input tokens per request) are **exact** while a group holds at
most :data:`EXACT_LIMIT` requests (numpy's ``percentile`` on the sorted values, linear
interpolation); a larger group falls back to a log-bucketed sketch (DDSketch-like: bucket
``ceil(log(x) / log(1.02))``, so any quantile is within 1% of the true value) that is kept
alongside from the start. The report says which (``"quantiles"``).

Definitions:

- a *request* is a successful model request (status ok); 429s and errors are counted
  apart and carry no tokens into the averages;
- *tokens* for the day and minute limits are input + output tokens, as
  :class:`~tokensieve.UsageTracker` counts them; days are UTC calendar days, and the peak
  rolling 24 hours is measured on minute buckets;
- *derived capacity warnings* are the ones a UsageTracker with the budget's limits would
  have raised (a limit at 80% or more: the request's input against the window, the
  minute's tokens and requests, the rolling day's tokens), so a provider export that never
  saw tokensieve still answers "were there warnings before the 429s?";
- a *429 episode* is a run of 429 answers of one model with gaps under
  :data:`EPISODE_GAP` seconds; what preceded it is what happened in the
  :data:`LOOKBACK` seconds before its first 429;
- a request's *task class* is the logged one, or inferred from its ``max_tokens`` by the
  budget's output budgets (300: TOOL_CALL; a budget two classes share, such as 1500 for
  REVIEW and UNKNOWN, names both); it *hit max_tokens* when its finish reason says so
  (``length``, ``max_tokens``) or, without one, when its output reached ``max_tokens``.

Example:
    >>> from tokensieve.analyze.figures import Aggregate, figures
    >>> from tokensieve.analyze.sources import Record
    >>> agg = Aggregate()
    >>> for i in range(4):
    ...     agg.add(Record(1_793_610_000.0 + 60 * i, model="cerebras:x", input_tokens=20_000 + 1_000 * i,
    ...                    output_tokens=250, session="s1"))
    >>> report = figures(agg, "cerebras")
    >>> report["overall"]["requests"], report["overall"]["avg_input_tokens"], report["overall"]["input_output_ratio"]
    (4, 21500.0, 86.0)
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from tokensieve.analyze.sources import Record

__all__ = ["EPISODE_GAP", "EXACT_LIMIT", "LOOKBACK", "WARN_AT", "Aggregate", "Sketch", "figures", "budget_of"]

#: A group keeps exact values for quantiles up to this many requests.
EXACT_LIMIT = 1_000_000
#: A session keeps exact values up to this many requests (sessions can be many: their
#: values together are bounded by 4 bytes x this x sessions, not by the log's size).
SESSION_EXACT_LIMIT = 2_000
_INT32 = 2**31 - 1
#: 429 answers further apart than this (seconds) belong to different episodes.
EPISODE_GAP = 600.0
#: How far back (seconds) before a 429 episode to look for capacity warnings.
LOOKBACK = 3_600.0
#: The fraction of a limit at which a capacity warning is raised (UsageTracker's default).
WARN_AT = 0.8
#: Sessions listed one by one in the terminal (all are in --json and the HTML report).
_GAMMA = 1.02
_LOG_GAMMA = math.log(_GAMMA)
DAY = 86_400
MINUTE = 60


# --------------------------------------------------------------------------- quantiles


class Sketch:
    """Values for quantiles: exact while few, then a log-bucketed sketch (mergeable).

    The values are kept as they come until there are more than :data:`EXACT_LIMIT`; then
    they are folded into buckets (``ceil(log(x) / log(1.02))``) and every later value goes
    to its bucket, so memory stays bounded whatever the log's size.

    Example:
        >>> from tokensieve.analyze.figures import Sketch
        >>> s = Sketch()
        >>> for x in range(1, 101):
        ...     s.add(x)
        >>> s.quantile(0.5), s.exact
        (50.5, True)
    """

    __slots__ = ("buckets", "limit", "n", "values", "zeros")

    def __init__(self, limit: int | None = None) -> None:
        self.n = 0
        self.zeros = 0
        self.limit = EXACT_LIMIT if limit is None else limit
        self.buckets: Counter[int] = Counter()
        # int32: 4 bytes a value (a request's tokens stay far below 2**31; clamped if not)
        self.values: array[int] | None = array("i")

    def _bucket(self, x: int) -> None:
        if x <= 0:
            self.zeros += 1
        else:
            self.buckets[math.ceil(math.log(x) / _LOG_GAMMA)] += 1

    def _spill(self) -> None:
        """Fold the exact values into buckets (from now on, quantiles are sketched)."""
        if self.values is not None:
            for x in self.values:
                self._bucket(x)
            self.values = None

    def add(self, x: int) -> None:
        self.n += 1
        values = self.values
        if values is not None:
            values.append(x if x <= _INT32 else _INT32)
            if len(values) > self.limit:
                self._spill()
        else:
            self._bucket(x)

    def merge(self, other: Sketch) -> None:
        self.n += other.n
        if self.values is not None and other.values is not None and len(self.values) + len(other.values) <= self.limit:
            self.values.extend(other.values)
            return
        self._spill()
        if other.values is not None:
            for x in other.values:
                self._bucket(x)
        else:
            self.zeros += other.zeros
            self.buckets.update(other.buckets)

    @property
    def exact(self) -> bool:
        """Whether quantiles come from every value (not the sketch)."""
        return self.values is not None

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1); None without values."""
        if self.n == 0:
            return None
        if self.values is not None:
            import numpy as np

            return float(np.percentile(np.frombuffer(self.values, dtype=np.int32), q * 100))
        rank = q * (self.n - 1)
        if rank < self.zeros:
            return 0.0
        seen = self.zeros
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen > rank:
                # the bucket (gamma^(i-1), gamma^i]: its midpoint in relative terms
                return float(2 * _GAMMA**index / (1 + _GAMMA))
        return float(_GAMMA ** max(self.buckets))


# --------------------------------------------------------------------------- groups


class Group:
    """Sums and counts of the requests of one group (a model, a day, a session, a task)."""

    __slots__ = (
        "cached",
        "cached_input",
        "errors",
        "first",
        "hit_known",
        "hit_max",
        "input",
        "input_sketch",
        "last",
        "output",
        "output_sketch",
        "rate_limited",
        "requests",
    )

    def __init__(self, quantiles: bool = True, outputs: bool = False, limit: int | None = None) -> None:
        self.requests = 0
        self.rate_limited = 0
        self.errors = 0
        self.input = 0
        self.output = 0
        self.cached = 0
        self.cached_input = 0  # input tokens of the requests whose cache use is known
        self.hit_max = 0
        self.hit_known = 0
        self.first: float | None = None
        self.last: float | None = None
        self.input_sketch: Sketch | None = Sketch(limit) if quantiles else None
        self.output_sketch: Sketch | None = Sketch() if outputs else None

    def add(self, r: Record, hit: bool | None) -> None:
        ts = r.ts
        if ts is not None:
            if self.first is None or ts < self.first:
                self.first = ts
            if self.last is None or ts > self.last:
                self.last = ts
        if r.status == "rate_limited":
            self.rate_limited += r.requests
            return
        if r.status == "error":
            self.errors += r.requests
            return
        self.requests += r.requests
        self.input += r.input_tokens
        self.output += r.output_tokens
        if r.cached_tokens is not None:
            self.cached += r.cached_tokens
            self.cached_input += r.input_tokens
        if hit is not None:
            self.hit_known += 1
            self.hit_max += hit
        if self.input_sketch is not None:
            n = r.requests
            if n == 1:
                self.input_sketch.add(r.input_tokens)
                if self.output_sketch is not None:
                    self.output_sketch.add(r.output_tokens)
            else:  # a ledger row of several requests stands for their average each
                for _ in range(min(n, 1_000)):
                    self.input_sketch.add(r.input_tokens // n)
                    if self.output_sketch is not None:
                        self.output_sketch.add(r.output_tokens // n)

    def merge(self, other: Group) -> None:
        for name in ("requests", "rate_limited", "errors", "input", "output", "cached", "cached_input", "hit_max", "hit_known"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.first is not None and (self.first is None or other.first < self.first):
            self.first = other.first
        if other.last is not None and (self.last is None or other.last > self.last):
            self.last = other.last
        if self.input_sketch is not None and other.input_sketch is not None:
            self.input_sketch.merge(other.input_sketch)
        if self.output_sketch is not None and other.output_sketch is not None:
            self.output_sketch.merge(other.output_sketch)

    def figures(self) -> dict[str, Any]:
        n = self.requests
        report: dict[str, Any] = {
            "requests": n,
            "rate_limited": self.rate_limited,
            "errors": self.errors,
            "input_tokens": self.input,
            "output_tokens": self.output,
            "total_tokens": self.input + self.output,
            "avg_input_tokens": round(self.input / n, 1) if n else None,
            "avg_output_tokens": round(self.output / n, 1) if n else None,
            "input_output_ratio": round(self.input / self.output, 1) if self.output else None,
            "cached_tokens": self.cached if self.cached_input else None,
            "cache_share": round(self.cached / self.cached_input, 4) if self.cached_input else None,
            "first": _iso(self.first),
            "last": _iso(self.last),
        }
        if self.hit_known:
            report["hit_max_tokens"] = self.hit_max
            report["hit_max_tokens_rate"] = round(self.hit_max / self.hit_known, 4)
        if self.input_sketch is not None:
            p50, p95 = self.input_sketch.quantile(0.5), self.input_sketch.quantile(0.95)
            report["p50_input_tokens"] = None if p50 is None else round(p50, 1)
            report["p95_input_tokens"] = None if p95 is None else round(p95, 1)
        return report


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _merge_groups(mine: dict[Any, Group], theirs: Mapping[Any, Group]) -> None:
    for key, group in theirs.items():
        if key in mine:
            mine[key].merge(group)
        else:
            mine[key] = group


class _Requests:
    """The request figures of one origin (logged requests, or compaction spans)."""

    __slots__ = ("days", "minutes", "models", "overall", "sessions", "tasks", "untimed")

    def __init__(self) -> None:
        self.overall = Group()
        self.models: dict[str, Group] = {}
        self.days: dict[int, Group] = {}
        self.sessions: dict[str, Group] = {}
        self.tasks: dict[tuple[str | None, int | None], Group] = {}
        # model -> minute -> [tokens, requests, max input of one request, 429s, input tokens]
        self.minutes: dict[str, dict[int, list[int]]] = {}
        self.untimed = 0

    def add(self, r: Record) -> None:
        hit = r.hit_max
        if hit is None and r.max_tokens and r.status == "ok":
            hit = r.output_tokens >= r.max_tokens
        self.overall.add(r, hit)
        model = self.models.get(r.model)
        if model is None:
            model = self.models[r.model] = Group()
        model.add(r, hit)
        if r.session is not None:
            session = self.sessions.get(r.session)
            if session is None:
                session = self.sessions[r.session] = Group(limit=SESSION_EXACT_LIMIT)
            session.add(r, hit)
        if r.task is not None or r.max_tokens is not None:
            key = (r.task, r.max_tokens)
            task = self.tasks.get(key)
            if task is None:
                task = self.tasks[key] = Group(outputs=True)
            task.add(r, hit)
        ts = r.ts
        if ts is None:
            self.untimed += 1
            return
        day_key = int(ts // DAY)
        day = self.days.get(day_key)
        if day is None:
            day = self.days[day_key] = Group()
        day.add(r, hit)
        minutes = self.minutes.get(r.model)
        if minutes is None:
            minutes = self.minutes[r.model] = {}
        minute = int(ts // MINUTE)
        bucket = minutes.get(minute)
        if bucket is None:
            bucket = minutes[minute] = [0, 0, 0, 0, 0]
        if r.status == "ok":
            bucket[0] += r.input_tokens + r.output_tokens
            bucket[4] += r.input_tokens
            bucket[1] += r.requests
            per_request = r.input_tokens // max(r.requests, 1)
            if per_request > bucket[2]:
                bucket[2] = per_request
        elif r.status == "rate_limited":
            bucket[3] += r.requests

    def merge(self, other: _Requests) -> None:
        self.overall.merge(other.overall)
        _merge_groups(self.models, other.models)
        _merge_groups(self.days, other.days)
        _merge_groups(self.sessions, other.sessions)
        _merge_groups(self.tasks, other.tasks)
        for model, theirs in other.minutes.items():
            mine = self.minutes.setdefault(model, {})
            for key, b in theirs.items():
                a = mine.get(key)
                if a is None:
                    mine[key] = b
                else:
                    a[0] += b[0]
                    a[1] += b[1]
                    a[2] = max(a[2], b[2])
                    a[3] += b[3]
                    a[4] += b[4]
        self.untimed += other.untimed


class Aggregate:
    """The partial figures of some records; ``merge`` two to get the figures of both.

    Records without a session id get one from idle gaps: a request more than
    ``session_gap`` seconds after the previous one (in the order they are added) starts a
    new session, named ``<source>#<n>`` (0 turns this off).

    Example:
        >>> from tokensieve.analyze.figures import Aggregate
        >>> from tokensieve.analyze.sources import Record
        >>> a, b = Aggregate(), Aggregate()
        >>> a.add(Record(0.0, input_tokens=100, output_tokens=10))
        >>> b.add(Record(60.0, input_tokens=300, output_tokens=10))
        >>> a.merge(b)
        >>> a.requests.overall.requests, a.requests.overall.input
        (2, 400)
    """

    def __init__(self, source: str = "", *, session_gap: float = 1_800.0) -> None:
        self.requests = _Requests()
        self.compaction_requests = _Requests()  # from compaction spans, used when no request has usage
        self.compactions = {"count": 0, "compacted": 0, "tokens_before": 0, "tokens_after": 0}
        self.warnings: list[tuple[float, str, str]] = []  # (ts, model, limit_name), logged ones
        self.failovers: list[tuple[float, str]] = []
        self.blocked = 0
        self.records = 0
        self.sources: list[dict[str, Any]] = []
        self._source = source
        self._gap = session_gap
        self._last_ts: float | None = None
        self._gap_sessions = 0

    def add(self, r: Record) -> None:
        """Count one record."""
        self.records += 1
        kind = r.kind
        if kind == "request" or kind == "compaction":
            if r.session is None and self._gap and r.ts is not None:
                if self._last_ts is None or r.ts - self._last_ts > self._gap:
                    self._gap_sessions += 1
                self._last_ts = r.ts
                r = r._replace(session=f"{self._source}#{self._gap_sessions}")
        if kind == "request":
            self.requests.add(r)
            if r.status != "ok":
                self.compaction_requests.add(r)
        elif kind == "compaction":
            c = self.compactions
            c["count"] += 1
            c["tokens_after"] += r.input_tokens
            if r.tokens_before is not None:
                c["tokens_before"] += r.tokens_before
                c["compacted"] += r.tokens_before > r.input_tokens
            self.compaction_requests.add(r._replace(kind="request"))
        elif kind == "capacity_warning":
            if r.ts is not None:
                self.warnings.append((r.ts, r.model, r.limit_name or "?"))
        elif kind == "failover":
            if r.ts is not None:
                self.failovers.append((r.ts, r.model))
        elif kind == "budget_blocked":
            self.blocked += 1

    def add_all(self, records: Iterable[Record]) -> Aggregate:
        """Count every record; returns self."""
        add = self.add
        for r in records:
            add(r)
        return self

    def merge(self, other: Aggregate) -> None:
        """Add another aggregate's figures to this one (the other is consumed)."""
        self.requests.merge(other.requests)
        self.compaction_requests.merge(other.compaction_requests)
        for key, value in other.compactions.items():
            self.compactions[key] += value
        self.warnings.extend(other.warnings)
        self.failovers.extend(other.failovers)
        self.blocked += other.blocked
        self.records += other.records
        self.sources.extend(other.sources)


# --------------------------------------------------------------------------- the report


def budget_of(budget: Any, model: str | None = None) -> Any:
    """The :class:`~tokensieve.BudgetConfig` a report measures against: a config, a
    preset name, or None for the model's preset (``BudgetConfig.for_model``).

    Example:
        >>> from tokensieve.analyze.figures import budget_of
        >>> budget_of(None, "cerebras:llama-3.3-70b").tokens_per_day
        24000000
    """
    from tokensieve.config import PRESETS, BudgetConfig

    if isinstance(budget, BudgetConfig):
        return budget
    if isinstance(budget, str):
        if budget in PRESETS:
            return BudgetConfig.preset(budget)
        return BudgetConfig.for_model(budget)
    return BudgetConfig.for_model(model) if model else BudgetConfig.preset("default")


def _task_names(config: Any) -> dict[int, str]:
    from tokensieve.config import TASKS

    by_budget: dict[int, list[str]] = {}
    for task in TASKS:
        by_budget.setdefault(config.output_budgets.for_task(task), []).append(task)
    return {budget: "/".join(tasks) for budget, tasks in by_budget.items()}


def _day(key: int) -> str:
    return datetime.fromtimestamp(key * DAY, timezone.utc).date().isoformat()


def _minute(key: int) -> str:
    return datetime.fromtimestamp(key * MINUTE, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def _ratio(x: float | None) -> str | None:
    return None if x is None else f"{x:,.0f}:1"


def _rolling_day(minutes: Mapping[int, list[int]]) -> list[tuple[int, int]]:
    """(minute, tokens of the 24 hours ending with it) for each minute with traffic."""
    keys = sorted(minutes)
    out: list[tuple[int, int]] = []
    window = 0
    start = 0
    for key in keys:
        window += minutes[key][0]
        while keys[start] <= key - DAY // MINUTE:
            window -= minutes[keys[start]][0]
            start += 1
        out.append((key, window))
    return out


def _derived_warnings(minutes: Mapping[int, list[int]], rolling: list[tuple[int, int]], config: Any) -> list[tuple[int, str]]:
    """(minute, limit name) of the capacity warnings a UsageTracker would have raised."""
    found: list[tuple[int, str]] = []
    window = config.max_input_tokens
    for key, day_tokens in rolling:
        tokens, requests, max_input = minutes[key][:3]
        if window and max_input >= WARN_AT * window:
            found.append((key, "context_window"))
        if config.tokens_per_minute and tokens >= WARN_AT * config.tokens_per_minute:
            found.append((key, "tokens_per_minute"))
        if config.requests_per_minute and requests >= WARN_AT * config.requests_per_minute:
            found.append((key, "requests_per_minute"))
        if config.tokens_per_day and day_tokens >= WARN_AT * config.tokens_per_day:
            found.append((key, "tokens_per_day"))
    return found


def _episodes(
    model: str,
    minutes: Mapping[int, list[int]],
    rolling: dict[int, int],
    logged: list[tuple[float, str, str]],
    derived: list[tuple[int, str]],
    config: Any,
) -> list[dict[str, Any]]:
    limited = sorted(k for k, b in minutes.items() if b[3])
    runs: list[list[int]] = []
    for key in limited:
        if runs and (key - runs[-1][-1]) * MINUTE <= EPISODE_GAP:
            runs[-1].append(key)
        else:
            runs.append([key])
    episodes = []
    for run in runs:
        start = run[0] * MINUTE
        lo = start - LOOKBACK
        before_logged = [(ts, name) for ts, m, name in logged if lo <= ts < start + MINUTE and (not m or not model or m == model)]
        before_derived = [(k * MINUTE, name) for k, name in derived if lo <= k * MINUTE <= start]
        warnings = before_logged or [(float(ts), name) for ts, name in before_derived]
        first_warning = min((ts for ts, _ in warnings), default=None)
        day_tokens = max((rolling.get(k, 0) for k in range(run[0] - 1, run[0] + 1)), default=0)
        episodes.append(
            {
                "model": model,
                "start": _iso(start),
                "end": _iso(run[-1] * MINUTE + MINUTE),
                "responses_429": sum(minutes[k][3] for k in run),
                "minutes": len(run),
                "preceded_by_warnings": bool(warnings),
                "warnings_source": "logged" if before_logged else ("derived" if before_derived else None),
                "warnings_before": dict(Counter(name for _, name in warnings)),
                "first_warning": _iso(first_warning),
                "warning_lead_seconds": None if first_warning is None else round(start - first_warning),
                "day_tokens_at_start": day_tokens,
                "day_limit_use_at_start": round(day_tokens / config.tokens_per_day, 4) if config.tokens_per_day else None,
                "requests_in_minute_before": minutes.get(run[0] - 1, [0, 0])[1],
            }
        )
    return episodes


def _status(avg: float | None, config: Any) -> str:
    if avg is None:
        return "no requests"
    if avg <= config.target_input_tokens:
        return "within target"
    if avg <= config.hard_limit_tokens:
        return "above target"
    return "over the hard limit"


def _trend(sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive sessions with the same status, as the reference's trend table groups them."""
    rows: list[dict[str, Any]] = []
    for s in sessions:
        avg = s["avg_input_tokens"]
        if avg is None:
            continue
        if rows and rows[-1]["status"] == s["status"]:
            row = rows[-1]
            row["last"] = s["order"]
            row["min_avg"] = min(row["min_avg"], avg)
            row["max_avg"] = max(row["max_avg"], avg)
            row["requests"] += s["requests"]
            row["input_tokens"] += s["input_tokens"]
        else:
            rows.append(
                {
                    "first": s["order"],
                    "last": s["order"],
                    "min_avg": avg,
                    "max_avg": avg,
                    "status": s["status"],
                    "requests": s["requests"],
                    "input_tokens": s["input_tokens"],
                }
            )
    for row in rows:
        row["sessions"] = f"{row['first']}" if row["first"] == row["last"] else f"{row['first']}-{row['last']}"
        row["avg_input_tokens"] = round(row.pop("input_tokens") / row["requests"], 1) if row["requests"] else None
    return rows


def figures(aggregate: Aggregate, budget: Any = None, *, label: str | None = None) -> dict[str, Any]:
    """The report of an aggregate against a budget (a BudgetConfig, a preset name, or
    None: each model's own preset, and the most used model's for the overall targets).

    The keys: ``budget``, ``sources``, ``quantiles``, ``requests_from``, ``overall``,
    ``targets`` (the reference's metrics before/target table), ``models``, ``days``,
    ``minutes`` (peak minute and rolling day per model), ``sessions``, ``session_trend``,
    ``tasks``, ``rate_limits`` (429 episodes and what preceded them),
    ``capacity_warnings``, ``cache``, ``compactions``, ``series`` (per-minute points for
    plots).
    """
    req = aggregate.requests
    requests_from = "requests"
    if req.overall.requests == 0 and aggregate.compaction_requests.overall.requests > 0:
        req = aggregate.compaction_requests
        requests_from = "compaction spans (input tokens after compaction)"
    top_model = max(req.models.items(), key=lambda kv: kv[1].requests, default=(None, None))[0]
    config = budget_of(budget, top_model)

    def config_for(model: str) -> Any:
        return config if budget is not None or not model else budget_of(None, model)

    overall = req.overall.figures()
    sessions_exact = all(g.input_sketch is None or g.input_sketch.exact for g in req.sessions.values())
    exact = all(
        g.input_sketch is None or g.input_sketch.exact
        for g in [req.overall, *req.models.values(), *req.days.values(), *req.tasks.values()]
    )

    # ------------------------------------------------------------ limits per model, per day
    minutes_report = {}
    day_use: dict[int, float] = {}
    model_day_tokens: dict[str, dict[int, int]] = {}
    derived_all: list[tuple[str, int, str]] = []
    episodes: list[dict[str, Any]] = []
    for model, minutes in req.minutes.items():
        mconfig = config_for(model)
        if not minutes:
            continue
        rolling = _rolling_day(minutes)
        rolling_map = dict(rolling)
        peak_key = max(minutes, key=lambda k: (minutes[k][0], -k))
        peak_req_key = max(minutes, key=lambda k: (minutes[k][1], -k))
        roll_key, roll_tokens = max(rolling, key=lambda kv: (kv[1], -kv[0]))
        derived = _derived_warnings(minutes, rolling, mconfig)
        derived_all.extend((model, k, name) for k, name in derived)
        episodes.extend(_episodes(model, minutes, rolling_map, aggregate.warnings, derived, mconfig))
        per_day = model_day_tokens.setdefault(model, {})
        for key, bucket in minutes.items():
            d = key * MINUTE // DAY
            per_day[d] = per_day.get(d, 0) + bucket[0]
        if mconfig.tokens_per_day:
            for d, tokens in per_day.items():
                day_use[d] = max(day_use.get(d, 0.0), tokens / mconfig.tokens_per_day)
        tpm, rpm, tpd = mconfig.tokens_per_minute, mconfig.requests_per_minute, mconfig.tokens_per_day
        minutes_report[model] = {
            "peak_minute_tokens": minutes[peak_key][0],
            "peak_minute": _minute(peak_key),
            "tokens_per_minute_limit": tpm,
            "peak_minute_use": round(minutes[peak_key][0] / tpm, 4) if tpm else None,
            "peak_minute_requests": minutes[peak_req_key][1],
            "requests_per_minute_limit": rpm,
            "peak_minute_requests_use": round(minutes[peak_req_key][1] / rpm, 4) if rpm else None,
            "peak_rolling_day_tokens": roll_tokens,
            "peak_rolling_day_end": _minute(roll_key + 1),
            "tokens_per_day_limit": tpd,
            "peak_rolling_day_use": round(roll_tokens / tpd, 4) if tpd else None,
        }

    days = []
    for key in sorted(req.days):
        row = {"day": _day(key), **req.days[key].figures()}
        row["limit_use"] = round(day_use[key], 4) if key in day_use else None
        days.append(row)
    peak_day = max((d for d in days if d["limit_use"] is not None), key=lambda d: d["limit_use"], default=None)

    # ------------------------------------------------------------ sessions
    ordered = sorted(req.sessions.items(), key=lambda kv: (kv[1].first is None, kv[1].first or 0.0, kv[0]))
    sessions = []
    for order, (name, group) in enumerate(ordered, 1):
        row = {"order": order, "session": name, **group.figures()}
        row["status"] = _status(row["avg_input_tokens"], config)
        sessions.append(row)

    # ------------------------------------------------------------ tasks
    names = _task_names(config)
    merged_tasks: dict[str, dict[str, Any]] = {}
    for (task, max_tokens), group in req.tasks.items():
        name = task or (names.get(max_tokens, f"max_tokens={max_tokens}") if max_tokens is not None else "?")
        entry = merged_tasks.setdefault(name, {"group": Group(outputs=True), "budgets": Counter(), "inferred": task is None})
        entry["group"].merge(group)
        if max_tokens is not None:
            entry["budgets"][max_tokens] += group.requests + group.rate_limited + group.errors
    tasks = []
    for name, entry in sorted(merged_tasks.items(), key=lambda kv: -kv[1]["group"].requests):
        g: Group = entry["group"]
        budget_value = entry["budgets"].most_common(1)[0][0] if entry["budgets"] else None
        if budget_value is None:
            try:
                budget_value = config.output_budgets.for_task(name)
            except Exception:
                budget_value = None
        p95_out = g.output_sketch.quantile(0.95) if g.output_sketch is not None else None
        row = {
            "task": name,
            "inferred_from_max_tokens": entry["inferred"],
            "requests": g.requests,
            "share": round(g.requests / req.overall.requests, 4) if req.overall.requests else None,
            "output_budget": budget_value,
            "avg_output_tokens": round(g.output / g.requests, 1) if g.requests else None,
            "p95_output_tokens": None if p95_out is None else round(p95_out, 1),
            "budget_use": round(g.output / g.requests / budget_value, 4) if g.requests and budget_value else None,
            "hit_max_tokens": g.hit_max if g.hit_known else None,
            "hit_max_tokens_rate": round(g.hit_max / g.hit_known, 4) if g.hit_known else None,
            "avg_input_tokens": round(g.input / g.requests, 1) if g.requests else None,
        }
        tasks.append(row)

    # ------------------------------------------------------------ warnings and 429s
    episodes.sort(key=lambda e: e["start"] or "")
    logged_counts = Counter(name for _, _, name in aggregate.warnings)
    derived_counts = Counter(name for _, _, name in derived_all)
    rate_limits = {
        "responses_429": overall["rate_limited"],
        "episodes": episodes,
        "episodes_preceded_by_warnings": sum(e["preceded_by_warnings"] for e in episodes),
        "failovers": len(aggregate.failovers),
        "episode_gap_seconds": EPISODE_GAP,
        "lookback_seconds": LOOKBACK,
    }

    # ------------------------------------------------------------ the reference's targets
    avg = overall["avg_input_tokens"]
    use = peak_day["limit_use"] if peak_day else None
    targets = [
        {
            "metric": "Avg tokens/request",
            "value": avg,
            "shown": "-" if avg is None else f"{avg:,.0f}",
            "target": f"<{config.target_input_tokens:,}",
            "met": None if avg is None else avg < config.target_input_tokens,
        },
        {
            "metric": "Input:Output ratio",
            "value": overall["input_output_ratio"],
            "shown": _ratio(overall["input_output_ratio"]) or "-",
            "target": "Maintain",
            "met": None,
        },
        {
            "metric": "Daily limit usage",
            "value": use,
            "shown": "-" if use is None else f"{use:.0%} ({peak_day['day']})" if peak_day else "-",
            "target": f"<{WARN_AT:.0%}",
            "met": None if use is None else use < WARN_AT,
        },
    ]

    # ------------------------------------------------------------ plot series (per minute, or per hour when long)
    series = _series(req, config)

    compactions = dict(aggregate.compactions)
    compactions["tokens_saved"] = compactions["tokens_before"] - compactions["tokens_after"] if compactions["tokens_before"] else 0
    cache = None
    if req.overall.cached_input:
        cache = {
            "cached_tokens": req.overall.cached,
            "input_tokens_reporting": req.overall.cached_input,
            "share": round(req.overall.cached / req.overall.cached_input, 4),
        }

    return {
        "budget": {
            "preset": label
            or (budget if isinstance(budget, str) else "custom" if budget is not None else f"each model's own ({top_model or 'default'})"),
            "max_input_tokens": config.max_input_tokens,
            "compaction_tokens": int(config.compaction_tokens),
            "hard_limit_tokens": int(config.hard_limit_tokens),
            "target_input_tokens": config.target_input_tokens,
            "tokens_per_minute": config.tokens_per_minute,
            "requests_per_minute": config.requests_per_minute,
            "tokens_per_day": config.tokens_per_day,
            "warn_at": WARN_AT,
        },
        "sources": aggregate.sources,
        "records": aggregate.records,
        "requests_from": requests_from,
        "quantiles": "exact" if exact else "sketch (log buckets, within 1%)",
        "session_quantiles": "exact" if sessions_exact else f"sketch (log buckets, within 1%) above {SESSION_EXACT_LIMIT:,} requests",
        "overall": overall,
        "targets": targets,
        "models": {m or "(not logged)": g.figures() for m, g in sorted(req.models.items(), key=lambda kv: -kv[1].requests)},
        "days": days,
        "peak_day": None if peak_day is None else {"day": peak_day["day"], "limit_use": peak_day["limit_use"]},
        "limits": minutes_report,
        "sessions": sessions,
        "session_trend": _trend(sessions),
        "tasks": tasks,
        "rate_limits": rate_limits,
        "capacity_warnings": {"logged": dict(logged_counts), "derived": dict(derived_counts)},
        "cache": cache,
        "compactions": compactions if compactions["count"] else None,
        "budget_blocked": aggregate.blocked,
        "untimed_records": req.untimed,
        "series": series,
    }


#: Above this many minutes with traffic, plot series are per hour.
SERIES_LIMIT = 20_000


def _series(req: _Requests, config: Any) -> dict[str, Any]:
    merged: dict[int, list[int]] = {}
    for minutes in req.minutes.values():
        for key, b in minutes.items():
            a = merged.setdefault(key, [0, 0, 0, 0, 0])
            a[0] += b[0]
            a[1] += b[1]
            a[2] = max(a[2], b[2])
            a[3] += b[3]
            a[4] += b[4]
    step = MINUTE if len(merged) <= SERIES_LIMIT else 3_600
    if step != MINUTE:
        hourly: dict[int, list[int]] = {}
        for key, b in merged.items():
            a = hourly.setdefault(key * MINUTE // step, [0, 0, 0, 0, 0])
            a[0] += b[0]
            a[1] += b[1]
            a[2] = max(a[2], b[2])
            a[3] += b[3]
            a[4] += b[4]
        merged = hourly
    keys = sorted(merged)
    return {
        "step_seconds": step,
        "time": [_iso(k * step) for k in keys],
        "tokens": [merged[k][0] for k in keys],
        "requests": [merged[k][1] for k in keys],
        "avg_input_tokens": [round(merged[k][4] / merged[k][1], 1) if merged[k][1] else None for k in keys],
        "max_input_tokens": [merged[k][2] if merged[k][1] else None for k in keys],
        "responses_429": [merged[k][3] for k in keys],
    }
