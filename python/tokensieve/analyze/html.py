"""The HTML report of ``tokensieve analyze --html``: one self-contained file.

Plots are plotly's (``pip install "tokensieve[report]"``), with plotly.js inlined once
in the page, so the file opens offline and needs no CDN: tokens per request over time
with the compaction threshold and the hard limit drawn, daily use against the day limit,
per-session averages against the target, input against output per day, and the task
class mix; the reference's tables beside them. plotly is imported only here.
"""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["missing_plotly", "render_html", "write_html"]

_STATUS_COLOURS = {"within target": "#2a9d8f", "above target": "#e9c46a", "over the hard limit": "#e76f51"}


def missing_plotly() -> str | None:
    """None when plotly is installed, else the message telling how to get it.

    Example:
        >>> from tokensieve.analyze.html import missing_plotly
        >>> missing_plotly() is None or "tokensieve[report]" in missing_plotly()
        True
    """
    try:
        import plotly  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return 'the HTML report needs plotly: pip install "tokensieve[report]"'
    return None


def _figures(report: dict[str, Any]) -> list[tuple[str, Any]]:
    import plotly.graph_objects as go  # type: ignore[import-untyped,import-not-found,unused-ignore]

    b = report["budget"]
    s = report["series"]
    layout = {
        "template": "plotly_white",
        "height": 400,
        "width": 660,  # fixed: a responsive plot measured before the grid settles overflows its cell
        "margin": {"l": 60, "r": 20, "t": 80, "b": 50},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
    }
    figs: list[tuple[str, Any]] = []

    per = "minute" if s["step_seconds"] == 60 else "hour"
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=s["time"], y=s["avg_input_tokens"], mode="markers", name=f"average per request (per {per})",
                               marker={"size": 4, "color": "#457b9d"}))
    fig.add_trace(go.Scatter(x=s["time"], y=s["max_input_tokens"], mode="markers", name=f"largest request (per {per})",
                               marker={"size": 3, "color": "#a8dadc"}))
    limited = [(t, n) for t, n in zip(s["time"], s["responses_429"]) if n]
    if limited:
        fig.add_trace(go.Scatter(x=[t for t, _ in limited], y=[b["hard_limit_tokens"]] * len(limited), mode="markers",
                                 name="429 answers", marker={"symbol": "x", "size": 8, "color": "#d62828"},
                                 text=[f"{n} x 429" for _, n in limited]))
    fig.add_hline(y=b["compaction_tokens"], line_dash="dash", line_color="#f4a261",
                  annotation_text=f"compaction threshold {b['compaction_tokens']:,}")
    fig.add_hline(y=b["hard_limit_tokens"], line_color="#d62828", annotation_text=f"hard limit {b['hard_limit_tokens']:,}")
    fig.update_layout(title={"text": "Input tokens per request over time", "y": 0.97}, yaxis_title="input tokens", **layout)
    figs.append(("tokens-over-time", fig))

    days = report["days"]
    if days:
        fig = go.Figure(go.Bar(x=[d["day"] for d in days], y=[d["total_tokens"] for d in days], name="tokens",
                               marker_color=["#e76f51" if (d["limit_use"] or 0) >= b["warn_at"] else "#457b9d" for d in days],
                               text=[f"{d['limit_use']:.0%}" if d["limit_use"] is not None else "" for d in days]))
        if b["tokens_per_day"]:
            fig.add_hline(y=b["tokens_per_day"], line_color="#d62828", annotation_text=f"day limit {b['tokens_per_day']:,}")
            fig.add_hline(y=b["tokens_per_day"] * b["warn_at"], line_dash="dash", line_color="#f4a261",
                          annotation_text=f"{b['warn_at']:.0%}")
        fig.update_layout(title={"text": "Daily use against the day limit", "y": 0.97}, yaxis_title="tokens (input + output)", **layout)
        figs.append(("daily-use", fig))

    sessions = [x for x in report["sessions"] if x["avg_input_tokens"] is not None]
    if sessions:
        fig = go.Figure(go.Bar(x=[str(x["order"]) for x in sessions], y=[x["avg_input_tokens"] for x in sessions],
                               marker_color=[_STATUS_COLOURS.get(x["status"], "#888") for x in sessions],
                               hovertext=[x["session"] for x in sessions], name="average input tokens"))
        fig.add_hline(y=b["target_input_tokens"], line_dash="dash", line_color="#2a9d8f",
                      annotation_text=f"target {b['target_input_tokens']:,}")
        fig.add_hline(y=b["hard_limit_tokens"], line_color="#d62828", annotation_text=f"hard limit {b['hard_limit_tokens']:,}")
        fig.update_layout(title={"text": "Average input tokens per request, by session (in order)", "y": 0.97}, xaxis_title="session",
                          yaxis_title="input tokens", **layout)
        figs.append(("sessions", fig))

    if days:
        fig = go.Figure()
        fig.add_trace(go.Bar(x=[d["day"] for d in days], y=[d["input_tokens"] for d in days], name="input"))
        fig.add_trace(go.Bar(x=[d["day"] for d in days], y=[d["output_tokens"] for d in days], name="output",
                             text=[f"{d['input_output_ratio']:,.0f}:1" if d["input_output_ratio"] else "" for d in days]))
        fig.update_layout(title={"text": "Input against output tokens, by day", "y": 0.97}, barmode="group", yaxis_type="log",
                          yaxis_title="tokens (log scale)", **layout)
        figs.append(("input-output", fig))

    tasks = report["tasks"]
    if tasks:
        fig = go.Figure(go.Pie(labels=[t["task"] for t in tasks], values=[t["requests"] for t in tasks], hole=0.4,
                               sort=False, textinfo="label+percent"))
        fig.update_layout(title={"text": "Task class mix (requests)", "y": 0.97},
                          **{**layout, "legend": {"orientation": "v", "x": 1.0, "y": 0.5}})
        figs.append(("task-mix", fig))
    return figs


