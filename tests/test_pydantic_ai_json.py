"""pydantic-ai's own JSON (``ModelMessagesTypeAdapter`` dumps) read by the API and the CLI:
detected, validated through pydantic-ai, compacted, and returned as dicts again."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from pydantic_ai.messages import (
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

import tokensieve
from tokensieve.__main__ import main

BUDGET = dict(max_input_tokens=4_000, compaction_threshold=0.3, hard_limit_threshold=1.0, target_input_tokens=1_000)


def session(pages: int = 20) -> list:
    messages: list = [ModelRequest(parts=[SystemPromptPart("You read reports."), UserPromptPart("Read the report.")])]
    for i in range(pages):
        messages.append(ModelResponse(parts=[ToolCallPart("fetch", {"page": i}, tool_call_id=f"call_{i}")]))
        messages.append(ModelRequest(parts=[ToolReturnPart("fetch", f"page {i}: " + "finding " * 120, tool_call_id=f"call_{i}")]))
    messages.append(ModelResponse(parts=[TextPart("Done.")]))
    messages.append(ModelRequest(parts=[UserPromptPart("Summarize page 3.")]))
    return messages


def dumped(pages: int = 20) -> list[dict]:
    return ModelMessagesTypeAdapter.dump_python(session(pages), mode="json")


def test_a_dumped_pydantic_ai_history_is_detected_compacted_and_returned_as_dicts():
    history = dumped()
    before = json.dumps(history)
    result = tokensieve.Compactor(**BUDGET).compact(history)
    objects = tokensieve.Compactor(**BUDGET).compact(session())
    assert result.format == "pydantic-ai" and result.action == "compacted"
    assert result.dropped == objects.dropped and result.tokens_after == objects.tokens_after
    assert all(type(m) is dict for m in result.messages)
    # Untouched messages are the caller's own dicts (the rebuilt ones: the system request cut
    # to its system part, and the old tool results masked by the pipeline); the result reads
    # back through pydantic-ai.
    kept = [i for i in range(len(history)) if i not in set(result.dropped)]
    masked = sum("[tokensieve masked the output of " in json.dumps(m) for m in result.messages)
    assert masked > 0
    assert sum(any(m is history[i] for m in result.messages) for i in kept) >= len(result.messages) - 1 - masked
    assert ModelMessagesTypeAdapter.validate_python(result.messages)
    assert json.dumps(history) == before  # never modified


def test_format_pydantic_ai_with_dicts_and_counting_read_the_dumps_too():
    history = dumped(3)
    assert tokensieve.compact_history(history, format="pydantic-ai") == history
    assert tokensieve.count_history_tokens(history).tolist() == tokensieve.count_history_tokens(session(3)).tolist()
    assert tokensieve.count_request_tokens(history) == tokensieve.count_request_tokens(session(3))


def test_a_rebuilt_message_comes_back_as_a_fresh_json_dump():
    # A call without its result at the end of an old exchange: the window rebuilds messages.
    history = dumped(20)
    result = tokensieve.Compactor(**BUDGET, dangling_calls="stub").compact(history)
    for message in result.messages:
        assert type(message) is dict and message["kind"] in ("request", "response")
        json.dumps(message)  # JSON-ready (mode="json")


def test_a_broken_dumped_message_is_an_invalid_message_error_naming_its_index():
    history = dumped(2)
    history[3] = {**history[3], "parts": [{"part_kind": "no-such-part"}]}
    with pytest.raises(tokensieve.InvalidMessageError, match=r"messages\[3\]") as info:
        tokensieve.compact_history(history)
    assert info.value.index == 3
    mixed = [*dumped(1), {"role": "user", "content": "hi"}]
    with pytest.raises(tokensieve.InvalidMessageError, match=rf"messages\[{len(mixed) - 1}\].*'role'"):
        tokensieve.compact_history(mixed)


def test_without_pydantic_ai_a_dumped_history_names_the_extra_to_install(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(json.dumps(dumped(1)))
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["pydantic_ai"] = None  # as if it were not installed
        sys.modules["pydantic_ai.messages"] = None
        import tokensieve
        try:
            tokensieve.compact_history(json.load(open({str(path)!r})))
        except tokensieve.ConfigurationError as e:
            print(e)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'pip install "tokensieve[pydantic-ai]"' in result.stdout


@pytest.mark.parametrize("extra", [[], ["--format", "pydantic-ai"]])
def test_the_cli_compacts_a_pydantic_ai_json_file(tmp_path, capsys, extra):
    path, out = tmp_path / "history.json", tmp_path / "out.json"
    path.write_text(json.dumps(dumped(40)))
    assert main(["compact", str(path), "-o", str(out), "--max-input-tokens", "4000", *extra]) == 0
    printed = capsys.readouterr().out
    assert "(pydantic-ai)" in printed
    written = json.loads(out.read_text())
    assert len(written) < len(dumped(40))
    assert ModelMessagesTypeAdapter.validate_python(written)
    assert main(["count", str(path), *extra]) == 0
