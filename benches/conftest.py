"""Benchmark fixtures, and the tokensieve/tiktoken ratio table printed at the end.

Run with::

    python -m pytest benches --benchmark-enable --benchmark-group-by=group

(pyproject's addopts disable benchmarks by default; then each benchmark body runs once
as a smoke test and no ratio table is printed.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# ``tests.support`` holds the corpus generator; make the repository root importable
# however pytest was started (with benches/__init__.py pytest already does this).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import tokensieve  # noqa: E402
from tests.support.corpus import generate_messages  # noqa: E402
from tests.support.fixtures import corpus, corpus_texts, restore_cache_defaults, tiktoken_encodings  # noqa: E402,F401

MESSAGE_COUNT = 10_000

# (measurement, encoding or "", library) -> {"seconds": median, "bytes": bytes per call}
RESULTS: dict[tuple[str, str, str], dict[str, float]] = {}
# (encoding, library) -> a fresh process's own report of its first count: "first_count" and
# "import" in seconds, "rss_mb" and "peak_mb" after it (benches/test_bench_counting.py).
FIRST_COUNTS: dict[tuple[str, str], dict[str, float]] = {}
# (measurement, encoding, peer) -> whether the peer's total differed from tiktoken's.
NOT_EXACT: dict[tuple[str, str, str], bool] = {}
# Set once any benchmark has run (enabled or not), so collection-only runs stay quiet.
BENCHMARKS_RAN: list[bool] = []


@pytest.fixture(scope="session")
def messages() -> list[str]:
    return generate_messages(count=MESSAGE_COUNT)


@pytest.fixture(scope="session")
def reference_totals(tiktoken_encodings, corpus_texts) -> dict[str, int]:
    """tiktoken's total token count of the corpus, to check each benchmark's result."""
    return {
        name: sum(len(t) for t in enc.encode_ordinary_batch(corpus_texts, num_threads=2))
        for name, enc in tiktoken_encodings.items()
    }


@pytest.fixture
def single_thread_cold():
    """One thread, no cache: TOKENSIEVE_PARALLELISM=0 and the cache off, restored after."""
    saved = os.environ.get("TOKENSIEVE_PARALLELISM")
    os.environ["TOKENSIEVE_PARALLELISM"] = "0"
    tokensieve.configure_cache(enabled=False)
    yield
    if saved is None:
        del os.environ["TOKENSIEVE_PARALLELISM"]
    else:
        os.environ["TOKENSIEVE_PARALLELISM"] = saved
    restore_cache_defaults()


@pytest.fixture
def cache_off():
    tokensieve.configure_cache(enabled=False)
    yield
    restore_cache_defaults()


@pytest.fixture
def record(benchmark):
    """``record(key, nbytes)``: remember this benchmark's median for the ratio table."""

    def _record(key: tuple[str, str, str], nbytes: int = 0) -> None:
        BENCHMARKS_RAN.append(True)
        stats = getattr(benchmark, "stats", None)
        if stats is not None and stats.stats.rounds:
            RESULTS[key] = {"seconds": stats.stats.median, "bytes": nbytes}

    return _record


def _mbps(entry: dict[str, float]) -> float:
    return entry["bytes"] / entry["seconds"] / 1e6


