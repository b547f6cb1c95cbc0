"""The extractive summary of 1,000 dropped messages (OpenAI chat dicts of a coding
session: reads with file contents, edits, patches, shell commands and test runs).

    make bench          # or: python -m pytest benches/test_bench_summary.py --benchmark-enable

Three rows: ``cold`` reads the messages, folds them into facts and renders the summary
within its cap (nothing cached); ``cached`` summarizes the same messages again (read and
hashed, then served from the cache: what a second request with the same dropped prefix
pays); ``grown`` summarizes 1,000 messages when the first 900 were summarized before (the
window dropped 100 more: only those are folded). There is no pure-Python twin to compare
against: no peer extracts these facts offline.
"""

from __future__ import annotations

import json

import pytest

from tokensieve.summarize import ExtractiveSummarizer

MESSAGES = 1_000
SOURCE = "".join(f"def handler_{i}(request):\n    return respond(request, status={200 + i % 5})\n\n" for i in range(40))


def coding_session(n: int) -> list[dict]:
    """A deterministic coding session of ``n`` messages."""
    out: list[dict] = [
        {"role": "system", "content": "You are a coding agent working in a Python repository."},
        {"role": "user", "content": "Add request logging to every handler in src/app/handlers.py and keep the tests green."},
    ]
    i = 0
    while len(out) < n:
        path = f"src/app/module_{i % 37}.py"
        kind = i % 5
        if kind == 0:
            name, args, result = "read_file", {"path": path}, SOURCE
        elif kind == 1:
            name, args, result = "edit_file", {"path": path, "old_str": "return", "new_str": "log(request)\n    return"}, "ok"
        elif kind == 2:
            patch = f"*** Begin Patch\n*** Update File: {path}\n@@\n-a\n+b\n*** End Patch"
            name, args, result = "apply_patch", {"input": patch}, "Done!"
        elif kind == 3:
            name, args = "bash", {"command": f"pytest -q tests/test_module_{i % 37}.py"}
            result = "F..\nFAILED tests/test_x.py::test_y - AssertionError\nexit code: 1" if i % 3 else "3 passed\nexit code: 0"
        else:
            name, args, result = "bash", {"command": f"sed -i 's/old/new/g' {path} && git diff --stat"}, "1 file changed"
        text = "I'll use structured logging for this." if i % 7 == 0 else None
        out.append({"role": "assistant", "content": text, "tool_calls": [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]})
        out.append({"role": "tool", "tool_call_id": f"call_{i}", "content": result})
        i += 1
    return out[:n]


@pytest.fixture(scope="module")
def dropped() -> list[dict]:
    return coding_session(MESSAGES)


def test_extractive_summary_cold(benchmark, dropped):
    benchmark.group = "extractive summary of 1,000 dropped messages"
    summarizer = ExtractiveSummarizer(cache_size=0)
    summary = benchmark(summarizer.summarize, dropped)
    assert "src/app/module_36.py" in summary.text and summary.messages == MESSAGES


def test_extractive_summary_cached(benchmark, dropped):
    benchmark.group = "extractive summary of 1,000 dropped messages"
    summarizer = ExtractiveSummarizer()
    first = summarizer.summarize(dropped)
    assert benchmark(summarizer.summarize, dropped) is first


def test_extractive_summary_grown_by_100(benchmark, dropped):
    benchmark.group = "extractive summary of 1,000 dropped messages"

    def setup():
        summarizer = ExtractiveSummarizer()
        summarizer.summarize(dropped[:900])
        return (summarizer, dropped), {}

    summary = benchmark.pedantic(lambda s, d: s.summarize(d), setup=setup, rounds=30)
    assert summary.text == ExtractiveSummarizer(cache_size=0).summarize(dropped).text
