"""Hypothesis strategies: random agent histories in the four formats tokensieve reads.

A history is drawn in two steps. :func:`sessions` draws an abstract agent session —
system prompts, user turns, tool loops with parallel calls, thinking, built-in tools,
images, huge tool results, text in many scripts — with *defects* injected the way real
histories get them: results that never come, results arriving several messages later,
results split across two messages, orphan results, reused call ids, empty messages.
A renderer then writes it in one format, adding what only that format has (pydantic-ai
retries, instructions and bookkeeping parts; Responses reasoning and compaction items;
Anthropic redacted thinking and server tools; OpenAI legacy ``function_call``).

Defects are drawn so that they shrink away: a minimal failing example has only the
defects it needs. :func:`budget_plans` draws a budget relative to the history's size
(see :meth:`BudgetPlan.overrides`), so that compaction happens in most examples and the
below-threshold path is exercised too.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from pydantic_ai.messages import (
    BinaryImage,
    CompactionPart,
    FilePart,
    ImageUrl,
    ModelRequest,
    ModelResponse,
    NativeToolCallPart,
    NativeToolReturnPart,
    RetryFeedbackPart,
    RetryInfo,
    SystemPromptPart,
    TextPart,
    ThinkingPart,
    ToolAvailabilityDeltaPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

FORMATS = ("pydantic-ai", "openai", "responses", "anthropic")

# ---- Text ---------------------------------------------------------------------------------

WORDS = (
    "the", "tool", "result", "file", "test", "error", "ok", "read", "src/main.py", "x = 1;",
    "naïve", "café", "Ωmega", "straße", "Привет", "مرحبا", "日本語のテキスト", "中文", "한국어",
    "🙂", "🚀", "👨\u200d👩\u200d👧", "🇫🇷", "e\u0301", "\n", "\t", "  ", '"quoted"', "back\\slash",
    "<|endoftext|>", "{\"k\": [1, 2]}", "ctrl\x07char", "\r\n", "1234567890",
)


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


# Texts are built from a drawn seed (two draws instead of one per word: generation stays
# fast), with now and then an arbitrary Unicode string from st.text().
_seeds = st.integers(0, 2**32 - 1)
nonempty_texts = st.builds(lambda seed, n: _words(random.Random(seed), n), _seeds, st.integers(1, 24))
texts = st.one_of(
    st.builds(lambda seed, n: _words(random.Random(seed), n), _seeds, st.integers(0, 24)),
    st.text(max_size=20),
)


@st.composite
def huge_texts(draw) -> str:
    """Some tens of KB: a drawn snippet repeated."""
    snippet = draw(nonempty_texts)
    size = draw(st.integers(10_000, 60_000))
    return (snippet + "\n") * max(1, size // (len(snippet) + 1))


# Prompts that only acknowledge, and near misses that must be kept.
acknowledgements = st.sampled_from(["ok", "Thanks!", "got it, thanks", "OK.", "thank you", "ok, now fix it", "okay 🙂"])


ARG_KEYS = ("path", "query", "n", "flag", "items", "pattern", "ünïcode", "nested")


def _json_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth == 0 else 6)
    if kind == 0:
        return _words(rng, rng.randint(0, 6))
    if kind == 1:
        return rng.randint(-(10**12), 10**12)
    if kind == 2:
        return rng.choice([0.1, -2.5, 1e20, 3.0, -0.0, 1 / 3, 6.02e-23])
    if kind == 3:
        return rng.random() < 0.5
    if kind == 4:
        return None
    if kind == 5:
        return rng.choice(WORDS)
    if kind == 6:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(("a", "b", "c")): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 2))}


def _args(seed: int) -> dict:
    rng = random.Random(seed)
    return {key: _json_value(rng) for key in rng.sample(ARG_KEYS, rng.randint(0, 3))}


tool_args = st.builds(_args, _seeds)
tool_names = st.sampled_from(["read_file", "grep", "run_tests", "list_dir", "edit_file", "search"])
structured_contents = st.builds(lambda seed: {"status": "ok", "data": _args(seed)}, _seeds)


def chance(draw, percent: int) -> bool:
    """True with about ``percent``% probability; shrinks to False."""
    return draw(st.integers(0, 99)) >= 100 - percent


# ---- The abstract session -----------------------------------------------------------------


@dataclass
class Call:
    id: str
    name: str
    args: dict
    custom: bool = False  # OpenAI / Responses custom tool
    legacy: bool = False  # OpenAI legacy function_call (a single call, answered positionally)


@dataclass
class Result:
    call: Call
    content: Any  # a str (sometimes huge) or a JSON-like value
    retried: bool = False


@dataclass
class System:
    text: str


@dataclass
class User:
    text: str
    images: int = 0


@dataclass
class Assistant:
    thinking: str | None
    text: str | None
    calls: list[Call] = field(default_factory=list)
    native: bool = False  # a built-in (server-side) tool call and its result inside the response


@dataclass
class Results:
    results: list[Result]
    user_text: str | None = None  # the user steering in the same request, after the results


@dataclass
class Empty:
    side: str  # "request" or "response"


@st.composite
def sessions(draw, defects: bool = True) -> list:
    """An agent session: turns of a user prompt followed by a tool loop."""
    counter = itertools.count(1)
    seen_ids: list[str] = []
    late: list[Result] = []
    session: list = []

    def contents():
        if chance(draw, 5):
            return draw(huge_texts())
        if chance(draw, 10):
            return draw(structured_contents)
        return draw(texts)

    if chance(draw, 80):
        session.append(System(draw(nonempty_texts)))
    turns = draw(st.integers(1, 4))
    for turn in range(turns):
        if turn > 0 and chance(draw, 8):
            session.append(System(draw(nonempty_texts)))  # a system message in the middle
        if turn > 0 and chance(draw, 20):
            # An acknowledgement-only turn (the prune step's `acknowledgements` rule).
            session.append(User(draw(acknowledgements)))
        else:
            session.append(User(draw(texts), images=draw(st.integers(1, 2)) if chance(draw, 15) else 0))
        interrupted = False
        for _ in range(draw(st.integers(0, 4))):
            calls = []
            for _ in range(draw(st.integers(1, 3))):  # parallel calls
                # An id of this very response is not free: two calls with one id in one
                # response are the ambiguous in-response reuse (which call an answer
                # belongs to is undefined), a defect the adversarial generator draws on
                # its own, with its own expectations.
                free = [i for i in seen_ids if all(c.id != i for c in calls)]
                if defects and free and chance(draw, 6):
                    call_id = draw(st.sampled_from(free))  # an id reused across turns
                else:
                    call_id = f"call_{next(counter)}"
                calls.append(Call(call_id, draw(tool_names), draw(tool_args), custom=chance(draw, 10)))
            if len(calls) == 1 and chance(draw, 15):
                calls[0].legacy = True
            seen_ids.extend(c.id for c in calls)
            session.append(
                Assistant(
                    thinking=draw(nonempty_texts) if chance(draw, 35) else None,
                    text=draw(texts) if chance(draw, 40) else None,
                    calls=calls,
                    native=chance(draw, 12),
                )
            )
            if defects and chance(draw, 8):
                interrupted = True  # the run stopped before the tools answered
                break
            results = []
            for call in calls:
                result = Result(call, contents(), retried=chance(draw, 10))
                if defects and chance(draw, 7):
                    continue  # never answered
                if defects and chance(draw, 7):
                    late.append(result)  # answered some messages later
                    continue
                results.append(result)
            if defects and late and results and chance(draw, 50):
                results.extend(late)  # late results of earlier calls arrive here
                late = []
            if defects and chance(draw, 7):
                orphan = Call(f"gone_{next(counter)}", draw(tool_names), {})
                results.insert(draw(st.integers(0, len(results))), Result(orphan, draw(texts)))
            user_text = draw(nonempty_texts) if chance(draw, 10) else None
            if defects and len(results) >= 2 and chance(draw, 10):
                cut = draw(st.integers(1, len(results) - 1))  # results split across two messages
                session.append(Results(results[:cut]))
                session.append(Results(results[cut:], user_text))
            elif results or user_text:
                session.append(Results(results, user_text))
            if defects and chance(draw, 8):
                session.append(Empty(draw(st.sampled_from(["request", "response"]))))
        if not interrupted and (turn < turns - 1 or chance(draw, 60)):
            session.append(
                Assistant(
                    thinking=draw(nonempty_texts) if chance(draw, 30) else None,
                    text=draw(nonempty_texts),
                    native=chance(draw, 10),
                )
            )
    if chance(draw, 40):
        session.append(User(draw(nonempty_texts)))  # the new task: the history ends with a request
    if defects and chance(draw, 5):
        session.append(Empty("request"))
    return session


def _text_of(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


# ---- pydantic-ai --------------------------------------------------------------------------


def render_pydantic_ai(draw, session: list) -> list:
    out: list = []
    system_parts: list = []  # system prompts waiting to go into the next user request
    native_ids = itertools.count(1)

    def instructions():
        return draw(nonempty_texts) if chance(draw, 20) else None

    if chance(draw, 8):
        out.append(ModelRequest([CompactionPart(draw(nonempty_texts))]))
    for m in session:
        if isinstance(m, System):
            if chance(draw, 60):
                system_parts.append(SystemPromptPart(m.text))
            else:
                out.append(ModelRequest([SystemPromptPart(m.text)]))
        elif isinstance(m, User):
            content: Any = m.text
            if m.images:
                content = [m.text]
                for _ in range(m.images):
                    content.append(
                        ImageUrl("https://example.com/cat.png")
                        if chance(draw, 50)
                        else BinaryImage(b"\x89PNG\r\n\x1a\nfake", media_type="image/png")
                    )
            parts = [*system_parts, UserPromptPart(content)]
            system_parts = []
            if chance(draw, 10):
                parts.append(ToolAvailabilityDeltaPart(tools_added=["grep"]))
            out.append(ModelRequest(parts, instructions=instructions()))
        elif isinstance(m, Assistant):
            parts = []
            if m.thinking is not None:
                parts.append(ThinkingPart(m.thinking, signature="sig-" + str(len(m.thinking))))
            if m.native:
                call_id = f"native_{next(native_ids)}"
                parts.append(NativeToolCallPart("web_search", {"query": m.thinking or "q"}, tool_call_id=call_id, provider_name="openai"))
                parts.append(NativeToolReturnPart("web_search", {"results": ["a", "b"]}, tool_call_id=call_id, provider_name="openai"))
            if m.text is not None:
                parts.append(TextPart(m.text))
            for call in m.calls:
                args: Any = call.args if chance(draw, 60) else json.dumps(call.args, ensure_ascii=False)
                parts.append(ToolCallPart(call.name, args, tool_call_id=call.id))
            if chance(draw, 5):
                parts.append(FilePart(BinaryImage(b"\x89PNG\r\n\x1a\nplot", media_type="image/png")))
            out.append(ModelResponse(parts, model_name="test-model"))
        elif isinstance(m, Results):
            parts = []
            for r in m.results:
                if r.retried:
                    parts.append(
                        ToolReturnPart(
                            r.call.name,
                            "validation error: " + _text_of(r.content)[:200],
                            tool_call_id=r.call.id,
                            outcome="retried",
                            retry=RetryInfo("validation_error"),
                        )
                    )
                else:
                    parts.append(ToolReturnPart(r.call.name, r.content, tool_call_id=r.call.id))
            if m.user_text is not None:
                parts.append(UserPromptPart(m.user_text))
            if chance(draw, 5):
                parts.append(RetryFeedbackPart("Please answer in JSON", retry=RetryInfo("model_retry")))
            out.append(ModelRequest(parts, instructions=instructions()))
        elif isinstance(m, Empty):
            out.append(ModelRequest([]) if m.side == "request" else ModelResponse([]))
    if system_parts:
        out.append(ModelRequest(system_parts))
    return out


# ---- OpenAI chat completions -------------------------------------------------------------


def render_openai(draw, session: list) -> list:
    out: list = []
    for m in session:
        if isinstance(m, System):
            out.append({"role": draw(st.sampled_from(["system", "developer"])), "content": m.text})
        elif isinstance(m, User):
            message: dict = {"role": "user", "content": m.text}
            if m.images:
                message["content"] = [{"type": "text", "text": m.text}] + [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
                ] * m.images
            if chance(draw, 5):
                message["name"] = "alice"
            out.append(message)
        elif isinstance(m, Assistant):
            message = {"role": "assistant", "content": m.text}
            if m.text is None and not m.calls and chance(draw, 50):
                message["content"] = draw(nonempty_texts)
            if chance(draw, 3):
                message["refusal"] = "I can't help with that."
            legacy = [c for c in m.calls if c.legacy]
            if legacy:
                call = legacy[0]
                message["function_call"] = {"name": call.name, "arguments": json.dumps(call.args, ensure_ascii=False)}
            elif m.calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "custom", "custom": {"name": c.name, "input": json.dumps(c.args, ensure_ascii=False)}}
                    if c.custom
                    else {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.args, ensure_ascii=False)},
                    }
                    for c in m.calls
                ]
            out.append(message)
        elif isinstance(m, Results):
            for r in m.results:
                if r.call.legacy:
                    out.append({"role": "function", "name": r.call.name, "content": _text_of(r.content)})
                elif chance(draw, 15):
                    out.append({"role": "tool", "tool_call_id": r.call.id, "content": [{"type": "text", "text": _text_of(r.content)}]})
                else:
                    out.append({"role": "tool", "tool_call_id": r.call.id, "content": _text_of(r.content)})
            if m.user_text is not None:
                out.append({"role": "user", "content": m.user_text})
        elif isinstance(m, Empty):
            if m.side == "response":
                out.append({"role": "assistant", "content": draw(st.sampled_from([None, ""]))})
    return out


# ---- OpenAI Responses ---------------------------------------------------------------------


def render_responses(draw, session: list) -> list:
    out: list = []
    item_ids = itertools.count(1)
    if chance(draw, 8):
        out.append({"type": "compaction", "id": "cmp_1", "summary": draw(nonempty_texts)})
    for m in session:
        if isinstance(m, System):
            if chance(draw, 50):
                out.append({"role": "system", "content": m.text})
            else:
                out.append({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": m.text}]})
        elif isinstance(m, User):
            if m.images or chance(draw, 40):
                content = [{"type": "input_text", "text": m.text}] + [
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
                ] * m.images
                out.append({"type": "message", "role": "user", "content": content})
            else:
                out.append({"role": "user", "content": m.text})
        elif isinstance(m, Assistant):
            items = []
            if m.native:
                items.append(
                    {"type": "web_search_call", "id": f"ws_{next(item_ids)}", "status": "completed",
                     "action": {"type": "search", "query": "weather"}}
                )
            if m.text is not None:
                items.append(
                    {"type": "message", "id": f"msg_{next(item_ids)}", "role": "assistant",
                     "content": [{"type": "output_text", "text": m.text}]}
                )
            for c in m.calls:
                if c.custom:
                    items.append({"type": "custom_tool_call", "call_id": c.id, "name": c.name,
                                  "input": json.dumps(c.args, ensure_ascii=False)})
                else:
                    items.append({"type": "function_call", "call_id": c.id, "name": c.name,
                                  "arguments": json.dumps(c.args, ensure_ascii=False)})
            if m.thinking is not None and items:
                # The reasoning item goes right before the item it belongs to.
                items.insert(0, {"type": "reasoning", "id": f"rs_{next(item_ids)}",
                                 "summary": [{"type": "summary_text", "text": m.thinking}],
                                 "encrypted_content": "gAAAAB" + "x" * 40})
            out.extend(items)
        elif isinstance(m, Results):
            for r in m.results:
                kind = "custom_tool_call_output" if r.call.custom else "function_call_output"
                output: Any = _text_of(r.content)
                if chance(draw, 15):
                    output = [{"type": "input_text", "text": output}]
                out.append({"type": kind, "call_id": r.call.id, "output": output})
            if m.user_text is not None:
                out.append({"role": "user", "content": m.user_text})
        # Empty messages have no Responses counterpart.
    return out


# ---- Anthropic Messages ------------------------------------------------------------------


def render_anthropic(draw, session: list) -> list:
    out: list = []
    server_ids = itertools.count(1)
    for m in session:
        if isinstance(m, System):
            continue  # the system prompt is a separate parameter
        if isinstance(m, User):
            if m.images:
                blocks: list = [{"type": "text", "text": m.text}]
                blocks += [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                ] * m.images
                out.append({"role": "user", "content": blocks})
            else:
                out.append({"role": "user", "content": m.text})
        elif isinstance(m, Assistant):
            blocks = []
            if m.thinking is not None:
                if chance(draw, 25):
                    blocks.append({"type": "redacted_thinking", "data": "EmwKAhgBEgy" + "z" * 30})
                else:
                    blocks.append({"type": "thinking", "thinking": m.thinking, "signature": "sig" + "s" * 20})
            if m.native:
                server_id = f"srvtoolu_{next(server_ids)}"
                blocks.append({"type": "server_tool_use", "id": server_id, "name": "web_search", "input": {"query": "x"}})
                blocks.append(
                    {"type": "web_search_tool_result", "tool_use_id": server_id,
                     "content": [{"type": "web_search_result", "url": "https://example.com", "title": "Example"}]}
                )
            if m.text is not None:
                blocks.append({"type": "text", "text": m.text})
            for c in m.calls:
                blocks.append({"type": "tool_use", "id": c.id, "name": c.name, "input": c.args})
            if len(blocks) == 1 and blocks[0]["type"] == "text" and chance(draw, 40):
                out.append({"role": "assistant", "content": m.text})
            else:
                out.append({"role": "assistant", "content": blocks})
        elif isinstance(m, Results):
            blocks = []
            for r in m.results:
                block: dict = {"type": "tool_result", "tool_use_id": r.call.id}
                if chance(draw, 20):
                    block["content"] = [{"type": "text", "text": _text_of(r.content)}]
                else:
                    block["content"] = _text_of(r.content)
                if r.retried:
                    block["is_error"] = True
                blocks.append(block)
            if m.user_text is not None:
                blocks.append({"type": "text", "text": m.user_text})  # after the results
            out.append({"role": "user", "content": blocks})
        elif isinstance(m, Empty):
            out.append({"role": "user" if m.side == "request" else "assistant", "content": draw(st.sampled_from([[], None]))})
    return out


RENDERERS = {
    "pydantic-ai": render_pydantic_ai,
    "openai": render_openai,
    "responses": render_responses,
    "anthropic": render_anthropic,
}


@st.composite
def histories(draw, fmt: str, defects: bool = True) -> list:
    """A history in format ``fmt``: an agent session, with defects unless told otherwise."""
    return RENDERERS[fmt](draw, draw(sessions(defects=defects)))


# ---- Budgets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetPlan:
    """A budget relative to a history's size, turned into BudgetConfig overrides by
    :meth:`overrides` once the history's tokens are known."""

    compact: bool  # above the compaction threshold?
    threshold_share: float  # of the total: where the compaction threshold is (when compacting)
    target_share: float  # of the total: the target
    headroom: float  # max_input_tokens = total * headroom (+ 1000 with stubs)
    max_exchanges: int | None
    reserved_tokens: int
    encoding: str
    dangling_calls: str

    def overrides(self, history_tokens: int) -> dict:
        total = history_tokens + self.reserved_tokens
        extra = 1000 if self.dangling_calls == "stub" else 0  # stubs may add tokens
        max_input = max(1, int(total * self.headroom) + extra)
        if self.compact and total > 0:
            threshold = min(1.0, max(1e-6, self.threshold_share * total / max_input))
        else:
            threshold = 1.0
        return {
            "max_input_tokens": max_input,
            "compaction_threshold": threshold,
            "hard_limit_threshold": 1.0,
            "target_input_tokens": min(max_input, int(total * self.target_share)),
            "max_exchanges": self.max_exchanges,
            "reserved_tokens": self.reserved_tokens,
            "encoding": self.encoding,
            "dangling_calls": self.dangling_calls,
        }


@st.composite
def budget_plans(draw, dangling_calls: str = "drop") -> BudgetPlan:
    compact = draw(st.sampled_from([True, True, False]))
    return BudgetPlan(
        compact=compact,
        threshold_share=draw(st.sampled_from([0.05, 0.3, 0.6, 0.9, 0.99])),
        target_share=draw(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.8, 1.0, 1.2])),
        headroom=draw(st.sampled_from([1.0, 1.5, 3.0])) if dangling_calls == "drop" else draw(st.sampled_from([2.0, 3.0])),
        max_exchanges=draw(st.none() | st.integers(1, 6)),
        reserved_tokens=draw(st.sampled_from([0, 0, 0, 7, 500])),
        encoding=draw(st.sampled_from(["o200k_base", "o200k_base", "cl100k_base"])),
        dangling_calls=dangling_calls,
    )