def _table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<section><h2>{html.escape(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"


def _n(x: Any) -> str:
    return "-" if x is None else f"{x:,.0f}"


def render_html(report: dict[str, Any]) -> str:
    """The report as one HTML page with plotly.js inlined (no network needed to view it)."""
    import plotly.io as pio  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped,import-not-found,unused-ignore]

    b = report["budget"]
    parts = []
    parts.append(_table("Usage analysis", ["Metric", "Value", "Target", "Status"],
                        [[t["metric"], t["shown"], t["target"], "" if t["met"] is None else ("met" if t["met"] else "not met")]
                         for t in report["targets"]]))
    if report["session_trend"]:
        parts.append(_table("Session efficiency trend", ["Session", "Avg Tokens", "Status"],
                            [[r["sessions"], f"{r['min_avg']:,.0f}-{r['max_avg']:,.0f}" if round(r["min_avg"]) != round(r["max_avg"])
                              else _n(r["min_avg"]), r["status"]] for r in report["session_trend"]]))
    episodes = report["rate_limits"]["episodes"]
    if episodes:
        parts.append(_table("429 episodes", ["start", "429s", "warnings in the hour before", "first warning", "day use at start"],
                            [[e["start"], e["responses_429"],
                              ", ".join(f"{k} x{v}" for k, v in e["warnings_before"].items()) or "none",
                              e["first_warning"] or "-",
                              "-" if e["day_limit_use_at_start"] is None else f"{e['day_limit_use_at_start']:.0%}"] for e in episodes]))
    if report["tasks"]:
        parts.append(_table("Task classes", ["task", "requests", "budget", "avg output", "p95 output", "hit max_tokens"],
                            [[t["task"], t["requests"], _n(t["output_budget"]), _n(t["avg_output_tokens"]),
                              _n(t["p95_output_tokens"]),
                              "-" if t["hit_max_tokens_rate"] is None else f"{t['hit_max_tokens']} ({t['hit_max_tokens_rate']:.1%})"]
                             for t in report["tasks"]]))
    plots = []
    for div_id, fig in _figures(report):
        plots.append(
            '<div class="plot">'
            + pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"displayModeBar": False})
            + "</div>"
        )
    sources = ", ".join(f"{s['path']} ({s['format']})" for s in report["sources"])
    data = json.dumps({k: v for k, v in report.items() if k != "series"}, default=str).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>tokensieve usage report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #1d3557; background: #fff; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }} h2 {{ font-size: 16px; margin: 18px 0 6px; }}
.meta {{ color: #666; font-size: 13px; }}
.tables {{ display: flex; flex-wrap: wrap; gap: 24px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.plots {{ display: grid; grid-template-columns: repeat(auto-fill, 670px); gap: 12px; }}
.plot {{ min-width: 0; overflow: hidden; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>tokensieve usage report</h1>
<p class="meta">{html.escape(sources)}: {report['overall']['requests']:,} requests; budget {html.escape(str(b['preset']))}
(compaction above {b['compaction_tokens']:,}, hard limit {b['hard_limit_tokens']:,}, target {b['target_input_tokens']:,} input tokens).</p>
<div class="tables">{''.join(parts)}</div>
<div class="plots">{''.join(plots)}</div>
<script type="application/json" id="figures">{data}</script>
</body></html>
"""


def write_html(report: dict[str, Any], path: str) -> None:
    """Write :func:`render_html` to ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(report))
