"""The terminal report of ``tokensieve analyze``: rich tables of the figures.

On a terminal the tables have colour; piped, the same tables are drawn in plain
characters (so ``tokensieve analyze log.csv | less`` reads the same). ``--json`` prints
the figures themselves instead (see :func:`tokensieve.analyze.figures.figures`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["render"]

#: Sessions listed one by one unless --verbose (the trend table groups them all).
SESSION_LIMIT = 30


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.0%}"


def _ratio(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}:1"


def _met(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "not met")


def _table(title: str, columns: list[tuple[str, str]], caption: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, caption=caption, title_justify="left")
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    return table


def render(report: dict[str, Any], console: Any, *, verbose: bool = False) -> None:
    """Print the report's tables on a rich console.

    Example:
        >>> from rich.console import Console
        >>> from tokensieve.analyze.figures import Aggregate, figures
        >>> from tokensieve.analyze.sources import Record
        >>> agg = Aggregate().add_all([Record(0.0, model="m", input_tokens=9_000, output_tokens=100, session="a")])
        >>> console = Console(width=100, record=True, file=open("/dev/null", "w"))
        >>> render(figures(agg, "cerebras"), console)
        >>> "Session Efficiency Trend" in console.export_text()
        True
    """
    b = report["budget"]
    o = report["overall"]
    sources = ", ".join(f"{s['path']} ({s['format']}, {s['records']:,} records)" for s in report["sources"])
    console.print(f"tokensieve analyze: {sources or 'no sources'}", markup=False)
    tpd = b["tokens_per_day"]
    console.print(
        f"budget: {b['preset']}: window {b['max_input_tokens']:,}, compaction above {b['compaction_tokens']:,}, "
        f"hard limit {b['hard_limit_tokens']:,}, target {b['target_input_tokens']:,}"
        + (f", {tpd:,} tokens a day" if tpd else "")
        + (f", {b['tokens_per_minute']:,} tokens a minute" if b["tokens_per_minute"] else ""),
        markup=False,
        style="dim",
    )
    if report["requests_from"] != "requests":
        console.print(f"no request usage in the log: per-request figures from {report['requests_from']}", markup=False)
    if not o["requests"] and not o["rate_limited"]:
        console.print("no requests found", markup=False)
        return

    # The reference's "metrics before/target" table.
    t = _table("Usage Analysis", [("Metric", "left"), ("Value", "right"), ("Target", "right"), ("Status", "left")],
               caption=f"{o['requests']:,} requests analyzed")
    for row in report["targets"]:
        t.add_row(row["metric"], row["shown"], row["target"], _met(row["met"]))
    console.print(t)

    # The reference's session efficiency trend.
    if report["session_trend"]:
        t = _table("Session Efficiency Trend", [("Session", "left"), ("Avg Tokens", "right"), ("Status", "left")],
                   caption=f"average input tokens per request against the target {b['target_input_tokens']:,} "
                   f"and the hard limit {b['hard_limit_tokens']:,}")
        for row in report["session_trend"]:
            lo, hi = row["min_avg"], row["max_avg"]
            shown = _n(lo) if round(lo) == round(hi) else f"{lo:,.0f}-{hi:,.0f}"
            t.add_row(row["sessions"], shown, row["status"])
        console.print(t)

    quantiles = report["quantiles"]
    t = _table(
        "Requests by model",
        [("model", "left"), ("requests", "right"), ("avg input", "right"), ("p50", "right"), ("p95", "right"),
         ("avg output", "right"), ("in:out", "right"), ("cached", "right"), ("429s", "right"), ("errors", "right")],
        caption=f"p50/p95 of input tokens per request ({quantiles})",
    )
    for name, g in [("all", o), *report["models"].items()] if len(report["models"]) > 1 else [*report["models"].items()]:
        t.add_row(name, _n(g["requests"]), _n(g["avg_input_tokens"]), _n(g.get("p50_input_tokens")),
                  _n(g.get("p95_input_tokens")), _n(g["avg_output_tokens"]), _ratio(g["input_output_ratio"]),
                  _pct(g["cache_share"]), _n(g["rate_limited"]), _n(g["errors"]))
    console.print(t)

    if report["days"]:
        t = _table(
            "Requests by day (UTC)",
            [("day", "left"), ("requests", "right"), ("avg input", "right"), ("p50", "right"), ("p95", "right"),
             ("tokens", "right"), ("day limit", "right"), ("429s", "right")],
            caption=f"day limit: {tpd:,} tokens (input + output)" if tpd else "no day limit in the budget",
        )
        for d in report["days"]:
            t.add_row(d["day"], _n(d["requests"]), _n(d["avg_input_tokens"]), _n(d.get("p50_input_tokens")),
                      _n(d.get("p95_input_tokens")), _n(d["total_tokens"]), _pct(d["limit_use"]), _n(d["rate_limited"]))
        console.print(t)

    if report["limits"]:
        t = _table("Peaks against the limits", [("model", "left"), ("peak minute", "right"), ("tokens/min limit", "right"),
                                                ("peak requests/min", "right"), ("peak rolling 24 h", "right"),
                                                ("day limit", "right")])
        for model, m in report["limits"].items():
            t.add_row(
                model or "(not logged)",
                f"{m['peak_minute_tokens']:,} at {m['peak_minute']}",
                "-" if m["tokens_per_minute_limit"] is None else f"{m['tokens_per_minute_limit']:,} ({_pct(m['peak_minute_use'])})",
                f"{m['peak_minute_requests']:,}" + ("" if m["requests_per_minute_limit"] is None else f" of {m['requests_per_minute_limit']:,}"),
                f"{m['peak_rolling_day_tokens']:,}",
                "-" if m["tokens_per_day_limit"] is None else f"{m['tokens_per_day_limit']:,} ({_pct(m['peak_rolling_day_use'])})",
            )
        console.print(t)

    rl = report["rate_limits"]
    warn = report["capacity_warnings"]
    if rl["episodes"]:
        t = _table(
            "429 episodes and what preceded them",
            [("start", "left"), ("minutes", "right"), ("429s", "right"), ("warnings in the hour before", "left"),
             ("first warning", "right"), ("day use at start", "right")],
            caption=f"{rl['episodes_preceded_by_warnings']} of {len(rl['episodes'])} episodes preceded by capacity warnings",
        )
        for e in rl["episodes"]:
            before = ", ".join(f"{name} x{n}" for name, n in e["warnings_before"].items()) or "none"
            if e["warnings_source"]:
                before += f" ({e['warnings_source']})"
            lead = "-" if e["warning_lead_seconds"] is None else f"{e['warning_lead_seconds'] / 60:.0f} min before"
            t.add_row(e["start"], str(e["minutes"]), _n(e["responses_429"]), before, lead, _pct(e["day_limit_use_at_start"]))
        console.print(t)
    elif rl["responses_429"]:
        console.print(f"429 answers: {rl['responses_429']:,} (no times in the log)", markup=False)
    logged = ", ".join(f"{k} x{v:,}" for k, v in warn["logged"].items()) or "none"
    derived = ", ".join(f"{k} x{v:,}" for k, v in warn["derived"].items()) or "none"
    console.print(f"capacity warnings: logged {logged}; derived from the budget's limits (per minute) {derived}", markup=False)

    if report["tasks"]:
        inferred = any(row["inferred_from_max_tokens"] for row in report["tasks"])
        t = _table(
            "Task classes: output budgets against tokens produced",
            [("task", "left"), ("requests", "right"), ("share", "right"), ("budget", "right"), ("avg output", "right"),
             ("p95 output", "right"), ("hit max_tokens", "right")],
            caption="task classes inferred from max_tokens by the budget's output budgets" if inferred else None,
        )
        for row in report["tasks"]:
            hits = "-" if row["hit_max_tokens"] is None else f"{row['hit_max_tokens']:,} ({row['hit_max_tokens_rate']:.1%})"
            t.add_row(row["task"], _n(row["requests"]), _pct(row["share"]), _n(row["output_budget"]),
                      _n(row["avg_output_tokens"]), _n(row["p95_output_tokens"]), hits)
        console.print(t)

    cache = report["cache"]
    if cache:
        console.print(f"prompt cache: {cache['cached_tokens']:,} of {cache['input_tokens_reporting']:,} input tokens "
                      f"served from the cache ({cache['share']:.1%})", markup=False)
    comp = report["compactions"]
    if comp:
        console.print(f"compactions: {comp['count']:,} spans, {comp['compacted']:,} dropped messages, "
                      f"{comp['tokens_saved']:,} tokens saved", markup=False)
    if report["budget_blocked"]:
        console.print(f"requests blocked over the hard limit: {report['budget_blocked']:,}", markup=False)

    sessions = report["sessions"]
    if sessions:
        shown = sessions if verbose or len(sessions) <= SESSION_LIMIT else sessions[:SESSION_LIMIT]
        t = _table(
            "Sessions in order",
            [("#", "right"), ("session", "left"), ("first request", "left"), ("requests", "right"),
             ("avg input", "right"), ("p50", "right"), ("p95", "right"), ("in:out", "right"), ("status", "left")],
            caption=None if shown is sessions else f"the first {SESSION_LIMIT} of {len(sessions):,} (--verbose lists all)",
        )
        for s in shown:
            t.add_row(str(s["order"]), s["session"], s["first"] or "-", _n(s["requests"]), _n(s["avg_input_tokens"]),
                      _n(s.get("p50_input_tokens")), _n(s.get("p95_input_tokens")), _ratio(s["input_output_ratio"]),
                      s["status"])
        console.print(t)
