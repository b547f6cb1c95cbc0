"""Replay recorded (or generated) sessions request by request through compaction policies.

Each session is a history that grew request by request; :func:`replay_session` sends
every request of it through each policy (``tokensieve.Compactor``: the public API, so
every field a ``BudgetConfig`` gains works here unchanged) and measures what was sent:

- **tokens per request**: ``count_request_tokens`` of what compaction returned (plus
  Anthropic's top-level system prompt): mean, p50, p95 (nearest rank), and the total over
  all requests;
- **messages and exchanges kept** per request (means), requests compacted;
- **blocked requests**: ``BudgetExceededError`` (not sent, so not in the token figures);
- **invariant violations**: requests whose output breaks a rule of
  :mod:`tokensieve.analyze.invariants` (pairing, order, system prompt, current task);
- **prefix stability**: the fraction of requests (after a session's first sent one)
  whose first ``N`` tokens equal the previous sent request's (``N`` = ``prefix_tokens``,
  1,024 by default: OpenAI's smallest cached prefix). Requests are compared message by
  message, a message counting as shared only when identical, so "the first N tokens are
  equal" means: the leading messages identical in both requests hold at least
  ``min(N, tokens of the previous request)`` tokens. A provider's prompt cache can serve
  a stable request's prefix; a request that rewrote its beginning (a window that moved,
  a summary replaced) pays in full. **Cacheable share** is the mean fraction of each
  request's tokens in that identical leading run;
- **retention**: for sessions with ground truth (generated ones), the fraction of the
  facts a request needs (the original task, every path modified so far, the last error so
  far: :meth:`GroundTruth.facts_at`) that are still present, by string search in every
  string of what is sent; the mean over requests, and at each session's last request;
- **cost** against the first policy: the difference of total tokens and, given a price
  per million input tokens, of money.

Two ways of replaying (``mode``): ``"full"`` (default): each request is the whole
recorded history so far, compacted (an application that keeps its full log and compacts
a copy before each call); ``"carry"``: each request is the previous request as sent plus
what came since (pydantic-ai's history processors, whose output replaces the stored
history, so what one compaction dropped stays dropped).

Engines: ``"local"`` spreads sessions over every core (``ProcessPoolExecutor``; the input
is streamed, a bounded number of sessions in flight); ``"ray"`` runs the same function in
Ray Data's ``map_batches`` over a dataset of sessions (``pip install "tokensieve[ray]"``).
Figures are aggregated in an order-independent way (integer sums, exactly rounded float
sums, sorted values), so both engines give identical figures on the same input.

Example:
    >>> from tokensieve.analyze.replay import load_policy, replay
    >>> from tokensieve.analyze.simulate import generate_sessions
    >>> sessions = list(generate_sessions(2, format="openai", min_requests=40))
    >>> report = replay(sessions, [load_policy("cerebras"), load_policy("cerebras:max_exchanges=8")])
    >>> [p["policy"] for p in report["policies"]]
    ['cerebras', 'cerebras:max_exchanges=8']
    >>> report["policies"][0]["requests"] == report["policies"][1]["requests"] >= 80
    True
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import tokensieve
from tokensieve import BudgetConfig, BudgetExceededError
from tokensieve.analyze import invariants
from tokensieve.analyze.simulate import Session, SessionReadError, SessionSource, iter_sources, text_of

__all__ = [
    "DEFAULT_PREFIX_TOKENS",
    "Policy",
    "ReplayOptions",
    "aggregate",
    "load_policy",
    "replay",
    "replay_paths",
    "replay_session",
]

#: OpenAI caches prompt prefixes from 1,024 tokens on: the default ``N`` of prefix stability.
DEFAULT_PREFIX_TOKENS = 1024
#: Violation messages kept per policy in a report (the count is always complete).
EXAMPLES = 5


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True, slots=True)
class Policy:
    """A named budget to replay: ``config`` is what ``Compactor`` gets."""

    name: str
    config: BudgetConfig


def _window_only() -> BudgetConfig:
    """The reference budget (``cerebras``) with every compaction step but the window off
    (:meth:`ContextStrategies.off`): the window alone, as before the pipeline."""
    from tokensieve import ContextStrategies

    return BudgetConfig.preset("cerebras").replace(context=ContextStrategies.off())


#: Policies known by name besides the presets.
BUILTIN_POLICIES: dict[str, Callable[[], BudgetConfig]] = {"window-only": _window_only}


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _from_mapping(data: dict[str, Any], name: str, where: str) -> Policy:
    fields = dict(data)
    label = str(fields.pop("name", name))
    base = fields.pop("preset", None)
    try:
        if base is not None:
            config = _named(str(base)).replace(**fields)
        else:
            config = BudgetConfig(**fields)
    except (TypeError, tokensieve.ConfigurationError) as e:
        raise tokensieve.ConfigurationError(f"policy {where}: {e}") from None
    return Policy(label, config)


def _named(name: str) -> BudgetConfig:
    if name in BUILTIN_POLICIES:
        return BUILTIN_POLICIES[name]()
    return BudgetConfig.preset(name)


def load_policy(spec: str | BudgetConfig | Policy, name: str | None = None) -> Policy:
    """A policy from a preset name (``"cerebras"``), a built-in name (``"window-only"``),
    a name with overrides (``"cerebras:max_exchanges=8,target_input_tokens=12000"``), a
    TOML or JSON file of ``BudgetConfig`` fields (optionally ``preset = "..."`` as the
    base, ``name = "..."`` for the report; tables for nested fields), or a ``BudgetConfig``.

    Example:
        >>> from tokensieve.analyze.replay import load_policy
        >>> load_policy("cerebras:max_exchanges=8").config.max_exchanges
        8
        >>> load_policy("window-only").name
        'window-only'
    """
    if isinstance(spec, Policy):
        return spec
    if isinstance(spec, BudgetConfig):
        return Policy(name or "custom", spec)
    if os.path.isfile(spec) or spec.endswith((".toml", ".json")):
        label = name or os.path.splitext(os.path.basename(spec))[0]
        try:
            with open(spec, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise tokensieve.ConfigurationError(f"policy {spec}: {e.strerror or e}") from None
        if spec.endswith(".toml"):
            try:
                import tomllib
            except ImportError:  # Python 3.10
                try:
                    import tomli as tomllib  # type: ignore[no-redef, import-not-found, unused-ignore]
                except ImportError:
                    raise tokensieve.ConfigurationError(
                        f"policy {spec}: reading TOML needs Python 3.11 or tomli (pip install tomli); "
                        "or write the policy as JSON"
                    ) from None
            try:
                data = tomllib.loads(raw.decode("utf-8"))
            except tomllib.TOMLDecodeError as e:
                raise tokensieve.ConfigurationError(f"policy {spec}: {e}") from None
        else:
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as e:
                raise tokensieve.ConfigurationError(f"policy {spec}: line {e.lineno}: {e.msg}") from None
        if not isinstance(data, dict):
            raise tokensieve.ConfigurationError(f"policy {spec}: expected a table / object of BudgetConfig fields")
        return _from_mapping(data, label, spec)
    base, _, overrides = spec.partition(":")
    fields: dict[str, Any] = {}
    for item in filter(None, overrides.split(",")):
        key, eq, text = item.partition("=")
        if not eq:
            raise tokensieve.ConfigurationError(f"policy {spec!r}: expected field=value, got {item!r}")
        fields[key.strip()] = _value(text.strip())
    try:
        config = _named(base)
    except tokensieve.ConfigurationError:
        known = sorted([*tokensieve.PRESETS, *BUILTIN_POLICIES])
        raise tokensieve.ConfigurationError(
            f"unknown policy {base!r}: not a file, a preset or a built-in ({', '.join(known)})"
        ) from None
    return Policy(name or spec, config.replace(**fields) if fields else config)


# --------------------------------------------------------------------------- one session


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """How to replay: ``mode`` ``"full"`` or ``"carry"`` (module doc), ``prefix_tokens``
    the ``N`` of prefix stability."""

    mode: str = "full"
    prefix_tokens: int = DEFAULT_PREFIX_TOKENS

    def __post_init__(self) -> None:
        if self.mode not in ("full", "carry"):
            raise tokensieve.ConfigurationError(f"mode must be 'full' or 'carry', got {self.mode!r}")
        if not isinstance(self.prefix_tokens, int) or self.prefix_tokens <= 0:
            raise tokensieve.ConfigurationError(f"prefix_tokens must be a positive int, got {self.prefix_tokens!r}")


class _Memo:
    """Per message object (the caller's own objects come back from compaction untouched,
    so most are seen again at every request): its canonical text and its strings. Holds
    the objects, so an id is never reused while the memo lives."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[Any, str, str]] = {}

    def get(self, message: Any) -> tuple[str, str]:
        item = self._items.get(id(message))
        if item is None:
            if isinstance(message, dict):
                key = json.dumps(message, sort_keys=True, ensure_ascii=False, default=str)
            else:
                key = repr(message)
            item = (message, key, text_of(message))
            self._items[id(message)] = item
        return item[1], item[2]


