"""Validators: does a history satisfy what its provider enforces?

One function per format checks every rule of ``provider-rules.md`` (the team's reference,
``shared/reference/provider-rules.md``) for that format and returns the violations as
readable strings (an empty list means valid). Given the ``source`` history a compacted
one came from, they also check the rules every provider shares — order kept, system
prompts kept, the current task kept — and the ones that need to know the input (a
reasoning item still followed by the item it belongs to, thinking blocks unmodified,
built-in tool parts kept together).

The rules are written from the providers' point of view, independently of tokensieve's
reading of the formats: tokensieve is tested against them, not against itself. Anthropic
merges consecutive messages of one role, and pydantic-ai consecutive requests (tool
results hoisted first), before either checks the pairing: their validators judge the
history so merged (:func:`merged_anthropic`, :func:`merged_pydantic_ai`).
:func:`trace` maps each output message back to the input message it is (the same
object) or was rebuilt from (the same kind of message with a subsequence of its parts),
or to None for a synthesized result message.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from types import SimpleNamespace
from typing import Any

STUB_TEXT = "[tool result elided by tokensieve]"


def _short(obj: Any, width: int = 160) -> str:
    text = repr(obj)
    return text if len(text) <= width else text[: width - 3] + "..."


# ---- Items of a message, per format ------------------------------------------------------


def _is_pydantic_ai(message: Any) -> bool:
    return not isinstance(message, dict) and hasattr(message, "parts")


def _kind(message: Any) -> str | None:
    return getattr(message, "kind", None)


def _part_kind(part: Any) -> str | None:
    return getattr(part, "part_kind", None)


def _is_tool_return(part: Any) -> bool:
    kind = _part_kind(part)
    return kind == "tool-return" or (kind == "retry-prompt" and getattr(part, "tool_name", None) is not None)


def _is_stub_item(fmt: str, item: Any) -> bool:
    """A synthesized result (part or block) answering a call whose result was cut."""
    if fmt == "pydantic-ai":
        return _part_kind(item) == "tool-return" and getattr(item, "content", None) == STUB_TEXT
    return isinstance(item, dict) and item.get("type") == "tool_result" and item.get("content") == STUB_TEXT


def is_stub_message(fmt: str, message: Any) -> bool:
    """A message made only of synthesized results."""
    if fmt == "pydantic-ai":
        parts = list(getattr(message, "parts", ()))
        return _kind(message) == "request" and bool(parts) and all(_is_stub_item(fmt, p) for p in parts)
    if not isinstance(message, dict):
        return False
    if fmt == "openai":
        return message.get("role") in ("tool", "function") and message.get("content") == STUB_TEXT
    if fmt == "responses":
        return str(message.get("type", "")).endswith("_call_output") and message.get("output") == STUB_TEXT
    content = message.get("content")
    return (
        message.get("role") == "user"
        and isinstance(content, list)
        and bool(content)
        and all(_is_stub_item(fmt, b) for b in content)
    )


def _list_field(fmt: str) -> str | None:
    """The name of the list a message loses items from when it is rebuilt."""
    return {"pydantic-ai": "parts", "anthropic": "content", "openai": "tool_calls"}.get(fmt)


def _items(fmt: str, message: Any) -> list:
    if fmt == "pydantic-ai":
        return list(message.parts)
    value = message.get(_list_field(fmt)) if isinstance(message, dict) else None
    return list(value) if isinstance(value, (list, tuple)) else []


def _removable(fmt: str, item: Any) -> bool:
    """Whether repair may remove this item from a message: tool calls and results only."""
    if fmt == "pydantic-ai":
        return _part_kind(item) == "tool-call" or _is_tool_return(item)
    if fmt == "anthropic":
        return isinstance(item, dict) and item.get("type") in ("tool_use", "tool_result")
    return True  # OpenAI: tool_calls entries


def _is_subsequence(small: list, big: list) -> bool:
    it = iter(big)
    return all(any(x is y for y in it) for x in small)


PLACEHOLDER_PREFIX = "[tokensieve "


def _is_placeholder(value: Any) -> bool:
    """A text the pipeline wrote in place of a tool output (a mask placeholder, a prune pointer)."""
    return isinstance(value, str) and value.startswith(PLACEHOLDER_PREFIX) and value.endswith("]") and "\n" not in value


def _masked_from(out: Any, original: Any, field: str) -> bool:
    """``out`` is ``original`` (a dict or a dataclass) with ``field`` replaced by a mask
    placeholder, everything else the same (docs/strategies.md)."""
    if type(out) is not type(original):
        return False
    if isinstance(original, dict):
        fields = set(out) | set(original)
        get = dict.get
    elif dataclasses.is_dataclass(original):
        fields = {f.name for f in dataclasses.fields(original)}

        def get(obj: Any, name: str) -> Any:
            return getattr(obj, name, None)

    else:
        return False
    return _is_placeholder(get(out, field)) and all(
        get(out, k) is get(original, k) or get(out, k) == get(original, k) for k in fields if k != field
    )


def _unmasked(fmt: str, items: list, originals: list) -> list:
    """``items`` with each masked tool result taken back to the original it masks."""
    field = "content"
    result = []
    for item in items:
        match = next((o for o in originals if o is not item and _masked_from(item, o, field)), None)
        result.append(item if match is None else match)
    return result


def _rebuilt_from(fmt: str, out: Any, original: Any) -> str | None:
    """Why ``out`` is not ``original`` with some items removed (and stubs added), or a
    tool result masked, or None if it is."""
    if fmt == "responses":
        return None if _masked_from(out, original, "output") else "Responses items are never rebuilt"
    if fmt == "openai" and isinstance(original, dict) and original.get("role") in ("tool", "function"):
        return None if _masked_from(out, original, "content") else "a tool message is never rebuilt but masked"
    if fmt == "pydantic-ai":
        if type(out) is not type(original):
            return "another class"
        for f in dataclasses.fields(original):
            if f.name != "parts" and getattr(out, f.name) != getattr(original, f.name):
                return f"field {f.name} differs"
        if _cut_to_system_parts(out, original):
            return None
    else:
        if not isinstance(out, dict) or not isinstance(original, dict) or out.get("role") != original.get("role"):
            return "another role"
        removable_keys = {"tool_calls", "function_call"} if fmt == "openai" else set()
        for key in set(out) | set(original):
            if key == _list_field(fmt):
                continue
            if key not in out:
                if key not in removable_keys:
                    return f"key {key!r} removed"
            elif key not in original or not (out[key] is original[key] or out[key] == original[key]):
                return f"key {key!r} differs"
        if fmt == "anthropic" and isinstance(original.get("content"), str):
            # A string content that received stub results becomes blocks: the results, then
            # the text as a text block.
            blocks = out.get("content")
            if not isinstance(blocks, list) or not blocks:
                return "its content is not blocks"
            stubs = [b for b in blocks if _is_stub_item(fmt, b)]
            if not stubs or blocks[len(stubs):] != [{"type": "text", "text": original["content"]}]:
                return "its content is not stub results followed by the original text"
            return None
    originals = _items(fmt, original)
    kept = [item for item in _items(fmt, out) if not (_is_stub_item(fmt, item) and not any(item is o for o in originals))]
    kept = _unmasked(fmt, kept, originals)
    if not _is_subsequence(kept, originals):
        return "its items are not a subsequence of the original's"
    removed = [o for o in originals if not any(o is k for k in kept)]
    if any(not _removable(fmt, item) for item in removed):
        return f"it lost items that are not tool calls or results: {_short(removed)}"
    if fmt == "anthropic" and not kept and not any(_is_stub_item(fmt, i) for i in _items(fmt, out)):
        return "empty"
    return None


SYSTEM_KINDS = ("system-prompt", "compaction")


def _cut_to_system_parts(out: Any, original: Any) -> bool:
    """A pydantic-ai request pinned for its system prompt outside the window: kept with its
    system parts alone (its prompts went with their exchange)."""
    parts = list(out.parts)
    system = [p for p in original.parts if _part_kind(p) in SYSTEM_KINDS]
    return (
        _kind(out) == "request"
        and bool(parts)
        and len(parts) == len(system)
        and all(a is b for a, b in zip(parts, system))
    )


def _without_summary(fmt: str, message: Any) -> list:
    """``message`` as it may have been before the compaction pipeline placed its summary
    in it (``tokensieve.compaction.is_summary_text``): ``[message]`` when it holds none,
    ``[]`` when it is the summary alone, else the message without it (an Anthropic text
    content, made blocks to take the summary, also as the string it was)."""
    from tokensieve.compaction import is_summary_text

    if fmt == "pydantic-ai":
        parts = list(getattr(message, "parts", ()))
        rest = [p for p in parts if not (_part_kind(p) == "compaction" and is_summary_text(getattr(p, "content", None)))]
        if len(rest) == len(parts):
            return [message]
        return [dataclasses.replace(message, parts=rest)] if rest else []
    if not isinstance(message, dict):
        return [message]
    if fmt in ("openai", "responses"):
        return [] if is_summary_text(message.get("content")) else [message]
    content = message.get("content")
    if not isinstance(content, list):
        return [message]
    rest = [b for b in content if not (isinstance(b, dict) and b.get("type") == "text" and is_summary_text(b.get("text")))]
    if len(rest) == len(content):
        return [message]
    found = [{**message, "content": rest}]
    if not rest:
        found.append({**message, "content": ""})
    elif len(rest) == 1 and isinstance(rest[0], dict) and rest[0].get("type") == "text" and set(rest[0]) == {"type", "text"}:
        found.append({**message, "content": rest[0]["text"]})
    return found


class Sources(list):
    """The input index of each output message (None: synthesized), and ``merged``: input
    requests merged into the next one's output message (pydantic-ai); ``i in sources``
    holds for those too."""

    def __init__(self) -> None:
        super().__init__()
        self.merged: set[int] = set()

    def __contains__(self, i: object) -> bool:
        return list.__contains__(self, i) or i in self.merged


def holds_summary(fmt: str, message: Any) -> bool:
    """A message in which the compaction pipeline placed its summary."""
    return _without_summary(fmt, message) != [message]


def is_summary_message(fmt: str, message: Any) -> bool:
    """A message that is only a summary the compaction pipeline inserted."""
    return _without_summary(fmt, message) == []


def _merged_from(fmt: str, message: Any, source: list, last: int, i: int) -> int | None:
    """The index of the request of ``source`` (after ``last``, before ``i``) that a
    pydantic-ai ``message`` is, whole or cut to its system parts, followed by ``source[i]``
    (itself, or rebuilt: -1 when no such request came first); None if it is not such a merge."""
    if fmt != "pydantic-ai" or _kind(message) != "request" or _kind(source[i]) != "request":
        return None
    parts = list(message.parts)
    for split in range(0, len(parts)):
        head = parts[:split]
        tail = dataclasses.replace(message, parts=parts[split:])
        if not (all(a is b for a, b in zip(parts[split:], source[i].parts)) and len(parts) - split == len(source[i].parts)):
            if _rebuilt_from(fmt, tail, source[i]) is not None:
                continue
        if not head:
            return -1
        for j in range(last + 1, i):
            if _kind(source[j]) != "request":
                continue
            whole = list(source[j].parts)
            system = [p for p in whole if _part_kind(p) in SYSTEM_KINDS]
            for kept in (whole, system):  # the request kept whole, or cut to its system parts
                if len(kept) == len(head) and all(a is b for a, b in zip(kept, head)):
                    return j
    return None


def trace(fmt: str, output: list, source: list) -> tuple[list[int | None], list[str]]:
    """For each output message, the index of the input message it is or was rebuilt from
    (None for a synthesized message); and the problems found on the way: an order not
    kept, a message that is none of those."""
    index_of = {id(m): i for i, m in enumerate(source)}
    sources = Sources()
    problems: list[str] = []
    last = -1
    for k, message in enumerate(output):
        if id(message) in index_of:
            i = index_of[id(message)]
            if i <= last:
                problems.append(f"output[{k}] is input[{i}], out of order (after input[{last}])")
            sources.append(i)
            last = max(last, i)
            continue
        if is_stub_message(fmt, message):
            sources.append(None)
            continue
        candidates = _without_summary(fmt, message)
        if candidates == []:  # a summary message the pipeline inserted: synthesized, as a stub
            sources.append(None)
            continue
        reasons = []
        order = range(last + 1, len(source))
        if candidates != [message]:
            # The message that took the summary may equal other input messages by value
            # (an Anthropic string content): the latest one before the next message the
            # output returns as it is.
            bound = next((index_of[id(m)] for m in output[k + 1 :] if id(m) in index_of), len(source))
            order = [*range(bound - 1, last, -1), *range(bound, len(source))]
        for i in order:
            matched = any(
                (fmt == "anthropic" and isinstance(c.get("content"), str) and c == source[i])
                or _rebuilt_from(fmt, c, source[i]) is None
                for c in candidates
            )
            reason = None if matched else _rebuilt_from(fmt, candidates[0], source[i])
            if reason is None:
                sources.append(i)
                last = i
                break
            # pydantic-ai: a request trimmed to its system prompts (and the summary) merged
            # with the next request, as pydantic-ai merges them when sending.
            merged = _merged_from(fmt, candidates[0], source, last, i)
            if merged is not None:
                if merged >= 0:
                    sources.merged.add(merged)
                sources.append(i)
                last = i
                break
            reasons.append(f"not input[{i}]: {reason}")
        else:
            problems.append(
                f"output[{k}] is not an input message, nor one rebuilt from a later input message, nor a "
                f"synthesized result: {_short(message)} ({'; '.join(reasons[:3])})"
            )
            sources.append(None)
    return sources, problems


# ---- What every provider shares ----------------------------------------------------------


def system_indices(fmt: str, messages: list) -> list[int]:
    """Messages holding a system prompt, developer message, instructions or summary."""
    found = []
    for i, m in enumerate(messages):
        if fmt == "pydantic-ai":
            if _kind(m) == "request" and any(_part_kind(p) in ("system-prompt", "compaction") for p in m.parts):
                found.append(i)
        elif fmt in ("openai", "responses") and isinstance(m, dict):
            if m.get("type") in (None, "message") and m.get("role") in ("system", "developer"):
                found.append(i)
            elif fmt == "responses" and m.get("type") == "compaction":
                found.append(i)
    return found


def _prompt_items(fmt: str, message: Any) -> list:
    """The user-authored prompt items of a message (empty if it has none)."""
    if fmt == "pydantic-ai":
        if _kind(message) != "request":
            return []
        return [p for p in message.parts if _part_kind(p) == "user-prompt"]
    if not isinstance(message, dict) or message.get("role") != "user":
        return []
    if fmt == "anthropic":
        content = message.get("content")
        if content is None:
            return []
        if not isinstance(content, list):
            return [content]
        return [b for b in content if not (isinstance(b, dict) and b.get("type") == "tool_result")]
    if fmt == "responses" and message.get("type") not in (None, "message"):
        return []
    return [message.get("content")]


def task_index(fmt: str, messages: list) -> int | None:
    """The message holding the latest user-authored prompt."""
    found = [i for i, m in enumerate(messages) if _prompt_items(fmt, m)]
    return found[-1] if found else None


def shared_violations(fmt: str, output: list, source: list) -> list[str]:
    sources, problems = trace(fmt, output, source)
    violations = list(problems)
    kept = {i: k for k, i in enumerate(sources) if i is not None}
    for j in sources.merged:  # a request merged into the next one's message is kept
        kept.setdefault(j, min((k for i, k in kept.items() if i > j), default=0))
    for i in system_indices(fmt, source):
        if i not in kept:
            violations.append(f"the system message input[{i}] was dropped")
    task = task_index(fmt, source)
    if task is not None:
        if task not in kept:
            violations.append(f"the message with the current task, input[{task}], was dropped")
        else:
            out = output[kept[task]]
            if out is not source[task]:
                items = _items(fmt, out)
                missing = [
                    p
                    for p in _prompt_items(fmt, source[task])
                    if not any(p is q or (isinstance(p, str) and q == {"type": "text", "text": p}) for q in items)
                    # An empty string content that took the summary holds no empty text block.
                    and not (p == "" and _without_summary(fmt, out) != [out])
                ]
                if missing:
                    violations.append(f"the current task lost its prompt {_short(missing)}")
    return violations


# ---- OpenAI chat completions -------------------------------------------------------------


def openai_violations(messages: list, source: list | None = None) -> list[str]:
    """Rules 1-4 of OpenAI Chat Completions, plus the legacy function_call pairing."""
    v: list[str] = []
    n = len(messages)
    i = 0
    while i < n:
        m = messages[i]
        role = m.get("role")
        calls = m.get("tool_calls") if role == "assistant" else None
        if role == "assistant" and calls is not None:
            if not calls:
                v.append(f"[{i}] assistant message with an empty tool_calls list")
            open_ids = Counter(c.get("id") for c in calls)
            for c in calls:
                if len(str(c.get("id"))) > 40:
                    v.append(f"[{i}] tool call id longer than 40 characters")
            j = i + 1
            while j < n and messages[j].get("role") == "tool":
                tid = messages[j].get("tool_call_id")
                if open_ids[tid] > 0:
                    open_ids[tid] -= 1
                else:
                    v.append(f"[{j}] tool_call_id {tid!r} not found in tool_calls of message {i} (or answered twice)")
                j += 1
            unanswered = sorted(str(k) for k, c in open_ids.items() if c > 0)
            if unanswered:
                v.append(f"[{i}] tool_call_ids without a response before message {j}: {unanswered}")
            if m.get("function_call") is not None:
                v.append(f"[{i}] assistant message with both tool_calls and a legacy function_call")
            i = j
            continue
        if role == "assistant":
            if m.get("function_call") is not None:
                if i + 1 >= n or messages[i + 1].get("role") != "function":
                    v.append(f"[{i}] legacy function_call not answered by a function message right after it")
            elif m.get("content") is None and m.get("refusal") is None:
                # An empty string is content: OpenAI accepts a plain `content: ""` turn.
                v.append(f"[{i}] assistant message with neither content nor tool calls")
        elif role == "tool":
            v.append(f"[{i}] tool message that does not follow an assistant message with tool_calls")
        elif role == "function":
            before = messages[i - 1] if i > 0 else {}
            if before.get("role") != "assistant" or before.get("function_call") is None:
                v.append(f"[{i}] function message that does not answer a function_call right before it")
        i += 1
    return v


# ---- OpenAI Responses ---------------------------------------------------------------------


def _responses_side(item: dict) -> str:
    kind = item.get("type")
    if kind in (None, "message"):
        return "response" if item.get("role") == "assistant" else "request"
    kind = str(kind)
    if kind.endswith("_call_output") or kind == "compaction":
        return "request"
    return "response"


def _is_responses_call(item: dict) -> bool:
    return str(item.get("type", "")).endswith("_call") and "call_id" in item


def responses_violations(items: list, source: list | None = None) -> list[str]:
    """Rules 1-4 of the Responses API."""
    v: list[str] = []
    open_calls: list[tuple[int, Any]] = []  # (index, call_id) of calls without an output yet
    for k, item in enumerate(items):
        kind = str(item.get("type", ""))
        if _is_responses_call(item):
            if len(str(item["call_id"])) > 64:
                v.append(f"[{k}] call_id longer than 64 characters")
            open_calls.append((k, item["call_id"]))
        elif kind.endswith("_call_output"):
            match = [c for c in open_calls if c[1] == item.get("call_id")]
            if match:
                open_calls.remove(match[-1])
            else:
                v.append(f"[{k}] no tool call found for output with call_id {item.get('call_id')!r}")
        elif kind == "reasoning":
            if k + 1 >= len(items) or _responses_side(items[k + 1]) != "response":
                v.append(f"[{k}] reasoning item provided without its required following item")
    for k, call_id in open_calls:
        v.append(f"[{k}] no tool output found for call {call_id!r}")
    if source is not None:
        # A reasoning item and the item it belongs to: both kept, adjacent, or both dropped.
        where = {id(item): k for k, item in enumerate(items)}
        for i in range(len(source) - 1):
            if source[i].get("type") != "reasoning" or _responses_side(source[i + 1]) != "response":
                continue
            a, b = where.get(id(source[i])), where.get(id(source[i + 1]))
            if (a is None) != (b is None):
                v.append(f"input[{i}] (reasoning) and input[{i + 1}] were not kept or dropped together")
            elif a is not None and b != a + 1:
                v.append(f"the reasoning input[{i}] is no longer right before input[{i + 1}]")
    return v


# ---- Anthropic Messages ------------------------------------------------------------------


def _blocks(message: dict) -> list:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _ids(message: dict | None, block_type: str, key: str) -> Counter:
    if message is None:
        return Counter()
    return Counter(b.get(key) for b in _blocks(message) if b.get("type") == block_type)


def merged_anthropic(messages: list) -> list[dict]:
    """The history as the Anthropic API reads it: consecutive messages of one role merged
    into one turn (string content as a text block)."""
    merged: list[dict] = []
    for m in messages:
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        if merged and merged[-1]["role"] == m.get("role"):
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": m.get("role"), "content": blocks})
    return merged


def anthropic_violations(messages: list, source: list | None = None) -> list[str]:
    """Rules 1-6 of Anthropic Messages on the merged turns (indices are the merged
    turns'), and no message with empty content."""
    v: list[str] = []
    for k, m in enumerate(messages):
        content = m.get("content")
        if content is None or content == []:
            v.append(f"[{k}] message with empty content")
    original, messages = messages, merged_anthropic(messages)
    n = len(messages)
    if n and messages[0].get("role") != "user":
        v.append("[0] the first message is not from the user")
    for k, m in enumerate(messages):
        content = m.get("content")
        if m.get("role") == "assistant":
            following = messages[k + 1] if k + 1 < n and messages[k + 1].get("role") == "user" else None
            missing = _ids(m, "tool_use", "id") - _ids(following, "tool_result", "tool_use_id")
            if missing:
                v.append(f"[{k}] tool_use ids without tool_result blocks immediately after: {sorted(map(str, missing))}")
            seen_server = set()
            for b in _blocks(m):
                t = str(b.get("type"))
                if t == "server_tool_use":
                    seen_server.add(b.get("id"))
                elif t.endswith("_tool_result") and t != "tool_result" and b.get("tool_use_id") not in seen_server:
                    v.append(f"[{k}] {t} block without its server_tool_use before it in the same turn")
        elif m.get("role") == "user":
            before = messages[k - 1] if k > 0 and messages[k - 1].get("role") == "assistant" else None
            unexpected = _ids(m, "tool_result", "tool_use_id") - _ids(before, "tool_use", "id")
            if unexpected:
                v.append(f"[{k}] tool_result blocks without a tool_use in the previous message: {sorted(map(str, unexpected))}")
            after_other = False
            for b in content if isinstance(content, list) else []:
                is_result = isinstance(b, dict) and b.get("type") == "tool_result"
                if is_result and after_other:
                    v.append(f"[{k}] a tool_result block after other content")
                    break
                after_other = after_other or not is_result
    messages = original
    if source is not None:
        # Thinking blocks of a turn that calls tools come back unmodified.
        sources, _ = trace("anthropic", messages, source)
        for k, i in enumerate(sources):
            m = messages[k]
            if i is None or m is source[i] or m.get("role") != "assistant":
                continue
            if any(b.get("type") == "tool_use" for b in _blocks(m)):
                thinking = [b for b in _blocks(m) if b.get("type") in ("thinking", "redacted_thinking")]
                original = [b for b in _blocks(source[i]) if b.get("type") in ("thinking", "redacted_thinking")]
                if len(thinking) != len(original) or any(a is not b for a, b in zip(thinking, original)):
                    v.append(f"[{k}] the thinking blocks of a tool-calling turn were modified")
    return v


# ---- pydantic-ai --------------------------------------------------------------------------


def _call_ids(message: Any) -> Counter:
    if message is None or _kind(message) != "response":
        return Counter()
    return Counter(p.tool_call_id for p in message.parts if _part_kind(p) == "tool-call")


def _return_ids(message: Any) -> Counter:
    if message is None or _kind(message) != "request":
        return Counter()
    return Counter(p.tool_call_id for p in message.parts if _is_tool_return(p))


NATIVE_KINDS = ("builtin-tool-call", "builtin-tool-return")


def _tool_results_first(part: Any) -> int:
    return 0 if _part_kind(part) in ("tool-return", "retry-prompt") else 1


def merged_pydantic_ai(messages: list) -> list:
    """The history as pydantic-ai sends it (``_merge_consecutive_messages``): consecutive
    requests merged into one, tool results (and retry prompts) hoisted first."""
    merged: list = []
    for m in messages:
        if _kind(m) == "request" and merged and merged[-1].kind == "request":
            merged[-1].parts.extend(m.parts)
        else:
            merged.append(SimpleNamespace(kind=_kind(m), parts=list(getattr(m, "parts", ()))))
    for m in merged:
        if m.kind == "request":
            m.parts.sort(key=_tool_results_first)
    return merged


def _pydantic_ai_repairs(messages: list) -> list[str]:
    """What pydantic-ai's own repair (``repair_messages``: orphans dropped, dangling calls
    answered, then requests merged) would change beyond the merge itself."""
    try:
        from pydantic_ai.messages import _merge_consecutive_messages, repair_messages
    except ImportError:  # pragma: no cover - another pydantic-ai version
        return []
    if not messages or any(_kind(m) not in ("request", "response") for m in messages):
        return []
    repaired, merged = repair_messages(list(messages)), _merge_consecutive_messages(list(messages))
    if repaired != merged:
        return [f"pydantic-ai's repair_messages changes the history: {_short(repaired)}"]
    return []


def pydantic_ai_violations(messages: list, source: list | None = None) -> list[str]:
    """What pydantic-ai enforces on a processed history, and the pairing it would
    otherwise patch silently (judged, as pydantic-ai does, after merging consecutive
    requests; indices are the merged messages')."""
    v: list[str] = []
    if source and _kind(source[-1]) == "request":
        if not messages:
            v.append("the processed history is empty")
        elif _kind(messages[-1]) != "request":
            v.append("the processed history does not end with a ModelRequest")
    v += _pydantic_ai_repairs(messages)
    original, messages = messages, merged_pydantic_ai(messages)
    n = len(messages)
    for k, m in enumerate(messages):
        if _kind(m) not in ("request", "response"):
            v.append(f"[{k}] not a ModelRequest or ModelResponse: {_short(m)}")
            continue
        if _kind(m) == "response":
            following = messages[k + 1] if k + 1 < n else None
            missing = _call_ids(m) - _return_ids(following)
            if missing:
                v.append(f"[{k}] tool calls not answered in the next ModelRequest: {sorted(map(str, missing))}")
            calls = [p.tool_call_id for p in m.parts if _part_kind(p) == "builtin-tool-call"]
            returns = [p.tool_call_id for p in m.parts if _part_kind(p) == "builtin-tool-return"]
            if Counter(calls) != Counter(returns):
                v.append(f"[{k}] native tool calls and returns not together in their response")
        else:
            before = messages[k - 1] if k > 0 else None
            unexpected = _return_ids(m) - _call_ids(before)
            if unexpected:
                v.append(f"[{k}] tool returns answering no call of the previous ModelResponse: {sorted(map(str, unexpected))}")
    messages = original
    if source is not None:
        sources, _ = trace("pydantic-ai", messages, source)
        for k, i in enumerate(sources):
            if i is None or messages[k] is source[i]:
                continue
            native = [p for p in messages[k].parts if _part_kind(p) in NATIVE_KINDS]
            original = [p for p in source[i].parts if _part_kind(p) in NATIVE_KINDS]
            if len(native) != len(original) or any(a is not b for a, b in zip(native, original)):
                v.append(f"[{k}] the native tool parts of input[{i}] were not kept together")
    return v


VALIDATORS = {
    "pydantic-ai": pydantic_ai_violations,
    "openai": openai_violations,
    "responses": responses_violations,
    "anthropic": anthropic_violations,
}


def violations(fmt: str, output: list, source: list | None = None) -> list[str]:
    """Every rule of ``fmt`` that ``output`` breaks; with ``source`` (the history it was
    compacted from), also the shared rules."""
    found = VALIDATORS[fmt](output, source)
    if source is not None:
        found += shared_violations(fmt, output, source)
    return found
