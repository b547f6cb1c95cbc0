"""compact_history against the pure-Python baseline (tokensieve.baseline), same run.

Histories are agent tool loops in pydantic-ai form (tokensieve._bench.history): tool
results of 200 B to 50 KB; the 10,000-message history is about 13 MB.

* cold: the content cache emptied before every round;
* warm: the per-request case, the history the agent sent last time plus one new
  exchange (a different one each round), after that history was compacted once.

The baseline has no cache (what users write today), so its cold and warm cost the same;
it is measured on both for a like-for-like table. Ratios are printed at the end of the
run (benches/conftest.py).

Peers, when installed (benchmark-only, skipped otherwise): pydantic-ai-harness's
``SlidingWindowCompaction`` (its trigger and trim, tokens estimated as characters / 4)
on the same pydantic-ai objects, and LangChain core's ``trim_messages`` with its
approximate counter on the same history converted to LangChain messages (outside the
timing). Neither counts exactly nor caches anything, so cold and warm cost them the same.
``make bench`` installs both (pyproject's bench-peers extra, and the harness with
``--no-deps``: 0.62.0 pins pydantic-ai-slim 2.62.0, the test extra pins 2.68.0, and it
runs on the newer one).
"""

from __future__ import annotations

import itertools
import random

import pytest

import tokensieve
from tokensieve import _bench

SIZES = [100, 1_000, 10_000]
CONFIG = _bench.BENCH_CONFIG


@pytest.fixture(scope="module")
def histories():
    return {n: _bench.history(n) for n in SIZES}


@pytest.fixture(scope="module")
def baseline():
    from tokensieve import baseline

    baseline.compact_history([], CONFIG)  # load its tiktoken encoding outside the timings
    return baseline


def _grown(history, rounds=50):
    """An endless supply of `history` + one new exchange, different each time."""
    rng = random.Random(len(history))
    extras = [_bench.exchange(rng, len(history) + 2 * i) for i in range(rounds)]
    return itertools.cycle([history + extra for extra in extras])


@pytest.mark.parametrize("size", SIZES)
def test_compact_cold(benchmark, histories, record, size):
    benchmark.group = f"compact {size:,} messages, cold"
    history = histories[size]
    result = benchmark.pedantic(
        tokensieve.compact_history, args=(history, CONFIG), setup=tokensieve.clear_cache, rounds=5, iterations=1
    )
    assert result
    record(("compact-cold", str(size), "tokensieve"))


@pytest.mark.parametrize("size", SIZES)
def test_compact_warm(benchmark, histories, record, size):
    benchmark.group = f"compact {size:,} messages, warm"
    history = histories[size]
    tokensieve.compact_history(history, CONFIG)  # the previous request
    grown = _grown(history)
    result = benchmark.pedantic(lambda: tokensieve.compact_history(next(grown), CONFIG), rounds=20, iterations=1)
    assert result
    record(("compact-warm", str(size), "tokensieve"))


@pytest.mark.parametrize("size", SIZES)
def test_baseline_cold(benchmark, histories, baseline, record, size):
    benchmark.group = f"compact {size:,} messages, cold"
    history = histories[size]
    result = benchmark.pedantic(baseline.compact_history, args=(history, CONFIG), rounds=2, iterations=1)
    assert result == tokensieve.compact_history(history, CONFIG)
    record(("compact-cold", str(size), "baseline"))


@pytest.mark.parametrize("size", SIZES)
def test_baseline_warm(benchmark, histories, baseline, record, size):
    benchmark.group = f"compact {size:,} messages, warm"
    grown = _grown(histories[size])
    result = benchmark.pedantic(lambda: baseline.compact_history(next(grown), CONFIG), rounds=2, iterations=1)
    assert result
    record(("compact-warm", str(size), "baseline"))


def test_pipeline_warm(benchmark, histories, record):
    """The whole pipeline (masking and pruning on, the window driven by the budget alone),
    warm, on the 10,000-message history: held within 2x of the window's warm row (issue 11)."""
    benchmark.group = "compact 10,000 messages, warm"
    history = histories[10_000]
    tokensieve.compact_history(history, _bench.PIPELINE_CONFIG)  # the previous request
    grown = _grown(history)
    result = benchmark.pedantic(
        lambda: tokensieve.compact_history(next(grown), _bench.PIPELINE_CONFIG), rounds=20, iterations=1
    )
    assert result
    record(("pipeline-warm", "10000", "tokensieve"))