def _policy_figures(session: Session, policy: Policy, options: ReplayOptions) -> dict[str, Any]:
    fmt = session.format
    compactor = tokensieve.Compactor(policy.config)
    encoding = policy.config.encoding
    system_tokens = tokensieve.count_tokens(session.system, encoding) if session.system else 0
    memo = _Memo()
    tokens: list[int] = []
    uncompacted = 0
    blocked = compacted = messages_kept = exchanges_kept = 0
    violating = 0
    examples: list[str] = []
    stable = pairs = 0
    shares: list[float] = []
    retention: list[float] = []
    previous: tuple[list[str], list[int]] | None = None
    carried: list[Any] | None = None
    consumed = 0
    lengths = session.request_lengths()
    for number, length in enumerate(lengths):
        if options.mode == "carry" and carried is not None:
            request = carried + session.messages[consumed:length]
        else:
            request = session.messages[:length]
        consumed = length
        try:
            result = compactor.compact(request, format=fmt)  # type: ignore[arg-type]
        except BudgetExceededError:
            blocked += 1
            carried = request
            continue
        except (tokensieve.InvalidMessageError, tokensieve.InputTypeError) as e:
            raise SessionReadError(f"{session.id}, request {number + 1} ({length} messages): {e}") from None
        out = result.messages
        carried = out
        sent = tokensieve.count_request_tokens(out, format=fmt, encoding=encoding) + system_tokens  # type: ignore[arg-type]
        tokens.append(sent)
        uncompacted += result.tokens_before
        compacted += result.action == "compacted"
        messages_kept += len(out)
        exchanges_kept += result.exchanges_kept
        problems = invariants.violations(fmt, out, request)
        if problems:
            violating += 1
            if len(examples) < EXAMPLES:
                examples.append(f"{session.id} request {number + 1}: {problems[0]}")
        keys_texts = [memo.get(m) for m in out]
        keys = [k for k, _ in keys_texts]
        per_message = [int(t) for t in tokensieve.count_history_tokens(out, encoding, format=fmt)]  # type: ignore[arg-type]
        if previous is not None:
            prev_keys, prev_tokens = previous
            shared_prev = shared_cur = 0
            for a, b, ta, tb in zip(prev_keys, keys, prev_tokens, per_message):
                if a != b:
                    break
                shared_prev += ta
                shared_cur += tb
            pairs += 1
            stable += shared_prev >= min(options.prefix_tokens, sum(prev_tokens))
            shares.append(shared_cur / max(1, sum(per_message)))
        previous = (keys, per_message)
        if session.truth is not None:
            facts = session.truth.facts_at(length)
            text = "\n".join(t for _, t in keys_texts)
            if session.system:
                text += "\n" + session.system
            retention.append(sum(1 for fact in facts if fact in text) / len(facts))
    return {
        "requests": len(lengths),
        "blocked": blocked,
        "compacted": compacted,
        "tokens": tokens,
        "uncompacted_tokens": uncompacted,
        "messages_kept": messages_kept,
        "exchanges_kept": exchanges_kept,
        "violating_requests": violating,
        "examples": examples,
        "prefix_stable": stable,
        "prefix_pairs": pairs,
        "prefix_shares": shares,
        "retention": retention,
        "final_retention": retention[-1] if retention else None,
    }


