"""``tokensieve analyze`` (issue 14): the log readers, the figures, the terminal and JSON
reports and the HTML report (drawn in headless Chromium)."""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from tokensieve.__main__ import main
from tokensieve.analyze import figures as figures_module
from tokensieve.analyze.command import analyze
from tokensieve.analyze.figures import Aggregate, Sketch, figures
from tokensieve.analyze.fixtures import CSV_HEADER, usage_rows, write_usage_csv
from tokensieve.analyze.sources import LogFormatError, Record, detect_format, read_source

T0 = 1_793_610_000.0  # 2026-11-02T09:00:00Z


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> str:
    """The generated provider export (2,517 requests, 11 sessions, a 429 storm)."""
    path = str(tmp_path_factory.mktemp("analyze") / "usage.csv")
    write_usage_csv(path)
    return path


@pytest.fixture(scope="module")
def export_report(export) -> dict:
    return analyze([export], budget="cerebras", jobs=1)


def write(path, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def jsonl(path, objects) -> str:
    return write(path, "".join(json.dumps(o) + "\n" for o in objects))


# ------------------------------------------------------------------ the generated export


def test_generated_export_is_deterministic_and_shaped_like_the_reference_analysis(export_report):
    assert list(usage_rows(requests=300, sessions=3, days=1)) == list(usage_rows(requests=300, sessions=3, days=1))
    assert list(usage_rows(requests=300, sessions=3, days=1, seed=1)) != list(usage_rows(requests=300, sessions=3, days=1))
    r = export_report
    assert r["overall"]["requests"] == 2_517
    assert 25_000 <= r["overall"]["avg_input_tokens"] <= 30_000  # the reference: 28,326
    assert 75 <= r["overall"]["input_output_ratio"] <= 95  # the reference: 87:1
    assert r["peak_day"]["limit_use"] >= 0.97  # the reference: 99%
    trend = [(row["sessions"], row["status"]) for row in r["session_trend"]]
    assert trend == [("1-5", "over the hard limit"), ("6-8", "above target"), ("9-11", "within target")]
    assert r["rate_limits"]["responses_429"] >= 30


# ------------------------------------------------------------------ readers


def test_csv_columns_are_found_by_their_names_and_common_aliases(tmp_path):
    path = write(
        tmp_path / "export.csv",
        "Request ID,Time,Model Name,Prompt Tokens,Completion Tokens,Status Code,Conversation ID\n"
        "r1,2026-11-02 09:00:00,cerebras:x,1200,30,200,c1\n"
        "r2,1793610060,cerebras:x,0,0,429,c1\n",
    )
    records = list(read_source(path))
    assert [(r.ts, r.model, r.input_tokens, r.output_tokens, r.status, r.session, r.request_id) for r in records] == [
        (T0, "cerebras:x", 1200, 30, "ok", "c1", "r1"),
        (T0 + 60, "cerebras:x", 0, 0, "rate_limited", "c1", "r2"),
    ]


def test_columns_option_maps_a_provider_s_own_header_names(tmp_path):
    path = write(tmp_path / "odd.csv", "when,tok_in,tok_out\n2026-11-02T09:00:00Z,500,5\n")
    with pytest.raises(LogFormatError, match=r"no timestamp or input_tokens column \(columns: when, tok_in, tok_out\); name it with --columns"):
        list(read_source(path))
    from tokensieve.analyze.sources import parse_columns

    columns = parse_columns("timestamp=when,input_tokens=tok_in,output_tokens=tok_out")
    [record] = read_source(path, columns=columns)
    assert (record.ts, record.input_tokens, record.output_tokens) == (T0, 500, 5)
    with pytest.raises(LogFormatError, match="unknown field 'tokens'"):
        parse_columns("tokens=tok_in")


def test_semicolon_and_tab_separated_exports_are_read(tmp_path):
    for name, sep in (("semi.csv", ";"), ("tabs.tsv", "\t")):
        path = write(tmp_path / name, sep.join(["timestamp", "input_tokens", "output_tokens"]) + "\n"
                     + sep.join(["2026-11-02T09:00:00Z", "1200", "30"]) + "\n")
        [record] = read_source(path)
        assert (record.ts, record.input_tokens, record.output_tokens) == (T0, 1200, 30)


def test_a_bad_csv_value_is_an_error_naming_the_file_line_and_field(tmp_path):
    path = write(tmp_path / "bad.csv", "timestamp,input_tokens\n2026-11-02T09:00:00Z,10\n2026-11-02T09:01:00Z,-3\n")
    with pytest.raises(LogFormatError, match=r"bad\.csv: line 3: input_tokens: expected 0 or more, got -3"):
        list(read_source(path))
    path = write(tmp_path / "when.csv", "timestamp,input_tokens\nyesterday,10\n")
    with pytest.raises(LogFormatError, match=r"line 2: expected an ISO 8601 time or a number, got 'yesterday'"):
        list(read_source(path))


def test_openai_chat_responses_batch_and_anthropic_usage_lines_are_read_with_cache_and_max_tokens(tmp_path):
    chat = {
        "id": "chatcmpl-1",
        "created": int(T0),
        "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "..."}}],
        "usage": {"prompt_tokens": 5000, "completion_tokens": 256, "total_tokens": 5256,
                  "prompt_tokens_details": {"cached_tokens": 4096}},
    }
    responses = {
        "id": "resp_1",
        "object": "response",
        "created_at": int(T0) + 60,
        "model": "gpt-4.1",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "max_output_tokens": 300,
        "usage": {"input_tokens": 7000, "output_tokens": 300, "input_tokens_details": {"cached_tokens": 0}},
    }
    anthropic = {
        "timestamp": "2026-11-02T09:02:00Z",
        "session_id": "s1",
        "task": "code_generation",
        "max_tokens": 3000,
        "response": {
            "id": "msg_1",
            "type": "message",
            "model": "claude-sonnet-4",
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 12, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 8000,
                      "output_tokens": 900},
        },
    }
    limited = {"timestamp": "2026-11-02T09:03:00Z", "status_code": 429,
               "error": {"type": "rate_limit_error", "message": "slow down"}}
    batch = {"id": "batch_req_1", "custom_id": "task-7", "error": None,
             "response": {"status_code": 200, "request_id": "req_1", "body": {**chat, "created": int(T0) + 240}}}
    path = jsonl(tmp_path / "usage.jsonl", [chat, responses, anthropic, {"note": "no usage here"}, limited, batch])
    assert detect_format(path) == "usage"
    got = [(r.ts, r.model, r.input_tokens, r.output_tokens, r.cached_tokens, r.hit_max, r.max_tokens, r.task, r.status)
           for r in read_source(path)]
    assert got == [
        (T0, "gpt-4o", 5000, 256, 4096, True, None, None, "ok"),
        (T0 + 60, "gpt-4.1", 7000, 300, 0, True, 300, None, "ok"),
        (T0 + 120, "claude-sonnet-4", 9012, 900, 8000, False, 3000, "CODE_GENERATION", "ok"),
        (T0 + 180, "", 0, 0, None, None, None, None, "rate_limited"),
        (T0 + 240, "gpt-4o", 5000, 256, 4096, True, None, None, "ok"),
    ]
    report = analyze([path], budget="cerebras", jobs=1)
    assert report["cache"] == {"cached_tokens": 16192, "input_tokens_reporting": 26012, "share": round(16192 / 26012, 4)}


