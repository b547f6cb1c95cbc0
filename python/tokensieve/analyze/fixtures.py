"""Generated request logs for tests and docs (no real user data): a CSV shaped like a
provider's usage export.

:func:`usage_rows` is deterministic (a seeded ``random.Random``). Its default log mirrors
the analysis in the reference design (section 6): 2,517 successful requests to
``cerebras:llama-3.3-70b`` over five days in 11 sessions, sessions 1-5 at 30-40K input
tokens per request (before optimization), 6-8 at 20-25K (partial), 9-11 at 11-16K (full),
an input:output ratio near 87:1; input grows within a session and falls back when the
history is compacted (a saw-tooth). The provider enforces the 24M-tokens-a-day limit: on
the first day usage climbs past 80% (the capacity warnings a UsageTracker raises) and,
near 99%, the provider answers 429 to the agent's retries for the rest of the evening
(a 429 storm). Output budgets follow the reference's task table (``max_tokens`` 300 for a
tool call, 3000 for code ...) and tool calls often stop at their 300 tokens
(``finish_reason`` ``length``): the signal for tuning task detection. The export has no
task column, as a provider's has none; ``tokensieve analyze`` infers the class from
``max_tokens``.

Example:
    >>> from tokensieve.analyze.fixtures import usage_rows
    >>> rows = list(usage_rows(requests=40, sessions=2, days=1))
    >>> rows[0]["model"], rows[0]["status"], sorted(rows[0])[:3]
    ('cerebras:llama-3.3-70b', '200', ['cached_tokens', 'finish_reason', 'input_tokens'])
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

__all__ = ["CSV_HEADER", "usage_rows", "write_usage_csv"]

#: The generated export's columns (the documented default names of ``tokensieve analyze``).
CSV_HEADER = (
    "timestamp",
    "request_id",
    "session_id",
    "model",
    "status",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "max_tokens",
    "finish_reason",
)

# task, share, max_tokens, mean output, probability of stopping at max_tokens
_TASKS = (
    ("TOOL_CALL", 0.60, 300, 105, 0.12),
    ("CODE_GENERATION", 0.15, 3000, 900, 0.03),
    ("EXPLANATION", 0.10, 1800, 500, 0.02),
    ("PLANNING", 0.08, 1200, 420, 0.02),
    ("REVIEW", 0.07, 1500, 430, 0.01),
)
_DAY = 86_400


def _session_means(sessions: int) -> list[float]:
    """Average input tokens of each session: the reference's three phases, in order."""
    means = []
    first, second = round(sessions * 5 / 11), round(sessions * 8 / 11)  # sessions 1-5, 6-8, 9-11 of 11
    for i in range(sessions):
        if i < first:
            means.append(40_000 - 10_000 * i / max(first - 1, 1))
        elif i < second:
            means.append(25_000 - 5_000 * (i - first) / max(second - first - 1, 1))
        else:
            means.append(14_800 - 3_800 * (i - second) / max(sessions - second - 1, 1))
    return means