def replay_session(session: Session, policies: Sequence[Policy], options: ReplayOptions | None = None) -> dict[str, Any]:
    """The figures of one session under each policy (plain JSON values, aggregated by
    :func:`aggregate`).

    Example:
        >>> from tokensieve.analyze.replay import load_policy, replay_session
        >>> from tokensieve.analyze.simulate import generate_session
        >>> figures = replay_session(generate_session(0, "anthropic", min_requests=20), [load_policy("cerebras")])
        >>> figures["policies"][0]["violating_requests"]
        0
    """
    options = options or ReplayOptions()
    return {
        "id": session.id,
        "format": session.format,
        "policies": [_policy_figures(session, p, options) for p in policies],
    }


# --------------------------------------------------------------------------- aggregation


def _percentile(ordered: Sequence[int] | Any, q: float) -> int | None:
    """Nearest rank: the smallest value with at least ``q`` percent of values at or below it."""
    if len(ordered) == 0:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return int(ordered[rank - 1])


def aggregate(
    results: Iterable[dict[str, Any]],
    policies: Sequence[Policy],
    *,
    options: ReplayOptions | None = None,
    price: float | None = None,
) -> dict[str, Any]:
    """One report from per-session figures, in any order (the figures do not depend on it).

    ``price``: dollars per million input tokens, for the cost columns."""
    options = options or ReplayOptions()
    import numpy as np

    n = len(policies)
    ints = ("requests", "blocked", "compacted", "uncompacted_tokens", "messages_kept", "exchanges_kept",
            "violating_requests", "prefix_stable", "prefix_pairs")
    totals: list[dict[str, int]] = [dict.fromkeys(ints, 0) for _ in range(n)]
    tokens: list[list[Any]] = [[] for _ in range(n)]
    shares: list[list[float]] = [[] for _ in range(n)]
    retention: list[list[float]] = [[] for _ in range(n)]
    final: list[list[float]] = [[] for _ in range(n)]
    examples: list[list[str]] = [[] for _ in range(n)]
    sessions = 0
    formats: set[str] = set()
    for result in results:
        sessions += 1
        formats.add(result["format"])
        for k, figures in enumerate(result["policies"]):
            for key in ints:
                totals[k][key] += int(figures[key])
            tokens[k].append(np.asarray(figures["tokens"], dtype=np.int64))
            shares[k].extend(figures["prefix_shares"])
            retention[k].extend(figures["retention"])
            if figures["final_retention"] is not None:
                final[k].append(figures["final_retention"])
            examples[k].extend(figures["examples"])
    rows = []
    for k, policy in enumerate(policies):
        t = totals[k]
        values = np.sort(np.concatenate(tokens[k])) if tokens[k] else np.zeros(0, dtype=np.int64)
        sent = len(values)
        total = int(values.sum())
        row: dict[str, Any] = {
            "policy": policy.name,
            "requests": t["requests"],
            "sent": sent,
            "blocked": t["blocked"],
            "compacted": t["compacted"],
            "mean_tokens": total / sent if sent else None,
            "p50_tokens": _percentile(values, 50),
            "p95_tokens": _percentile(values, 95),
            "max_tokens": int(values[-1]) if sent else None,
            "total_tokens": total,
            "mean_uncompacted_tokens": t["uncompacted_tokens"] / sent if sent else None,
            "mean_messages_kept": t["messages_kept"] / sent if sent else None,
            "mean_exchanges_kept": t["exchanges_kept"] / sent if sent else None,
            "violating_requests": t["violating_requests"],
            "violation_examples": sorted(examples[k])[:EXAMPLES],
            "prefix_stability": t["prefix_stable"] / t["prefix_pairs"] if t["prefix_pairs"] else None,
            "cacheable_share": math.fsum(shares[k]) / len(shares[k]) if shares[k] else None,
            "retention": math.fsum(retention[k]) / len(retention[k]) if retention[k] else None,
            "final_retention": math.fsum(final[k]) / len(final[k]) if final[k] else None,
        }
        if price is not None:
            row["cost"] = total * price / 1_000_000
        rows.append(row)
    first = rows[0]["total_tokens"] if rows else 0
    for row in rows:
        row["tokens_vs_first"] = row["total_tokens"] - first
        row["tokens_vs_first_pct"] = 100 * (row["total_tokens"] - first) / first if first else None
        if price is not None:
            row["cost_vs_first"] = row["cost"] - rows[0]["cost"]
    return {
        "sessions": sessions,
        "formats": sorted(formats),
        "mode": options.mode,
        "prefix_tokens": options.prefix_tokens,
        "price_per_million": price,
        "policies": rows,
    }