def test_pipeline_with_summary_warm(benchmark, histories, record):
    """The pipeline with the default strategies (the extractive summary on), warm, on the
    10,000-message history: the summary reuses the events of the messages the history
    memo proved unchanged and reads only the newly dropped ones."""
    benchmark.group = "compact 10,000 messages, warm"
    history = histories[10_000]
    tokensieve.compact_history(history, _bench.PIPELINE_SUMMARY_CONFIG)  # the previous request
    grown = _grown(history)
    result = benchmark.pedantic(
        lambda: tokensieve.compact_history(next(grown), _bench.PIPELINE_SUMMARY_CONFIG), rounds=20, iterations=1
    )
    assert result
    record(("pipeline-summary-warm", "10000", "tokensieve"))


def test_session_cost_per_request_stays_flat(benchmark, record):
    """2,000 requests, each appending an exchange and storing the compacted history."""
    benchmark.group = "session of 2,000 requests"

    def session():
        rng = random.Random(42)
        stored = _bench.history(1)
        for n in range(2_000):
            stored = tokensieve.compact_history(stored + _bench.exchange(rng, n), CONFIG)
        return stored

    stored = benchmark.pedantic(session, rounds=1, iterations=1)
    assert len(stored) < 100
    record(("session", "2000", "tokensieve"))


# ---- peers (benchmark-only dependencies) ---------------------------------------------------


def _harness_compactor():
    """pydantic-ai-harness's sliding window at the benchmark's budget: triggered over the
    compaction threshold, keeping the target's worth of the newest messages."""
    pytest.importorskip("pydantic_ai_harness")
    from pydantic_ai import RunContext
    from pydantic_ai.models.test import TestModel
    from pydantic_ai.usage import RunUsage
    from pydantic_ai_harness.compaction import SlidingWindowCompaction
    from pydantic_ai_harness.compaction._shared import exceeds

    trigger = int(CONFIG.compaction_threshold * CONFIG.max_input_tokens)
    window = SlidingWindowCompaction(max_tokens=trigger, keep_tokens=CONFIG.target_input_tokens)
    ctx = RunContext(deps=None, model=TestModel(), usage=RunUsage())

    def compact(messages):
        if not exceeds(messages, window.max_messages, window.max_tokens, window.tokenizer):
            return messages
        coroutine = window.compact(messages, ctx)
        try:  # it never suspends: run it without an event loop
            coroutine.send(None)
        except StopIteration as done:
            return done.value
        raise AssertionError("SlidingWindowCompaction.compact suspended")

    return compact


def _langchain(history):
    """The history as LangChain messages (system, human, AI with tool calls, tool)."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    out = []
    for message in history:
        for part in message.parts:
            kind = part.part_kind
            if kind == "system-prompt":
                out.append(SystemMessage(part.content))
            elif kind == "user-prompt":
                out.append(HumanMessage(part.content))
            elif kind == "tool-return":
                out.append(ToolMessage(part.content, tool_call_id=part.tool_call_id))
        if message.kind == "response":
            text = "".join(p.content for p in message.parts if p.part_kind == "text")
            calls = [{"name": p.tool_name, "args": p.args, "id": p.tool_call_id}
                     for p in message.parts if p.part_kind == "tool-call"]
            out.append(AIMessage(text, tool_calls=calls))
    return out


@pytest.mark.parametrize("size", SIZES)
def test_harness_sliding_window(benchmark, histories, record, size):
    """pydantic-ai-harness: no cache, so this is its cost cold and warm alike."""
    compact = _harness_compactor()
    benchmark.group = f"compact {size:,} messages, cold"
    history = histories[size]
    result = benchmark.pedantic(compact, args=(history,), rounds=5, iterations=1)
    assert result
    record(("compact-cold", str(size), "harness"))


@pytest.mark.parametrize("size", SIZES)
def test_langchain_trim_messages(benchmark, histories, record, size):
    """LangChain core's trim_messages, approximate counter: no cache either."""
    pytest.importorskip("langchain_core")
    from langchain_core.messages import trim_messages

    benchmark.group = f"compact {size:,} messages, cold"
    messages = _langchain(histories[size])
    result = benchmark.pedantic(
        lambda: trim_messages(messages, max_tokens=CONFIG.target_input_tokens, token_counter="approximate",
                              strategy="last", include_system=True, start_on="human"),
        rounds=5, iterations=1,
    )
    assert result
    record(("compact-cold", str(size), "langchain"))