def _plan(requests: int, sessions: int, days: int) -> list[tuple[int, int]]:
    """(day, requests) of each session: longer sessions early, as in the reference's log."""
    weights = [280, 280, 280, 280, 280, 230, 230, 230, 142, 142, 143]
    if sessions != len(weights):
        weights = [max(1, round(280 - 140 * i / max(sessions - 1, 1))) for i in range(sessions)]
    total = sum(weights)
    counts = [max(1, requests * w // total) for w in weights]
    counts[0] += requests - sum(counts)
    # Day of each session for the default five days: the first day's third session runs
    # into the 429 storm and finishes the next morning.
    if days == 5 and sessions == 11:
        day_of = [0, 0, 0, 1, 2, 2, 3, 3, 4, 4, 4]
    else:
        day_of = [min(days - 1, i * days // sessions) for i in range(sessions)]
    return list(zip(day_of, counts))


def usage_rows(
    *,
    requests: int = 2_517,
    sessions: int = 11,
    days: int = 5,
    seed: int = 14,
    start: str = "2026-11-02",
    model: str = "cerebras:llama-3.3-70b",
    tokens_per_day: int = 24_000_000,
) -> Iterator[dict[str, Any]]:
    """Rows of a generated usage export, in time order (see the module doc).

    Args:
        requests: successful requests in all (429 answers come on top).
        sessions: sessions, run one after another over ``days`` days.
        days: calendar days (UTC) the sessions spread over.
        seed: the random seed (same seed, same rows).
        start: the first day (ISO date).
        model: the model of every request.
        tokens_per_day: the provider's daily limit: it answers 429 from 99% of it until
            the day ends.
    """
    rng = random.Random(seed)
    day0 = int(datetime.fromisoformat(start).replace(tzinfo=timezone.utc).timestamp()) // _DAY * _DAY
    means = _session_means(sessions)
    plan = _plan(requests, sessions, days)
    day_tokens: dict[int, int] = {}
    clock: dict[int, float] = {}
    number = 0
    for index, ((day, count), mean) in enumerate(zip(plan, means)):
        t = max(clock.get(day, day0 + day * _DAY + 8 * 3_600), day0 + day * _DAY + 8 * 3_600) + rng.uniform(600, 2_400)
        session = f"session-{index + 1:02d}"
        period = rng.randint(9, 14)  # requests between compactions
        done = 0
        step = 0
        storm = 0
        while done < count:
            step += 1
            t += rng.uniform(2, 12) if storm else rng.uniform(8, 55)  # retries come faster
            d = int(t // _DAY)
            task, _, max_tokens, mean_out, p_hit = rng.choices(_TASKS, weights=[x[1] for x in _TASKS])[0]
            number += 1
            row: dict[str, Any] = {
                "timestamp": datetime.fromtimestamp(round(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "request_id": f"req_{seed:x}{number:07d}",
                "session_id": session,
                "model": model,
                "max_tokens": max_tokens,
            }
            if day_tokens.get(d, 0) >= 0.99 * tokens_per_day:
                # Rate limited: the agent retries every few seconds, then gives up the day.
                storm += 1
                row.update(status="429", input_tokens=0, output_tokens=0, cached_tokens="", finish_reason="")
                yield row
                if storm >= 60:
                    t = (d + 1) * _DAY + 8 * 3_600  # tomorrow morning
                    storm = 0
                continue
            phase = (step % period) / period
            tokens = int(mean * (0.6 + 0.8 * phase) * rng.uniform(0.9, 1.1))
            if rng.random() < p_hit:
                out, finish = max_tokens, "length"
            else:
                out = max(8, min(max_tokens - 1, int(rng.expovariate(1 / mean_out))))
                finish = "tool_calls" if task == "TOOL_CALL" else "stop"
            cached = int(tokens * rng.uniform(0.2, 0.7)) if step % period else 0
            day_tokens[d] = day_tokens.get(d, 0) + tokens + out
            row.update(
                status="200",
                input_tokens=tokens,
                output_tokens=out,
                cached_tokens=cached,
                finish_reason=finish,
            )
            yield row
            done += 1
        clock[int(t // _DAY) - day0 // _DAY] = t


def write_usage_csv(path: str | os.PathLike[str], **options: Any) -> int:
    """Write :func:`usage_rows` as a CSV export; returns the number of rows.

    Example:
        >>> import os, tempfile
        >>> from tokensieve.analyze.fixtures import write_usage_csv
        >>> write_usage_csv(os.path.join(tempfile.mkdtemp(), "usage.csv"), requests=50, sessions=2, days=1)
        50
    """
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, CSV_HEADER)
        writer.writeheader()
        for row in usage_rows(**options):
            writer.writerow(row)
            n += 1
    return n


if __name__ == "__main__":  # python -m tokensieve.analyze.fixtures usage.csv
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m tokensieve.analyze.fixtures OUT.csv")
    print(f"wrote {write_usage_csv(sys.argv[1]):,} rows to {sys.argv[1]}")