def test_a_usage_tracker_ledger_is_read_with_its_capacity_warnings_and_429_streak(tmp_path):
    from tokensieve import UsageTracker

    path = str(tmp_path / "usage.sqlite")
    now = [T0]
    tracker = UsageTracker("cerebras", path=path, clock=lambda: now[0])
    tracker.record(input_tokens=10_000, output_tokens=200, model="cerebras:x")
    now[0] += 30
    tracker.record(input_tokens=42_000, output_tokens=300, model="cerebras:x")  # 84% of the window: a warning
    now[0] += 30
    tracker.record_rate_limit(model="cerebras:x")
    tracker.record_rate_limit(model="cerebras:x")
    tracker.close()
    assert detect_format(path) == "sqlite"
    got = [(r.ts, r.kind, r.input_tokens, r.status, r.limit_name) for r in read_source(path)]
    assert got == [
        (T0, "request", 10_000, "ok", None),
        (T0 + 30, "request", 42_000, "ok", None),
        (T0 + 30, "capacity_warning", 0, "ok", "context_window"),
        (T0 + 60, "request", 0, "rate_limited", None),
        (T0 + 60, "request", 0, "rate_limited", None),
    ]
    report = analyze([path], jobs=1)
    [episode] = report["rate_limits"]["episodes"]
    assert episode["responses_429"] == 2
    assert episode["preceded_by_warnings"] and episode["warnings_source"] == "logged"
    assert episode["warnings_before"] == {"context_window": 1}