# --------------------------------------------------------------------------- engines


def replay(
    sessions: Iterable[Session],
    policies: Sequence[Policy | str],
    *,
    options: ReplayOptions | None = None,
    price: float | None = None,
) -> dict[str, Any]:
    """Replay in-memory sessions in this process and aggregate (see the module example)."""
    resolved = [load_policy(p) for p in policies]
    options = options or ReplayOptions()
    return aggregate((replay_session(s, resolved, options) for s in sessions), resolved, options=options, price=price)


def _replay_source(source: SessionSource, policies: Sequence[Policy], options: ReplayOptions, format: str | None) -> dict[str, Any]:
    return replay_session(source.load(format), policies, options)


def _run_local(
    sources: Iterator[SessionSource],
    policies: Sequence[Policy],
    options: ReplayOptions,
    format: str | None,
    workers: int,
    tick: Callable[[], None],
) -> Iterator[dict[str, Any]]:
    if workers <= 1:
        for source in sources:
            yield _replay_source(source, policies, options, format)
            tick()
        return
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: set[Any] = set()
        for source in sources:
            pending.add(pool.submit(_replay_source, source, policies, options, format))
            if len(pending) >= 2 * workers:  # a bounded number in flight: the input streams
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    tick()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
                tick()


class _RayBatch:
    """The function ``map_batches`` applies: a batch of session texts to their figures."""

    def __init__(self, policies: Sequence[Policy], options: ReplayOptions, format: str | None) -> None:
        self.policies, self.options, self.format = list(policies), options, format

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = []
        if "bytes" in batch:  # read_binary_files: one session per file
            for path, raw in zip(batch["path"], batch["bytes"]):
                source = SessionSource((str(path), 0), str(path))
                out.append(json.dumps(replay_session(_load_bytes(source, bytes(raw), self.format), self.policies, self.options)))
        else:  # read_text: one session per line
            for path, line in zip(batch["path"], batch["text"]):
                if not str(line).strip():
                    continue
                source = SessionSource((str(path), 0), str(path), str(line))
                out.append(json.dumps(replay_session(source.load(self.format), self.policies, self.options)))
        return {"figures": out}


