"""Invariants every compacted history must keep, checked on content (not on identity).

:func:`violations` returns, for a history ``output`` compacted from ``source``, what a
provider would reject or what a user would lose, as readable strings (empty: all kept):

- **pairing** (``shared/reference/provider-rules.md``): no tool result without its call
  and no call without its result, judged as the provider judges (OpenAI chat: results
  right after the calling message; Responses: anywhere; Anthropic and pydantic-ai: in
  the next turn, consecutive turns of one side merged as those APIs merge them);
- **order kept**: the tool calls and the user prompts of the output come in the input's
  order, and input messages returned as they are keep their relative order;
- **system prompt kept**: every system / developer text of the input is in the output;
- **current task kept**: the latest user prompt of the input is in the output.

Unlike the test suite's validators (``tests/support/provider_rules.py``, which trace every
output message back to the input object it came from), these compare content, so they
also judge what a pipeline rewrote (masked tool outputs, an inserted summary) and work on
histories that went through JSON.

Example:
    >>> from tokensieve.analyze.invariants import violations
    >>> source = [
    ...     {"role": "user", "content": "list files"},
    ...     {"role": "assistant", "content": None, "tool_calls": [
    ...         {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
    ...     {"role": "tool", "tool_call_id": "c1", "content": "a.py"},
    ... ]
    >>> violations("openai", source, source)
    []
    >>> violations("openai", [source[0], source[2]], source)
    ['[1] tool message that does not follow an assistant message with tool_calls']
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["violations"]


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


# ---- what each message holds: side, calls, results, system texts, prompts -------------------


def _parts(message: Any) -> list[Any]:
    parts = _get(message, "parts")
    return list(parts) if isinstance(parts, (list, tuple)) else []


def _is_result_part(part: Any) -> bool:
    kind = _get(part, "part_kind")
    return kind == "tool-return" or (kind == "retry-prompt" and _get(part, "tool_name") is not None)


def _side(fmt: str, m: Any) -> str:
    if fmt == "pydantic-ai":
        return "response" if _get(m, "kind") == "response" else "request"
    if fmt == "responses":
        kind = m.get("type")
        if kind in (None, "message"):
            return "response" if m.get("role") == "assistant" else "request"
        kind = str(kind)
        return "request" if kind.endswith("_call_output") or kind == "compaction" else "response"
    return "response" if m.get("role") == "assistant" else "request"


def _calls(fmt: str, m: Any) -> list[Any]:
    if fmt == "pydantic-ai":
        if _get(m, "kind") != "response":
            return []
        return [_get(p, "tool_call_id") for p in _parts(m) if _get(p, "part_kind") == "tool-call"]
    if fmt == "openai":
        return [c.get("id") for c in m.get("tool_calls") or [] if isinstance(c, dict)] if m.get("role") == "assistant" else []
    if fmt == "responses":
        kind = str(m.get("type", ""))
        return [m.get("call_id")] if kind.endswith("_call") and "call_id" in m else []
    content = m.get("content")
    if m.get("role") != "assistant" or not isinstance(content, list):
        return []
    return [b.get("id") for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]


def _results(fmt: str, m: Any) -> list[Any]:
    if fmt == "pydantic-ai":
        if _get(m, "kind") != "request":
            return []
        return [_get(p, "tool_call_id") for p in _parts(m) if _is_result_part(p)]
    if fmt == "openai":
        return [m.get("tool_call_id")] if m.get("role") == "tool" else []
    if fmt == "responses":
        return [m.get("call_id")] if str(m.get("type", "")).endswith("_call_output") else []
    content = m.get("content")
    if m.get("role") != "user" or not isinstance(content, list):
        return []
    return [b.get("tool_use_id") for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _systems(fmt: str, m: Any) -> list[str]:
    if fmt == "pydantic-ai":
        return [_text(_get(p, "content")) for p in _parts(m) if _get(p, "part_kind") == "system-prompt"]
    if fmt in ("openai", "responses") and isinstance(m, dict):
        if m.get("type") in (None, "message") and m.get("role") in ("system", "developer"):
            return [_text(m.get("content"))]
    return []


def _prompts(fmt: str, m: Any) -> list[str]:
    if fmt == "pydantic-ai":
        if _get(m, "kind") != "request":
            return []
        return [_text(_get(p, "content")) for p in _parts(m) if _get(p, "part_kind") == "user-prompt"]
    if not isinstance(m, dict) or m.get("role") != "user":
        return []
    if fmt == "responses" and m.get("type") not in (None, "message"):
        return []
    content = m.get("content")
    if fmt == "anthropic" and isinstance(content, list):
        texts = [b for b in content if not (isinstance(b, dict) and b.get("type") == "tool_result")]
        return [_text(b.get("text") if isinstance(b, dict) and b.get("type") == "text" else b) for b in texts]
    return [] if content is None else [_text(content)]


# ---- pairing -------------------------------------------------------------------------------------


def _turns(fmt: str, messages: Sequence[Any]) -> list[tuple[str, Counter, Counter]]:
    """Consecutive messages of one side merged (as Anthropic and pydantic-ai merge them):
    (side, call ids, result ids) per turn."""
    turns: list[tuple[str, Counter, Counter]] = []
    for m in messages:
        side = _side(fmt, m)
        if turns and turns[-1][0] == side:
            turns[-1][1].update(_calls(fmt, m))
            turns[-1][2].update(_results(fmt, m))
        else:
            turns.append((side, Counter(_calls(fmt, m)), Counter(_results(fmt, m))))
    return turns


def _pairing(fmt: str, messages: Sequence[Any]) -> list[str]:
    v: list[str] = []
    if fmt == "openai":
        i, n = 0, len(messages)
        while i < n:
            m = messages[i]
            if m.get("role") == "assistant" and m.get("tool_calls"):
                open_ids = Counter(_calls(fmt, m))
                j = i + 1
                while j < n and messages[j].get("role") == "tool":
                    tid = messages[j].get("tool_call_id")
                    if open_ids[tid] > 0:
                        open_ids[tid] -= 1
                    else:
                        v.append(f"[{j}] tool_call_id {tid!r} not found in tool_calls of message {i}")
                    j += 1
                missing = sorted(str(k) for k, c in open_ids.items() if c > 0)
                if missing:
                    v.append(f"[{i}] tool calls without a response: {missing}")
                i = j
                continue
            if m.get("role") == "tool":
                v.append(f"[{i}] tool message that does not follow an assistant message with tool_calls")
            i += 1
        return v
    if fmt == "responses":
        open_calls: Counter = Counter()
        for k, m in enumerate(messages):
            for cid in _calls(fmt, m):
                open_calls[cid] += 1
            for rid in _results(fmt, m):
                if open_calls[rid] > 0:
                    open_calls[rid] -= 1
                else:
                    v.append(f"[{k}] no tool call found for output with call_id {rid!r}")
        missing = sorted(str(k) for k, c in open_calls.items() if c > 0)
        if missing:
            v.append(f"tool calls without an output: {missing}")
        return v
    turns = _turns(fmt, messages)
    if turns and turns[0][0] != "request":
        v.append("the first turn is not the user's")
    for k, (side, calls, results) in enumerate(turns):
        if side == "response":
            following = turns[k + 1][2] if k + 1 < len(turns) else Counter()
            unanswered = calls - following
            if unanswered:
                v.append(f"turn {k}: tool calls without results in the next turn: {sorted(map(str, unanswered))}")
        else:
            before = turns[k - 1][1] if k > 0 else Counter()
            unexpected = results - before
            if unexpected:
                v.append(f"turn {k}: tool results without a call in the previous turn: {sorted(map(str, unexpected))}")
    return v


# ---- what is kept -------------------------------------------------------------------------------------


def _is_subsequence(small: list[Any], big: list[Any]) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def violations(fmt: str, output: Sequence[Any], source: Sequence[Any]) -> list[str]:
    """What ``output`` (compacted from ``source``, both in ``fmt``) breaks; empty if nothing.

    ``fmt`` is ``"pydantic-ai"`` (message objects or their JSON), ``"openai"``,
    ``"responses"`` or ``"anthropic"``.
    """
    v = _pairing(fmt, output)
    if source and not output:
        v.append("the output is empty")
    if fmt == "pydantic-ai" and source and _get(source[-1], "kind") == "request" and output and _get(output[-1], "kind") != "request":
        v.append("the output does not end with a request")
    calls_in = [c for m in source for c in _calls(fmt, m)]
    calls_out = [c for m in output for c in _calls(fmt, m)]
    if not _is_subsequence(calls_out, calls_in):
        v.append("the tool calls are not in the input's order (or not from the input)")
    prompts_in = [p for m in source for p in _prompts(fmt, m)]
    prompts_out = [p for m in output for p in _prompts(fmt, m)]
    # A prompt the input does not have (a summary a pipeline inserted as a user message) is
    # not judged here; the input's own prompts must keep their order.
    known = set(prompts_in)
    if not _is_subsequence([p for p in prompts_out if p in known], prompts_in):
        v.append("the user prompts are not in the input's order (or not from the input)")
    where = {id(m): i for i, m in enumerate(source)}
    kept = [where[id(m)] for m in output if id(m) in where]
    if kept != sorted(kept):
        v.append("messages returned as they are changed their order")
    systems_out = Counter(s for m in output for s in _systems(fmt, m))
    missing_systems = Counter(s for m in source for s in _systems(fmt, m)) - systems_out
    if missing_systems:
        v.append(f"system prompt(s) dropped: {[s[:60] for s in missing_systems]}")
    if prompts_in and prompts_in[-1] not in prompts_out[-1:]:
        v.append(f"the current task is not the output's last prompt: {prompts_in[-1][:80]!r}")
    return v