@pytest.fixture
def telemetry_spans(capfire_or_skip):
    """tokensieve's own events and a compaction span, exported by logfire (capfire)."""
    import tokensieve
    from tokensieve import UsageTracker, telemetry

    capfire = capfire_or_skip
    telemetry.configure()
    tracker = UsageTracker("groq:llama-3.1-8b-instant")
    history = [{"role": "user", "content": "fix the failing test " * 50}]
    for _ in range(3):
        with telemetry.compaction_span(task="TOOL_CALL", max_output_tokens=300, model=tracker.model) as span:
            span.record(tokensieve.Compactor("cerebras").compact(history))
        tracker.record(input_tokens=5_500, output_tokens=40)  # over 80% of 6,000 tokens a minute
    for _ in range(4):
        tracker.record_rate_limit()
    telemetry.configure()
    return capfire.exporter.exported_spans


@pytest.fixture
def capfire_or_skip(request):
    pytest.importorskip("logfire")
    return request.getfixturevalue("capfire")


def test_otlp_and_flat_span_exports_yield_tokensieve_s_events_and_compactions(tmp_path, telemetry_spans):
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    otlp = jsonl(tmp_path / "otlp.jsonl", [MessageToDict(encode_spans(telemetry_spans))])
    flat = jsonl(tmp_path / "flat.jsonl", [json.loads(s.to_json()) for s in telemetry_spans])
    for path in (otlp, flat):
        assert detect_format(path) == "spans"
        kinds = [(r.kind, r.status, r.limit_name) for r in read_source(path)]
        assert kinds.count(("compaction", "ok", None)) == 3
        assert kinds.count(("capacity_warning", "ok", "tokens_per_minute")) >= 2
        assert kinds.count(("request", "rate_limited", None)) == 4
        report = analyze([path], jobs=1)
        assert report["requests_from"].startswith("compaction spans")
        assert report["overall"]["requests"] == 3 and report["overall"]["rate_limited"] == 4
        assert report["tasks"][0]["task"] == "TOOL_CALL" and report["tasks"][0]["output_budget"] == 300
        assert report["compactions"]["count"] == 3
        [episode] = report["rate_limits"]["episodes"]
        assert episode["preceded_by_warnings"] and episode["warnings_source"] == "logged"


def test_model_request_spans_with_gen_ai_usage_are_requests(tmp_path):
    span = {
        "name": "chat cerebras:llama-3.3-70b",
        "start_time": "2026-11-02T09:00:00.000000Z",
        "context": {"trace_id": "0xabc"},
        "attributes": {"gen_ai.request.model": "llama-3.3-70b", "gen_ai.usage.input_tokens": 21000,
                       "gen_ai.usage.output_tokens": 300, "gen_ai.request.max_tokens": 300,
                       "gen_ai.response.finish_reasons": ["length"]},
    }
    [record] = read_source(jsonl(tmp_path / "spans.jsonl", [span]))
    assert (record.ts, record.model, record.input_tokens, record.hit_max, record.session) == (
        T0, "llama-3.3-70b", 21000, True, "0xabc")