def _load_bytes(source: SessionSource, raw: bytes, format: str | None) -> Session:
    from tokensieve.analyze.simulate import session_from_json

    if source.path.endswith(".jsonl"):
        return session_from_json([json.loads(x) for x in raw.splitlines() if x.strip()], id=source.path, format=format)
    return session_from_json(json.loads(raw), id=source.path, format=format)


def _run_ray(paths: Sequence[str], policies: Sequence[Policy], options: ReplayOptions, format: str | None,
             address: str | None) -> Iterator[dict[str, Any]]:
    try:
        import ray
        import ray.data
    except ImportError:
        raise tokensieve.ConfigurationError(
            'the ray engine needs Ray Data: pip install "tokensieve[ray]"'
        ) from None
    per_line: list[str] = []
    per_file: list[str] = []
    seen: set[str] = set()
    for source in iter_sources(paths):  # sniffs each file's first line only, and lists folders
        if source.path in seen:
            continue
        seen.add(source.path)
        (per_line if source.text is not None else per_file).append(source.path)
    started = not ray.is_initialized()
    if started:  # a local instance (or the cluster at `address`), shut down when done
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        batch = _RayBatch(policies, options, format)
        datasets = []
        if per_line:
            datasets.append(ray.data.read_text(per_line, include_paths=True))
        if per_file:
            datasets.append(ray.data.read_binary_files(per_file, include_paths=True))
        for dataset in datasets:
            # Small batches: a session is seconds of work, so spreading them beats batching them.
            for row in dataset.map_batches(batch, batch_size=4).iter_rows():
                yield json.loads(row["figures"])
    finally:
        if started:
            ray.shutdown()


