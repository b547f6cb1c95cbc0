"""Hand-built histories in every format tokensieve reads, and checks of what comes back.

A history is written once as a list of format-neutral *events*; :func:`build` turns it
into OpenAI chat-completions dicts, OpenAI Responses input items, Anthropic Messages
dicts or pydantic-ai ``ModelMessage`` objects:

- ``system(text)``: the system prompt (Anthropic has none in the message list: it is a
  top-level parameter, so the event produces nothing there; pydantic-ai puts it in the
  request it starts);
- ``user(text)``: a user-authored prompt;
- ``assistant(text)``: a model text reply;
- ``calls(*ids, text=None)``: a model response making tool calls (``lookup`` tool, args
  ``{"q": id}``), optionally with text before them;
- ``results(*ids, then=None, size=...)``: the request carrying their results (content of
  about ``size`` tokens), optionally followed by a user text (Anthropic and pydantic-ai:
  in the same message, after the results; OpenAI and Responses: a user message after).

:func:`flatten` reads any format back into the same neutral token list (``sys:…``,
``user:…``, ``text:…``, ``call:id``, ``ret:id`` or ``ret:id:stub``), so one expectation
is written per case, not per format; :func:`assert_valid` checks the provider rules of
``reference/provider-rules.md`` on a history (pairing, order, user first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

STUB_TEXT = "[tool result elided by tokensieve]"
FORMATS = ("openai", "responses", "anthropic", "pydantic-ai")
#: Formats whose provider requires the first (non-system) message to be the user's.
USER_FIRST = ("anthropic", "pydantic-ai")
#: Formats whose message list carries the system prompt.
WITH_SYSTEM = ("openai", "responses", "pydantic-ai")
TOOL = "lookup"


@dataclass(frozen=True)
class Event:
    kind: str
    text: str | None = None
    ids: tuple[str, ...] = ()
    then: str | None = None
    size: int = 40


def system(text: str) -> Event:
    return Event("system", text)


def user(text: str) -> Event:
    return Event("user", text)


def assistant(text: str) -> Event:
    return Event("assistant", text)


def calls(*ids: str, text: str | None = None) -> Event:
    return Event("calls", text, ids)


def results(*ids: str, then: str | None = None, size: int = 40) -> Event:
    return Event("results", None, ids, then, size)


def result_content(call_id: str, size: int) -> str:
    """Tool output of roughly ``size`` tokens, distinct per call."""
    return f"output of {call_id}: " + " ".join(f"w{call_id}{i}" for i in range(max(size // 3, 1)))


def args_of(call_id: str) -> dict[str, Any]:
    return {"q": call_id}


def build(fmt: str, events: list[Event]) -> list[Any]:
    return {
        "openai": _openai,
        "responses": _responses,
        "anthropic": _anthropic,
        "pydantic-ai": _pydantic_ai,
    }[fmt](events)


def _openai(events: list[Event]) -> list[dict]:
    out: list[dict] = []
    for e in events:
        if e.kind == "system":
            out.append({"role": "system", "content": e.text})
        elif e.kind == "user":
            out.append({"role": "user", "content": e.text})
        elif e.kind == "assistant":
            out.append({"role": "assistant", "content": e.text})
        elif e.kind == "calls":
            out.append(
                {
                    "role": "assistant",
                    "content": e.text,
                    "tool_calls": [
                        {"id": i, "type": "function", "function": {"name": TOOL, "arguments": json.dumps(args_of(i))}}
                        for i in e.ids
                    ],
                }
            )
        elif e.kind == "results":
            out.extend({"role": "tool", "tool_call_id": i, "content": result_content(i, e.size)} for i in e.ids)
            if e.then:
                out.append({"role": "user", "content": e.then})
    return out


def _responses(events: list[Event]) -> list[dict]:
    out: list[dict] = []
    for e in events:
        if e.kind == "system":
            out.append({"type": "message", "role": "system", "content": e.text})
        elif e.kind == "user":
            out.append({"type": "message", "role": "user", "content": e.text})
        elif e.kind == "assistant":
            out.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": e.text}]})
        elif e.kind == "calls":
            if e.text:
                out.append(
                    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": e.text}]}
                )
            out.extend(
                {"type": "function_call", "call_id": i, "name": TOOL, "arguments": json.dumps(args_of(i))}
                for i in e.ids
            )
        elif e.kind == "results":
            out.extend(
                {"type": "function_call_output", "call_id": i, "output": result_content(i, e.size)} for i in e.ids
            )
            if e.then:
                out.append({"type": "message", "role": "user", "content": e.then})
    return out


def _anthropic(events: list[Event]) -> list[dict]:
    out: list[dict] = []
    for e in events:
        if e.kind == "system":
            continue  # a top-level parameter, not a message
        if e.kind == "user":
            out.append({"role": "user", "content": e.text})
        elif e.kind == "assistant":
            out.append({"role": "assistant", "content": [{"type": "text", "text": e.text}]})
        elif e.kind == "calls":
            blocks: list[dict] = [{"type": "text", "text": e.text}] if e.text else []
            blocks += [{"type": "tool_use", "id": i, "name": TOOL, "input": args_of(i)} for i in e.ids]
            out.append({"role": "assistant", "content": blocks})
        elif e.kind == "results":
            blocks = [{"type": "tool_result", "tool_use_id": i, "content": result_content(i, e.size)} for i in e.ids]
            if e.then:
                blocks.append({"type": "text", "text": e.then})
            out.append({"role": "user", "content": blocks})
    return out


def _pydantic_ai(events: list[Event]) -> list[Any]:
    out: list[Any] = []
    pending_system: list[SystemPromptPart] = []
    for e in events:
        if e.kind == "system":
            pending_system.append(SystemPromptPart(e.text))
            continue
        if e.kind == "user":
            out.append(ModelRequest(parts=[*pending_system, UserPromptPart(e.text)]))
        elif e.kind == "assistant":
            out.append(ModelResponse(parts=[TextPart(e.text)], model_name="test-model"))
        elif e.kind == "calls":
            parts: list[Any] = [TextPart(e.text)] if e.text else []
            parts += [ToolCallPart(TOOL, args_of(i), tool_call_id=i) for i in e.ids]
            out.append(ModelResponse(parts=parts, model_name="test-model"))
        elif e.kind == "results":
            parts = [*pending_system]
            parts += [ToolReturnPart(TOOL, result_content(i, e.size), tool_call_id=i) for i in e.ids]
            if e.then:
                parts.append(UserPromptPart(e.then))
            out.append(ModelRequest(parts=parts))
        pending_system = []
    if pending_system:
        out.append(ModelRequest(parts=pending_system))
    return out


# ---- reading back -------------------------------------------------------------------


def _ret(call_id: str, content: Any) -> str:
    return f"ret:{call_id}:stub" if content == STUB_TEXT else f"ret:{call_id}"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return repr(content)


def flatten(fmt: str, messages: list[Any]) -> list[str]:
    """The history as neutral tokens, in order, message boundaries erased."""
    tokens: list[str] = []
    for m in messages:
        if fmt == "openai":
            role = m["role"]
            if role in ("system", "developer"):
                tokens.append(f"sys:{_text_of(m['content'])}")
            elif role == "user":
                tokens.append(f"user:{_text_of(m['content'])}")
            elif role == "assistant":
                if m.get("content"):
                    tokens.append(f"text:{_text_of(m['content'])}")
                tokens += [f"call:{c['id']}" for c in m.get("tool_calls") or []]
            elif role == "tool":
                tokens.append(_ret(m["tool_call_id"], m["content"]))
            else:
                tokens.append(f"other:{role}")
        elif fmt == "responses":
            kind = m.get("type", "message")
            if kind == "message":
                role = m["role"]
                prefix = {"system": "sys", "developer": "sys", "user": "user", "assistant": "text"}[role]
                tokens.append(f"{prefix}:{_text_of(m['content'])}")
            elif kind.endswith("_call_output"):
                tokens.append(_ret(m["call_id"], m["output"]))
            elif kind.endswith("_call") and "call_id" in m:
                tokens.append(f"call:{m['call_id']}")
            else:
                tokens.append(f"other:{kind}")
        elif fmt == "anthropic":
            content = m["content"]
            if isinstance(content, str):
                tokens.append(f"{'user' if m['role'] == 'user' else 'text'}:{content}")
                continue
            for b in content:
                t = b.get("type")
                if t == "text":
                    tokens.append(f"{'user' if m['role'] == 'user' else 'text'}:{b['text']}")
                elif t == "tool_use":
                    tokens.append(f"call:{b['id']}")
                elif t == "tool_result":
                    tokens.append(_ret(b["tool_use_id"], b.get("content")))
                else:
                    tokens.append(f"other:{t}")
        elif fmt == "pydantic-ai":
            for p in m.parts:
                k = getattr(p, "part_kind", type(p).__name__)
                if k == "system-prompt":
                    tokens.append(f"sys:{p.content}")
                elif k == "user-prompt":
                    tokens.append(f"user:{p.content}")
                elif k == "text":
                    tokens.append(f"text:{p.content}")
                elif k == "tool-call":
                    tokens.append(f"call:{p.tool_call_id}")
                elif k == "tool-return":
                    tokens.append(_ret(p.tool_call_id, p.content))
                else:
                    tokens.append(f"other:{k}")
        else:  # pragma: no cover
            raise ValueError(fmt)
    return tokens


def expected(fmt: str, tokens: list[str]) -> list[str]:
    """``tokens`` as they read in ``fmt`` (Anthropic: no system prompt in the list)."""
    if fmt in WITH_SYSTEM:
        return list(tokens)
    return [t for t in tokens if not t.startswith("sys:")]


def sides(fmt: str, messages: list[Any]) -> list[str]:
    """``"req"`` or ``"res"`` for each message."""
    out = []
    for m in messages:
        if fmt == "pydantic-ai":
            out.append("req" if m.kind == "request" else "res")
        elif fmt == "responses":
            kind = m.get("type", "message")
            if kind == "message":
                out.append("res" if m["role"] == "assistant" else "req")
            elif kind.endswith("_call_output") or kind == "compaction":
                out.append("req")
            else:
                out.append("res")
        else:
            out.append("res" if m["role"] == "assistant" else "req")
    return out


def _is_stub_only(fmt: str, m: Any) -> bool:
    """A request made only of results tokensieve synthesized."""
    if fmt == "pydantic-ai":
        return bool(m.parts) and all(getattr(p, "content", None) == STUB_TEXT for p in m.parts)
    if fmt == "openai":
        return m.get("role") in ("tool", "function") and m.get("content") == STUB_TEXT
    if fmt == "responses":
        return m.get("type", "").endswith("_call_output") and m.get("output") == STUB_TEXT
    content = m.get("content")
    return isinstance(content, list) and bool(content) and all(b.get("content") == STUB_TEXT for b in content)


def count_exchanges(fmt: str, messages: list[Any]) -> int:
    """Runs of response messages (each closes an exchange); a request made only of
    synthesized results (stubs) does not end a run."""
    count, in_run = 0, False
    for m, side in zip(messages, sides(fmt, messages)):
        if side == "res":
            count += not in_run
            in_run = True
        elif not _is_stub_only(fmt, m):
            in_run = False
    return count


def _is_system_only(fmt: str, m: Any) -> bool:
    if fmt == "pydantic-ai":
        return bool(m.parts) and all(getattr(p, "part_kind", "") == "system-prompt" for p in m.parts)
    if fmt in ("openai", "responses"):
        return m.get("role") in ("system", "developer")
    return False


# ---- provider rules -------------------------------------------------------------------


def assert_valid(fmt: str, messages: list[Any]) -> None:
    """Fail with a description if ``messages`` breaks a rule its provider enforces."""
    problems = _problems(fmt, messages)
    assert not problems, f"invalid {fmt} history: {problems}\n{flatten(fmt, messages)}"


def _problems(fmt: str, messages: list[Any]) -> list[str]:
    if fmt == "openai":
        return _openai_problems(messages)
    if fmt == "responses":
        return _responses_problems(messages)
    return _next_message_problems(fmt, messages)


def _openai_problems(messages: list[dict]) -> list[str]:
    problems = []
    answered: set[str] = set()
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            j = i - 1
            while j >= 0 and messages[j]["role"] == "tool":
                j -= 1
            owner = messages[j] if j >= 0 else None
            ids = [c["id"] for c in (owner or {}).get("tool_calls") or []] if owner and owner["role"] == "assistant" else []
            if m["tool_call_id"] not in ids:
                problems.append(f"[{i}] tool message {m['tool_call_id']!r} not in the tool_calls of the message before")
            if m["tool_call_id"] in answered:
                problems.append(f"[{i}] {m['tool_call_id']!r} answered twice")
            answered.add(m["tool_call_id"])
        if m["role"] == "assistant" and m.get("tool_calls"):
            if not m["tool_calls"]:
                problems.append(f"[{i}] empty tool_calls")
            block = set()
            j = i + 1
            while j < len(messages) and messages[j]["role"] == "tool":
                block.add(messages[j]["tool_call_id"])
                j += 1
            missing = [c["id"] for c in m["tool_calls"] if c["id"] not in block]
            if missing:
                problems.append(f"[{i}] tool_call_ids without response messages: {missing}")
        if m["role"] == "assistant" and not m.get("tool_calls") and not m.get("content") and not m.get("function_call"):
            problems.append(f"[{i}] empty assistant message")
    return problems


def _responses_problems(items: list[dict]) -> list[str]:
    problems = []
    open_calls: dict[str, int] = {}
    answered: set[str] = set()
    for i, it in enumerate(items):
        kind = it.get("type", "message")
        if kind.endswith("_call_output"):
            if it["call_id"] not in open_calls:
                problems.append(f"[{i}] no tool call found for output {it['call_id']!r}")
            else:
                del open_calls[it["call_id"]]
                answered.add(it["call_id"])
        elif kind.endswith("_call") and "call_id" in it:
            open_calls[it["call_id"]] = i
        elif kind == "reasoning":
            nxt = items[i + 1] if i + 1 < len(items) else None
            if nxt is None or sides("responses", [nxt]) != ["res"]:
                problems.append(f"[{i}] reasoning item without its following item")
    problems += [f"[{i}] no tool output found for call {cid!r}" for cid, i in open_calls.items()]
    return problems


def _parts(fmt: str, m: Any) -> list[tuple[str, str | None]]:
    """(kind, id) of each part/block: kind in call, ret, text, other."""
    if fmt == "pydantic-ai":
        out = []
        for p in m.parts:
            k = getattr(p, "part_kind", "")
            if k == "tool-call":
                out.append(("call", p.tool_call_id))
            elif k == "tool-return":
                out.append(("ret", p.tool_call_id))
            else:
                out.append((k, None))
        return out
    content = m["content"]
    if isinstance(content, str):
        return [("text", None)]
    out = []
    for b in content:
        t = b.get("type")
        if t == "tool_use":
            out.append(("call", b["id"]))
        elif t == "tool_result":
            out.append(("ret", b["tool_use_id"]))
        else:
            out.append((t, None))
    return out


def _merged(fmt: str, messages: list[Any]) -> list[Any]:
    """Consecutive requests merged, as pydantic-ai and the Anthropic API merge them (the
    tool results of pydantic-ai's merged request hoisted first)."""
    from types import SimpleNamespace

    merged: list[Any] = []
    for m, side in zip(messages, sides(fmt, messages)):
        if fmt == "pydantic-ai":
            if side == "req" and merged and merged[-1].kind == "request":
                merged[-1].parts.extend(m.parts)
                merged[-1].parts.sort(key=lambda p: getattr(p, "part_kind", "") != "tool-return")
            else:
                merged.append(SimpleNamespace(kind=m.kind, parts=list(m.parts)))
        else:
            content = m["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
            if merged and merged[-1]["role"] == m["role"]:
                merged[-1]["content"].extend(blocks)
            else:
                merged.append({"role": m["role"], "content": blocks})
    return merged


def _next_message_problems(fmt: str, messages: list[Any]) -> list[str]:
    # pydantic-ai keeps (and itself makes) an emptied last request: the history must end with one.
    last = len(messages) - 1 if fmt == "pydantic-ai" else -1
    problems = [f"[{i}] empty message" for i, m in enumerate(messages) if not _parts(fmt, m) and i != last]
    messages = _merged(fmt, messages)
    s = sides(fmt, messages)
    first = next((i for i, m in enumerate(messages) if not _is_system_only(fmt, m)), None)
    if first is not None and s[first] != "req":
        problems.append(f"[{first}] the first message is a model response")
    for i, m in enumerate(messages):
        parts = _parts(fmt, m)
        if not parts:
            continue
        call_ids = [pid for k, pid in parts if k == "call"]
        ret_ids = [pid for k, pid in parts if k == "ret"]
        if call_ids:
            nxt = _parts(fmt, messages[i + 1]) if i + 1 < len(messages) and s[i + 1] == "req" else []
            answered = {pid for k, pid in nxt if k == "ret"}
            missing = [c for c in call_ids if c not in answered]
            if missing:
                problems.append(f"[{i}] tool calls without a result in the next message: {missing}")
        if ret_ids:
            prev = _parts(fmt, messages[i - 1]) if i > 0 and s[i - 1] == "res" else []
            made = {pid for k, pid in prev if k == "call"}
            stray = [r for r in ret_ids if r not in made]
            if stray:
                problems.append(f"[{i}] tool results without a call in the previous message: {stray}")
            if len(set(ret_ids)) != len(ret_ids):
                problems.append(f"[{i}] a call answered twice: {ret_ids}")
            kinds = [k for k, _ in parts]
            last_ret = max(j for j, k in enumerate(kinds) if k == "ret")
            if fmt == "anthropic" and any(k != "ret" for k in kinds[:last_ret]):
                problems.append(f"[{i}] tool_result blocks are not first: {kinds}")
    return problems


# ---- small pydantic-ai helpers -----------------------------------------------------------


def thinking_response(*ids: str, thought: str = "let me think") -> ModelResponse:
    return ModelResponse(
        parts=[ThinkingPart(thought, signature="sig"), *[ToolCallPart(TOOL, args_of(i), tool_call_id=i) for i in ids]],
        model_name="test-model",
    )


def brief(messages: list[Any]) -> list[str]:
    """pydantic-ai messages in one line each: ``req:user-prompt,tool-return[c1]``."""
    out = []
    for m in messages:
        kinds = []
        for p in m.parts:
            k = getattr(p, "part_kind", type(p).__name__)
            cid = getattr(p, "tool_call_id", None)
            kinds.append(f"{k}[{cid}]" if cid and k in ("tool-call", "tool-return") else k)
        out.append(f"{'req' if m.kind == 'request' else 'res'}:{','.join(kinds)}")
    return out
