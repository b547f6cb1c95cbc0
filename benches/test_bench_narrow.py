"""The tool output budget against pydantic-ai-harness's character-based head/tail and the
pure-Python baseline (tokensieve.baseline.narrow_text), same run; and the tokens each mode
saves on the corpus (tests/data/tool_outputs).

    make bench          # or: TOKENSIEVE_BENCH=1 python -m pytest benches/test_bench_narrow.py --benchmark-enable -s

The log is a generated server log (tests/data/tool_outputs/generate.py ``big_log``):
mostly INFO lines, an ERROR every 500 lines, a traceback every 5,000. MB/s = input bytes
(UTF-8) per second, single thread, the encoding loaded beforehand. Limits: 4,000 tokens;
the harness keeps 4,000 characters (its documented default).
"""

from __future__ import annotations

import os

import pytest

import tokensieve
from tokensieve import _core

from benches.conftest import BENCHMARKS_RAN, RESULTS
from tests.data.tool_outputs.generate import CORPUS, big_log, generate

LOG_MB = float(os.environ.get("TOKENSIEVE_BENCH_LOG_MB", "50"))
BASELINE_MB = 5.0  # the baseline tokenizes with tiktoken: a smaller log keeps the run short
LIMIT = 4000
MODES = ("errors_only", "heads_tails", "smart_summary")


def harness_head_tail(text: str, max_chars: int = 10_000, keep: int = 4_000) -> str:
    """pydantic-ai-harness ``ToolOutputLimits``' fallback, as documented: over 10,000
    characters keep 4,000, 2/5 from the head and 3/5 from the tail, with a marker saying
    how many characters were omitted."""
    if len(text) <= max_chars:
        return text
    head = keep * 2 // 5
    tail = keep - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n\n... [{omitted} characters omitted] ...\n\n{text[-tail:]}"


@pytest.fixture(scope="module")
def log() -> str:
    return big_log(LOG_MB)


@pytest.fixture(scope="module")
def small_log() -> str:
    return big_log(BASELINE_MB)


@pytest.fixture(scope="module", autouse=True)
def warm():
    _core.narrow_text("warm up " * 10_000, "heads_tails", 100)  # load the vocabulary outside the timings
    from tokensieve import baseline

    baseline.narrow_text("warm up " * 10_000, "heads_tails", 100)


def _record(benchmark, key, nbytes):
    BENCHMARKS_RAN.append(True)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.rounds:
        RESULTS[key] = {"seconds": stats.stats.median, "bytes": nbytes}


@pytest.mark.parametrize("mode", MODES)
def test_narrow_core(benchmark, log, mode):
    benchmark.group = f"narrow {LOG_MB:g} MB log"
    r = benchmark.pedantic(_core.narrow_text, args=(log, mode, LIMIT), rounds=5, iterations=1)
    assert r[4] <= LIMIT
    _record(benchmark, ("narrow", mode, "tokensieve"), len(log))


@pytest.mark.parametrize("mode", MODES)
def test_narrow_core_streaming(benchmark, log, mode):
    benchmark.group = f"narrow {LOG_MB:g} MB log"
    chunk = 1 << 20

    def stream():
        n = _core.Narrower(mode, LIMIT)
        for i in range(0, len(log), chunk):
            n.feed(log[i : i + chunk])
        return n.finish()

    r = benchmark.pedantic(stream, rounds=3, iterations=1)
    assert r[4] <= LIMIT
    _record(benchmark, ("narrow-stream", mode, "tokensieve"), len(log))


def test_harness_head_tail(benchmark, log):
    benchmark.group = f"narrow {LOG_MB:g} MB log"
    out = benchmark.pedantic(harness_head_tail, args=(log,), rounds=5, iterations=1)
    assert len(out) < 4_100
    _record(benchmark, ("narrow", "harness", "harness"), len(log))


@pytest.mark.parametrize("mode", MODES)
def test_narrow_baseline(benchmark, small_log, mode):
    from tokensieve import baseline

    benchmark.group = f"narrow {BASELINE_MB:g} MB log, baseline"
    r = benchmark.pedantic(baseline.narrow_text, args=(small_log, mode, LIMIT), rounds=1, iterations=1)
    assert r == _core.narrow_text(small_log, mode, LIMIT)
    _record(benchmark, ("narrow", mode, "baseline"), len(small_log))


def tokens_saved_table(limit: int = 2000) -> list[str]:
    """Tokens of each corpus output, and what each mode leaves of it at ``limit``."""
    modes = ("truncated", "heads_tails", "errors_only", "smart_summary")
    rows = []
    totals = {m: 0 for m in modes}
    before_total = harness_total = 0
    for name in sorted(CORPUS):
        text = generate(name)
        before = tokensieve.count_tokens(text)
        before_total += before
        cells = []
        for m in modes:
            r = tokensieve.narrow_tool_output(text, mode=m, max_tokens=limit)
            totals[m] += r.tokens_after
            cells.append(f"{r.tokens_after:>6} ({r.mode[:5]})" if r.mode != m else f"{r.tokens_after:>6}")
        harness = tokensieve.count_tokens(harness_head_tail(text))
        harness_total += harness
        rows.append(f"{name:<24} {r.kind:<10} {before:>8}  " + "  ".join(f"{c:>14}" for c in cells) + f"  {harness:>9}")
    header = f"{'output':<24} {'kind':<10} {'tokens':>8}  " + "  ".join(f"{m:>14}" for m in modes) + "   harness*"
    saved = "  ".join(f"{1 - totals[m] / before_total:>14.1%}" for m in modes)
    return [f"tokens after narrowing to {limit} (o200k_base); (mode) = the mode that ran instead", header, *rows,
            f"{'total':<24} {'':<10} {before_total:>8}  " + "  ".join(f"{totals[m]:>14}" for m in modes)
            + f"  {harness_total:>9}",
            f"{'saved':<24} {'':<10} {'':>8}  " + saved + f"  {1 - harness_total / before_total:>9.1%}",
            "* pydantic-ai-harness's character head/tail (4,000 characters kept): its tokens, no token limit"]


def test_tokens_saved_per_mode_on_the_corpus(capsys):
    lines = tokens_saved_table()
    assert lines[-2].count("%") == 5
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def narrow_ratio_lines() -> list[str]:
    rows = []
    harness = RESULTS.get(("narrow", "harness", "harness"))
    for mode in MODES:
        ours = RESULTS.get(("narrow", mode, "tokensieve"))
        stream = RESULTS.get(("narrow-stream", mode, "tokensieve"))
        base = RESULTS.get(("narrow", mode, "baseline"))
        mbps = lambda e: e["bytes"] / e["seconds"] / 1e6  # noqa: E731
        if ours:
            rows.append(
                f"{mode:<14} {mbps(ours):>9.0f} MB/s"
                + (f"  stream {mbps(stream):>6.0f} MB/s" if stream else "")
                + (f"  baseline {mbps(base):>7.1f} MB/s ({mbps(ours) / mbps(base):.0f}x)" if base else "")
            )
    if harness:
        rows.append(f"harness head/tail (characters): {harness['seconds'] * 1e6:.1f} µs whatever the size (string slicing), no token limit")
    return rows


if __name__ == "__main__":
    print("\n".join(tokens_saved_table()))