def replay_paths(
    paths: Sequence[str],
    policies: Sequence[Policy | str],
    *,
    options: ReplayOptions | None = None,
    price: float | None = None,
    engine: str = "local",
    workers: int | None = None,
    format: str | None = None,
    ray_address: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Replay every session of ``paths`` (JSONL files, session files, folders of them)
    through ``policies`` with the ``"local"`` engine (``workers`` processes, by default one
    per core) or the ``"ray"`` engine, and aggregate.

    Example:
        >>> import os, tempfile
        >>> from tokensieve.analyze.replay import replay_paths
        >>> from tokensieve.analyze.simulate import generate_sessions, write_jsonl
        >>> path = os.path.join(tempfile.mkdtemp(), "sessions.jsonl")
        >>> write_jsonl(generate_sessions(2, min_requests=20), path)
        2
        >>> replay_paths([path], ["cerebras"], workers=1)["sessions"]
        2
    """
    resolved = [load_policy(p) for p in policies]
    options = options or ReplayOptions()
    if engine == "ray":
        results: Iterable[dict[str, Any]] = _run_ray(list(paths), resolved, options, format, ray_address)
        return aggregate(results, resolved, options=options, price=price)
    if engine != "local":
        raise tokensieve.ConfigurationError(f"engine must be 'local' or 'ray', got {engine!r}")
    count = workers if workers is not None else (os.cpu_count() or 1)
    if not progress:
        return aggregate(_run_local(iter_sources(paths), resolved, options, format, count, lambda: None),
                         resolved, options=options, price=price)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("replaying sessions"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True, console=_stderr_console()) as bar:
        task = bar.add_task("replay", total=None)
        results = _run_local(iter_sources(paths), resolved, options, format, count, lambda: bar.advance(task))
        return aggregate(results, resolved, options=options, price=price)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


# --------------------------------------------------------------------------- the command


def _fmt(value: Any, kind: str = "int") -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "float":
        return f"{value:,.1f}"
    if kind == "signed":
        return f"{value:+,}"
    if kind == "money":
        return f"${value:,.4f}"
    if kind == "smoney":
        return f"{'-' if value < 0 else '+'}${abs(value):,.4f}"
    return f"{value:,}"


def table_rows(report: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The report as (figure, one cell per policy) rows, as the table shows it."""
    rows = report["policies"]
    spec: list[tuple[str, str, str]] = [
        ("requests", "requests", "int"),
        ("blocked (over the hard limit)", "blocked", "int"),
        ("compacted", "compacted", "int"),
        ("mean input tokens / request", "mean_tokens", "float"),
        ("p50 input tokens", "p50_tokens", "int"),
        ("p95 input tokens", "p95_tokens", "int"),
        ("total input tokens", "total_tokens", "int"),
        ("tokens vs first policy", "tokens_vs_first", "signed"),
        ("mean messages kept", "mean_messages_kept", "float"),
        ("mean exchanges kept", "mean_exchanges_kept", "float"),
        (f"prefix stability (first {report['prefix_tokens']:,} tokens)", "prefix_stability", "pct"),
        ("cacheable prefix share", "cacheable_share", "pct"),
        ("retention (task, paths, last error)", "retention", "pct"),
        ("retention at the last request", "final_retention", "pct"),
        ("requests breaking an invariant", "violating_requests", "int"),
    ]
    if report.get("price_per_million") is not None:
        spec += [("cost", "cost", "money"), ("cost vs first policy", "cost_vs_first", "smoney")]
    out = []
    for label, key, kind in spec:
        cells = []
        for row in rows:
            value = row.get(key)
            if key == "tokens_vs_first" and row.get("tokens_vs_first_pct") is not None and row is not rows[0]:
                cells.append(f"{value:+,} ({row['tokens_vs_first_pct']:+.1f}%)")
            else:
                cells.append(_fmt(value, kind))
        out.append((label, cells))
    return out


def render(report: dict[str, Any], console: Any | None = None) -> None:
    """Print the side-by-side table (rich on a terminal, plain text otherwise)."""
    title = (f"Replay of {report['sessions']:,} session(s) ({', '.join(report['formats']) or 'none'}), "
             f"mode {report['mode']}")
    rows = table_rows(report)
    names = [p["policy"] for p in report["policies"]]
    if console is not None:
        from rich.table import Table

        table = Table(title=title)
        table.add_column("figure")
        for name in names:
            table.add_column(name, justify="right")
        for label, cells in rows:
            table.add_row(label, *cells)
        console.print(table)
    else:
        width = max(len(label) for label, _ in rows)
        widths = [max(len(n), *(len(c[k]) for _, c in rows)) for k, n in enumerate(names)]
        print(title)
        print(" " * width + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths)))
        for label, cells in rows:
            print(label.ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    for row in report["policies"]:
        for example in row["violation_examples"]:
            print(f"{row['policy']}: {example}", file=sys.stderr)


def replay_command(args: Any) -> int:
    """``tokensieve replay``: exit 0 when every output kept the invariants, 1 otherwise."""
    from tokensieve.analyze.simulate import FORMATS

    missing = [p for p in args.sessions if not os.path.exists(p)]
    if missing:
        raise tokensieve.ConfigurationError(f"{missing[0]}: No such file or directory")
    if args.format is not None and args.format not in FORMATS:
        raise tokensieve.ConfigurationError(f"unknown format {args.format!r}")
    policies = [load_policy(p) for p in (args.policy or ["cerebras"])]
    options = ReplayOptions(mode=args.mode, prefix_tokens=args.prefix_tokens)
    interactive = sys.stderr.isatty() and not args.json
    report = replay_paths(args.sessions, policies, options=options, price=args.price, engine=args.engine,
                          workers=args.workers, format=args.format, ray_address=args.ray_address,
                          progress=interactive)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console = None
        if sys.stdout.isatty():
            from rich.console import Console

            console = Console()
        render(report, console)
    return 1 if any(p["violating_requests"] for p in report["policies"]) else 0


def simulate_command(args: Any) -> int:
    """``tokensieve simulate``: write generated sessions as fixtures."""
    from tokensieve.analyze.simulate import generate_sessions, write_jsonl, write_session_files

    os.makedirs(args.output, exist_ok=True)
    sessions = generate_sessions(args.sessions, seed=args.seed, format=args.format, min_requests=args.min_requests)
    if args.per_file:
        written = len(write_session_files(sessions, args.output))
        where = args.output
    else:
        where = os.path.join(args.output, f"sessions-{args.format}.jsonl")
        written = write_jsonl(sessions, where)
    print(f"wrote {written} session(s) ({args.format}, at least {args.min_requests} requests each) to {where}",
          file=sys.stderr)
    return 0


def add_parsers(sub: Any) -> None:
    """The ``replay`` and ``simulate`` subcommands (called by ``tokensieve.__main__``)."""
    from tokensieve.analyze.simulate import FORMATS

    p = sub.add_parser(
        "replay",
        help="replay sessions request by request through policies and compare them side by side",
        description="Replay recorded or generated sessions (JSONL: one session per line; or one .json file per "
        "session; or folders of them) request by request through one or more policies, and compare tokens, "
        "blocked requests, invariants, prefix stability, retention and cost side by side.",
    )
    p.add_argument("sessions", nargs="+", metavar="SESSIONS", help="JSONL / JSON session files or folders")
    p.add_argument("--policy", action="append", metavar="POLICY",
                   help="a preset or built-in name (window-only), NAME:field=value,..., or a TOML/JSON file of "
                   "BudgetConfig fields; repeat to compare (the first is the reference; default: cerebras)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: every core of this machine; ray: Ray Data (needs tokensieve[ray])")
    p.add_argument("--workers", type=int, metavar="N", help="local engine: processes (default: one per core)")
    p.add_argument("--ray-address", metavar="ADDR", help="ray engine: the cluster to join (default: a local one)")
    p.add_argument("--price", type=float, metavar="USD", help="dollars per million input tokens, for the cost rows")
    p.add_argument("--mode", choices=["full", "carry"], default="full",
                   help="full: each request is the whole history so far; carry: the previous request as sent "
                   "plus what came since (pydantic-ai's history processors)")
    p.add_argument("--prefix-tokens", type=int, default=DEFAULT_PREFIX_TOKENS, metavar="N",
                   help=f"N of prefix stability (default {DEFAULT_PREFIX_TOKENS})")
    p.add_argument("--format", choices=list(FORMATS), help="the sessions' format (default: recorded or detected)")
    p.set_defaults(run=replay_command)

    s = sub.add_parser("simulate", help="write generated coding-agent sessions (fixtures with ground truth)",
                       description="Generate deterministic simulated coding-agent sessions with their ground truth.")
    s.add_argument("--sessions", type=int, default=20, metavar="N", help="how many (default 20)")
    s.add_argument("--format", choices=list(FORMATS), default="openai", help="the history format (default openai)")
    s.add_argument("--min-requests", type=int, default=200, metavar="N", help="requests per session at least (default 200)")
    s.add_argument("--seed", type=int, default=0, help="the seed (default 0)")
    s.add_argument("--per-file", action="store_true", help="one <id>.json file per session instead of one JSONL file")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder to write to")
    s.set_defaults(run=simulate_command)