def _duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def ratio_lines() -> list[str]:
    import tiktoken

    lines = [f"medians of this run; tokensieve {tokensieve.__version__} vs tiktoken {tiktoken.__version__}; "
             f"{os.cpu_count()} CPUs; MB = 10^6 bytes"]
    rows: list[tuple[str, str, str, str]] = []
    # The other families (benches/test_bench_encodings.py) against their own oracles.
    for encoding in ("o200k_base", "cl100k_base", "o200k_harmony", "qwen3", "llama3"):
        for kind, label in (("cold", "single-thread cold"), ("batch", "batch, parallel")):
            ours, theirs = RESULTS.get((kind, encoding, "tokensieve")), RESULTS.get((kind, encoding, "tiktoken"))
            if ours and theirs:
                rows.append((f"{label}, {encoding} ({ours['bytes'] / 1e6:.1f} MB)",
                             f"{_mbps(ours):.1f} MB/s", f"{_mbps(theirs):.1f} MB/s",
                             f"{theirs['seconds'] / ours['seconds']:.2f}x"))
    ours, theirs = RESULTS.get(("call", "o200k_base", "tokensieve")), RESULTS.get(("call", "o200k_base", "tiktoken"))
    if ours and theirs:
        rows.append(('per call, "Hello, world!"', _duration(ours["seconds"]), _duration(theirs["seconds"]),
                     f"{theirs['seconds'] / ours['seconds']:.2f}x"))
    cached, cold = RESULTS.get(("messages", "o200k_base", "cached")), RESULTS.get(("messages", "o200k_base", "cold"))
    if cached and cold:
        rows.append((f"{MESSAGE_COUNT:,} messages ({cold['bytes'] / 1e6:.1f} MB): cached vs cold tokensieve",
                     _duration(cached["seconds"]), _duration(cold["seconds"]),
                     f"{cold['seconds'] / cached['seconds']:.0f}x"))
    theirs = RESULTS.get(("messages", "o200k_base", "tiktoken"))
    if cached and theirs:
        rows.append((f"{MESSAGE_COUNT:,} messages: cached tokensieve vs tiktoken batch",
                     _duration(cached["seconds"]), _duration(theirs["seconds"]),
                     f"{theirs['seconds'] / cached['seconds']:.0f}x"))
    if not rows:
        return []
    header = ("measurement", "tokensieve", "tiktoken / cold", "speed-up")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines += [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    lines.append("speed-up = tiktoken (or cold) time / tokensieve (or cached) time; > 1 means tokensieve is faster")
    return lines


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]


def first_count_lines() -> list[str]:
    """Issue 12's first row for every embedded encoding: import + first count in a fresh
    process and the resident memory after it, tokensieve against each peer."""
    rows = []
    for encoding in tokensieve.ENCODINGS:
        ours = FIRST_COUNTS.get((encoding, "tokensieve"))
        if not ours:
            continue
        peers = [(lib, r) for (enc, lib), r in FIRST_COUNTS.items() if enc == encoding and lib != "tokensieve"]
        cells = [f"{lib} {r['first_count'] * 1e3:.0f} ms / {r['rss_mb']:.0f} MB" for lib, r in peers]
        best = min(peers, key=lambda p: p[1]["first_count"], default=None)
        rows.append((encoding, f"{ours['first_count'] * 1e3:.1f} ms", f"{ours['import'] * 1e3:.1f} ms",
                     f"{ours['rss_mb']:.1f} MB",
                     f"{best[1]['first_count'] / ours['first_count']:.0f}x" if best else "",
                     ", ".join(cells)))
    if not rows:
        return []
    header = ("encoding", "tokensieve", "of it import", "RSS", "best peer / ours", "peers (first count / RSS)")
    return _table(header, rows) + [
        "best of 3 fresh processes each; goal (issue 12): first count < 20 ms, RSS <= 40 MB, import < 50 ms"]


def peer_lines() -> list[str]:
    """Uncached counting (MB/s) of tokensieve, tiktoken and the exact peers, same corpus."""
    libraries = ("tokensieve", "tiktoken", "fastokens", "toktok-rs")
    rows = []
    for encoding in ("o200k_base", "cl100k_base"):
        for kind, label in (("cold", "one thread, uncached"), ("batch", "batch, parallel")):
            found = {lib: RESULTS.get((kind, encoding, lib)) for lib in libraries}
            if not found["tokensieve"]:
                continue
            rows.append((f"{label}, {encoding}",
                         *(f"{_mbps(r):.1f}{'*' if NOT_EXACT.get((kind, encoding, lib)) else ''}" if r else "-"
                           for lib, r in found.items())))
    if not rows:
        return []
    return _table(("corpus MB/s", *libraries), rows) + ["* not exact: its total differs from tiktoken's"]