def test_formats_are_detected_from_the_name_and_content_and_gzip_is_read(tmp_path, export):
    assert detect_format(export) == "csv"
    packed = str(tmp_path / "usage.csv.gz")
    with open(export, "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert detect_format(packed) == "csv"
    assert sum(1 for _ in read_source(packed)) == sum(1 for _ in read_source(export))
    noext = write(tmp_path / "log", json.dumps({"resourceSpans": []}) + "\n")
    assert detect_format(noext) == "spans"
    with pytest.raises(LogFormatError, match="not a UsageTracker ledger"):
        list(read_source(write(tmp_path / "x.sqlite", ""), "sqlite"))


@pytest.mark.parametrize("kind", ["csv", "usage"])
def test_readers_stream_a_log_yielding_records_before_the_file_ends(tmp_path, kind):
    """A FIFO whose writer waits for the first record: a reader that read the whole file
    first would never yield it."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this platform")
    path = str(tmp_path / ("log.csv" if kind == "csv" else "log.jsonl"))
    os.mkfifo(path)
    first_seen = threading.Event()
    head = "timestamp,input_tokens\n2026-11-02T09:00:00Z,1\n" if kind == "csv" else '{"usage": {"input_tokens": 1}}\n'
    tail = "2026-11-02T09:01:00Z,2\n" if kind == "csv" else '{"usage": {"input_tokens": 2}}\n'

    def writer() -> None:
        with open(path, "w") as f:
            f.write(head)
            f.flush()
            first_seen.wait(10)
            f.write(tail)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    records = read_source(path, kind)  # type: ignore[arg-type]
    result: list[Record] = []
    reader = threading.Thread(target=lambda: result.append(next(records)), daemon=True)
    reader.start()
    reader.join(10)
    assert result and result[0].input_tokens == 1, "the first record came only after the whole file"
    first_seen.set()
    assert [r.input_tokens for r in records] == [2]
    thread.join(10)


# ------------------------------------------------------------------ figures


def test_quantiles_are_exact_on_small_groups_and_within_one_percent_from_the_sketch(monkeypatch):
    import numpy as np

    values = [int(x) for x in np.random.default_rng(3).lognormal(10, 0.6, 5_000)]
    exact = Sketch()
    for v in values:
        exact.add(v)
    assert exact.exact and exact.quantile(0.95) == pytest.approx(float(np.percentile(values, 95)))
    monkeypatch.setattr(figures_module, "EXACT_LIMIT", 100)
    sketched = Sketch()
    for v in values:
        sketched.add(v)
    assert not sketched.exact
    merged = Sketch()  # an exact part merged into a sketched one, and the other way round
    for v in values[:60]:
        merged.add(v)
    rest = Sketch()
    for v in values[60:]:
        rest.add(v)
    merged.merge(rest)
    assert not merged.exact and merged.n == len(values)
    for q in (0.5, 0.95):
        true = float(np.quantile(values, q, method="inverted_cdf"))
        assert abs(sketched.quantile(q) - true) <= 0.011 * true
        assert merged.quantile(q) == sketched.quantile(q)


def test_aggregates_of_parts_of_a_log_merge_into_the_figures_of_the_whole(tmp_path, export):
    with open(export, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    parts = []
    for i, chunk in enumerate((body[:700], body[700:1900], body[1900:])):
        path = str(tmp_path / f"part{i}.csv")
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([header, *chunk])
        parts.append(path)
    whole = analyze([export], budget="cerebras", jobs=1, session_gap=0)
    merged = analyze(parts, budget="cerebras", jobs=1, session_gap=0)
    for report in (whole, merged):
        report.pop("sources")
    assert merged == whole


# logfire (configured by other tests' capfire) warns that its configuration does not follow
# spawned processes; the workers emit nothing.
@pytest.mark.filterwarnings("ignore:The Logfire configuration cannot be pickled")
def test_several_files_are_read_in_parallel_with_the_same_figures(tmp_path):
    paths = []
    for seed in range(3):
        path = str(tmp_path / f"u{seed}.csv")
        write_usage_csv(path, requests=300, sessions=3, days=1, seed=seed)
        paths.append(path)
    assert analyze(paths, budget="cerebras", jobs=2) == analyze(paths, budget="cerebras", jobs=1)


def test_the_generated_429_storm_comes_after_derived_capacity_warnings(export_report):
    rl = export_report["rate_limits"]
    [episode] = rl["episodes"]
    assert episode["preceded_by_warnings"] and episode["warnings_source"] == "derived"
    assert "tokens_per_day" in episode["warnings_before"]
    assert episode["warning_lead_seconds"] > 0
    assert episode["day_limit_use_at_start"] >= 0.97
    assert export_report["capacity_warnings"]["derived"]["tokens_per_day"] > 0


def test_task_classes_are_inferred_from_max_tokens_with_how_often_output_hit_the_budget(export_report):
    tasks = {t["task"]: t for t in export_report["tasks"]}
    assert set(tasks) == {"TOOL_CALL", "CODE_GENERATION", "EXPLANATION", "PLANNING", "REVIEW/UNKNOWN"}
    tool = tasks["TOOL_CALL"]
    assert tool["inferred_from_max_tokens"] and tool["output_budget"] == 300
    assert 0.05 < tool["hit_max_tokens_rate"] < 0.2  # the generator stops 12% of tool calls at 300
    assert tasks["EXPLANATION"]["hit_max_tokens_rate"] < tool["hit_max_tokens_rate"]


def test_429s_and_errors_are_counted_apart_and_carry_no_tokens_into_averages():
    agg = Aggregate().add_all([
        Record(T0, input_tokens=10_000, output_tokens=100),
        Record(T0 + 1, status="rate_limited"),
        Record(T0 + 2, status="error", input_tokens=99_999),
    ])
    o = figures(agg, "cerebras")["overall"]
    assert (o["requests"], o["rate_limited"], o["errors"], o["avg_input_tokens"]) == (1, 1, 1, 10_000.0)


def test_a_log_without_session_ids_is_split_into_sessions_by_idle_gaps():
    agg = Aggregate("log.csv", session_gap=1_800).add_all(
        [Record(T0 + t, input_tokens=1_000) for t in (0, 60, 120, 4_000, 4_060)]
    )
    sessions = figures(agg, "cerebras")["sessions"]
    assert [(s["session"], s["requests"]) for s in sessions] == [("log.csv#1", 3), ("log.csv#2", 2)]


def test_sessions_have_p50_and_p95_of_their_requests(export_report):
    first = export_report["sessions"][0]
    assert first["p50_input_tokens"] < first["p95_input_tokens"]
    assert abs(first["p50_input_tokens"] - first["avg_input_tokens"]) < 0.2 * first["avg_input_tokens"]
    assert export_report["session_quantiles"] == "exact"


def test_peak_minute_use_is_measured_against_the_preset_s_minute_limit():
    agg = Aggregate().add_all([Record(T0 + i, model="groq:llama-3.1-8b-instant", input_tokens=1_500) for i in range(3)])
    limits = figures(agg)["limits"]["groq:llama-3.1-8b-instant"]
    assert (limits["peak_minute_tokens"], limits["tokens_per_minute_limit"], limits["peak_minute_use"]) == (4_500, 6_000, 0.75)


# ------------------------------------------------------------------ the command


def test_analyze_prints_the_reference_tables_for_the_generated_export(export, capsys):
    assert main(["analyze", export, "--preset", "cerebras"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "Usage Analysis", "Avg tokens/request", "<15,000", "Input:Output ratio", "Maintain", "Daily limit usage",
        "<80%", "Session Efficiency Trend", "1-5", "6-8", "9-11", "over the hard limit", "within target",
        "Requests by day", "429 episodes and what preceded them", "tokens_per_day", "Task classes", "TOOL_CALL",
        "hit max_tokens", "prompt cache", "Sessions in order", "session-11",
    ):
        assert expected in out, expected


def test_analyze_json_prints_the_same_figures(export, capsys, export_report):
    assert main(["analyze", export, "--preset", "cerebras", "--json", "--jobs", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overall"] == export_report["overall"]
    assert report["session_trend"] == export_report["session_trend"]


def test_analyze_reads_a_budget_from_a_config_file(export, tmp_path, capsys):
    config = write(tmp_path / "budget.toml", 'preset = "cerebras"\ntarget_input_tokens = 20000\n')
    assert main(["analyze", export, "--config", config, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["budget"]["target_input_tokens"] == 20_000
    assert report["targets"][0]["target"] == "<20,000"


def test_analyze_of_a_missing_file_is_one_line_and_exit_status_2(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("nope.csv: no such file") and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ the HTML report


def test_html_report_is_one_self_contained_file(export_report, tmp_path):
    pytest.importorskip("plotly")
    from tokensieve.analyze.html import render_html

    from html.parser import HTMLParser

    page = render_html(export_report)
    fetched: list[tuple[str, str]] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            fetched.extend((tag, value or "") for name, value in attrs if name in ("src", "href"))

    Links().feed(page)
    assert fetched == [], "the page loads something from elsewhere"
    assert "Plotly.newPlot" in page and page.count('class="plot"') == 5
    assert "Session efficiency trend" in page and "Daily limit usage" in page


def test_html_without_plotly_is_a_clear_error(export, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)
    assert main(["analyze", export, "--html", str(tmp_path / "r.html")]) == 2
    assert 'pip install "tokensieve[report]"' in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed here when missing (as root with apt-get; set
    TOKENSIEVE_INSTALL_CHROMIUM=0 to skip instead). The install is bounded (2 + 4 minutes)
    so that a slow mirror skips this test rather than the suite overrunning its budget."""
    found = _chromium()
    if found is None and os.environ.get("TOKENSIEVE_INSTALL_CHROMIUM", "1") != "0":
        if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            try:
                subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=120)
                subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, timeout=240)
            except (OSError, subprocess.TimeoutExpired):
                pass
            found = _chromium()
    if found is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium) and could not be installed here")
    return found


def test_html_report_plots_are_drawn_in_headless_chromium(export, tmp_path, chromium, capsys):
    pytest.importorskip("plotly")
    page = tmp_path / "report.html"
    assert main(["analyze", export, "--preset", "cerebras", "--html", str(page)]) == 0
    assert f"wrote {page}" in capsys.readouterr().out
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    ).stdout
    # plotly draws each plot as <svg class="main-svg"> elements inside its div once its JS ran.
    for div in ("tokens-over-time", "daily-use", "sessions", "input-output", "task-mix"):
        start = dom.index(f'id="{div}"')
        assert 'class="main-svg"' in dom[start:start + 3_000], f"{div} was not drawn"
    assert dom.count('class="point"') > 1_000  # the per-minute points and the bars
    assert dom.count('class="slice"') == 5  # one pie slice per task class