def compaction_ratio_lines() -> list[str]:
    """compact_history vs the pure-Python baseline, from benches/test_bench_compaction.py."""
    rows = []
    for case in ("cold", "warm"):
        for size in ("100", "1000", "10000"):
            ours = RESULTS.get((f"compact-{case}", size, "tokensieve"))
            theirs = RESULTS.get((f"compact-{case}", size, "baseline"))
            if ours and theirs:
                rows.append((f"compact_history {int(size):,} messages, {case}", _duration(ours["seconds"]),
                             _duration(theirs["seconds"]), f"{theirs['seconds'] / ours['seconds']:.0f}x"))
    pipeline = RESULTS.get(("pipeline-warm", "10000", "tokensieve"))
    window = RESULTS.get(("compact-warm", "10000", "tokensieve"))
    if pipeline and window:
        rows.append(("pipeline 10,000 messages, warm (vs window)", _duration(pipeline["seconds"]),
                     _duration(window["seconds"]), f"{pipeline['seconds'] / window['seconds']:.1f}x cost"))
    with_summary = RESULTS.get(("pipeline-summary-warm", "10000", "tokensieve"))
    if with_summary and window:
        rows.append(("pipeline + summary 10,000 messages, warm (vs window)", _duration(with_summary["seconds"]),
                     _duration(window["seconds"]), f"{with_summary['seconds'] / window['seconds']:.1f}x cost"))
    # The peers (no cache: one cost, cold and warm), against tokensieve cold and warm.
    for peer, label in (("harness", "pydantic-ai-harness sliding window"), ("langchain", "LangChain trim_messages")):
        theirs = RESULTS.get(("compact-cold", "10000", peer))
        for case in ("cold", "warm"):
            ours = RESULTS.get((f"compact-{case}", "10000", "tokensieve"))
            if ours and theirs:
                rows.append((f"10,000 messages, {case}, vs {label}", _duration(ours["seconds"]),
                             _duration(theirs["seconds"]), f"{theirs['seconds'] / ours['seconds']:.1f}x"))
    session = RESULTS.get(("session", "2000", "tokensieve"))
    if session:
        rows.append(("session of 2,000 requests (total)", _duration(session["seconds"]), "", ""))
    if not rows:
        return []
    header = ("measurement", "tokensieve", "baseline / peer", "speed-up")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not BENCHMARKS_RAN:
        return
    from benches.test_bench_narrow import narrow_ratio_lines

    narrow = narrow_ratio_lines()
    if narrow:
        terminalreporter.write_sep("=", "narrow_tool_output vs the baseline and the harness's head/tail: MB/s")
        for line in narrow:
            terminalreporter.write_line(line)
    first = first_count_lines()
    if first:
        terminalreporter.write_sep("=", "first count in a fresh process: tokensieve vs the peers")
        for line in first:
            terminalreporter.write_line(line)
    peers = peer_lines()
    if peers:
        terminalreporter.write_sep("=", "uncached counting: tokensieve vs tiktoken and the exact peers, MB/s")
        for line in peers:
            terminalreporter.write_line(line)
    compaction = compaction_ratio_lines()
    if compaction:
        terminalreporter.write_sep("=", "compact_history vs the pure-Python baseline: ratios")
        for line in compaction:
            terminalreporter.write_line(line)
    lines = ratio_lines()
    if not lines and (first or peers or compaction or narrow):
        return  # other groups ran, not the tiktoken ratios' ones
    terminalreporter.write_sep("=", "tokensieve vs tiktoken: ratios")
    if not lines:
        terminalreporter.write_line("benchmarks were disabled: run with --benchmark-enable for the ratio table")
        return
    for line in lines:
        terminalreporter.write_line(line)
