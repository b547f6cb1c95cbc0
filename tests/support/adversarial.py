"""Hypothesis strategies: adversarial agent histories that know whether they are valid.

``tests/support/histories.py`` draws realistic sessions with defects injected at random;
it does not say which of its histories a provider would accept. This module draws the
shapes that broke tokensieve (issue 8) on purpose and keeps score: every feature it adds
is either *valid* (a provider accepts it, so compaction under the threshold must return
the history untouched) or a *defect* (named in :attr:`Adversarial.defects`).

Valid but unusual, per the providers' real rules (``shared/reference/provider-rules.md``):

- call ids reused in a later turn, once the earlier call was answered;
- the results of one response spread over a run of consecutive request messages
  (pydantic-ai merges consecutive ``ModelRequest``s; Anthropic merges consecutive user
  turns, so every message of the run but the last holds only ``tool_result`` blocks;
  OpenAI chat accepts any run of ``tool`` messages; Responses pairs by ``call_id``);
- retries: a pydantic-ai ``RetryPromptPart`` with a ``tool_name`` (a tool result), a
  ``ToolReturnPart`` with ``outcome="retried"``, an Anthropic ``is_error`` result;
- thinking and redacted thinking, built-in (server) tools, parallel calls;
- an OpenAI chat / Responses assistant message whose content is ``""``;
- multimodal parts (images, audio, documents, files) in every format;
- OpenAI legacy ``function_call`` answered by a ``function`` message;
- Responses ``reasoning`` items (bonded to the next item), ``custom_tool_call`` /
  ``custom_tool_call_output``, and ``compaction`` items (also in the middle).

Defects: calls interrupted (the turn ends, or the next response follows directly),
results that never come or come late, a pending request of orphan results only,
orphan results, results of a response put after a *later* response, empty messages where
the provider rejects them, a history that does not start with a user turn (Anthropic),
and an id reused while its first call is still open.

:func:`adversarial` returns an :class:`Adversarial` holding the messages, the format,
the defects, and the *sound pairs*: for every call whose result sits where its provider
looks for it and whose id is unambiguous, the call item and the result item (the very
objects), so a property can check that compaction under the threshold kept both.
"""

from __future__ import annotations

import itertools
import json
import warnings
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from pydantic_ai.messages import (
    AudioUrl,
    BinaryContent,
    BinaryImage,
    CompactionPart,
    DocumentUrl,
    ImageUrl,
    ModelRequest,
    ModelResponse,
    NativeToolCallPart,
    NativeToolReturnPart,
    RetryInfo,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from tests.support.histories import (
    FORMATS,
    _text_of,
    chance,
    huge_texts,
    nonempty_texts,
    structured_contents,
    texts,
    tool_args,
    tool_names,
)

__all__ = ["FORMATS", "Adversarial", "adversarial", "valid_adversarial"]

MEDIA = ("image", "audio", "document")


# ---- The abstract session -----------------------------------------------------------------


@dataclass
class ACall:
    id: str
    name: str
    args: dict
    custom: bool = False  # OpenAI / Responses custom tool
    legacy: bool = False  # OpenAI legacy function_call (the only call of its message)
    sound: bool = True  # answered where its provider looks, with an unambiguous id


@dataclass
class AResult:
    call: ACall
    content: Any
    retry: str = "none"  # "none", "outcome" (ToolReturnPart outcome="retried"), "prompt" (RetryPromptPart)


@dataclass
class ASystem:
    text: str


@dataclass
class AUser:
    text: str
    media: tuple[str, ...] = ()


@dataclass
class AAssistant:
    thinking: str | None
    text: str | None
    calls: list[ACall] = field(default_factory=list)
    native: bool = False


@dataclass
class AResults:
    """One request message of results (``first`` of its run: the message right after the response)."""

    results: list[AResult]
    user_text: str | None = None


@dataclass
class AEmpty:
    side: str  # "request" or "response"


@dataclass
class ACompaction:
    summary: str


@dataclass
class Session:
    items: list
    defects: list[str]
    nothing_to_send: bool = False


def _ids():
    counter = itertools.count(1)
    return lambda prefix="call": f"{prefix}_{next(counter)}"


@st.composite
def adversarial_sessions(draw, fmt: str, defects: bool = True) -> Session:
    """An agent session in the abstract, with the valid oddities of ``fmt`` and, when
    ``defects`` is true, defects (each recorded)."""
    new_id = _ids()
    found: list[str] = []
    items: list = []
    answered_ids: list[str] = []  # ids whose calls are fully answered: free for reuse
    late: list[AResult] = []

    def defect(name: str, percent: int) -> bool:
        if defects and chance(draw, percent):
            found.append(name)
            return True
        return False

    def contents():
        if chance(draw, 4):
            return draw(huge_texts())
        if chance(draw, 12):
            return draw(structured_contents)
        return draw(texts)

    def media() -> tuple[str, ...]:
        if not chance(draw, 20):
            return ()
        return tuple(draw(st.lists(st.sampled_from(MEDIA), min_size=1, max_size=3)))

    if fmt != "anthropic" and chance(draw, 80):
        items.append(ASystem(draw(nonempty_texts)))
    if fmt in ("responses", "pydantic-ai") and chance(draw, 10):
        items.append(ACompaction(draw(nonempty_texts)))
    if fmt == "anthropic" and defect("starts with an assistant turn", 3):
        items.append(AAssistant(None, draw(nonempty_texts)))
    turns = draw(st.integers(1, 4))
    for turn in range(turns):
        if turn > 0 and fmt != "anthropic" and chance(draw, 8):
            items.append(ASystem(draw(nonempty_texts)))
        if turn > 0 and fmt in ("responses", "pydantic-ai") and chance(draw, 6):
            items.append(ACompaction(draw(nonempty_texts)))
        # Anthropic rejects an empty user turn.
        items.append(AUser(draw(nonempty_texts if fmt == "anthropic" else texts), media()))
        interrupted = False
        for _ in range(draw(st.integers(0, 4))):
            calls: list[ACall] = []
            for _ in range(draw(st.integers(1, 3))):  # parallel calls
                # An id of this very response is not free: two calls with one id in one
                # response are the ambiguous "id reused inside one response" below.
                free = [i for i in answered_ids if all(c.id != i for c in calls)]
                if free and chance(draw, 15):
                    call_id = draw(st.sampled_from(free))  # reused across turns: valid
                elif calls and fmt != "responses" and defect("an id reused inside one response", 3):
                    call_id = calls[0].id
                    calls[0].sound = False
                    call = ACall(call_id, draw(tool_names), draw(tool_args), sound=False)
                    calls.append(call)
                    continue
                else:
                    call_id = new_id()
                calls.append(ACall(call_id, draw(tool_names), draw(tool_args), custom=fmt in ("openai", "responses") and chance(draw, 10)))
            if fmt == "openai" and len(calls) == 1 and chance(draw, 15):
                calls[0].legacy = True
                calls[0].custom = False
            assistant = AAssistant(
                thinking=draw(nonempty_texts) if chance(draw, 35) else None,
                text=draw(texts) if chance(draw, 35) else None,
                calls=calls,
                native=fmt != "openai" and chance(draw, 10),
            )
            if assistant.text == "" and fmt in ("anthropic", "pydantic-ai"):
                assistant.text = None
            items.append(assistant)
            if defect("calls interrupted: no results", 6):
                for c in calls:
                    c.sound = False
                if chance(draw, 50):
                    continue  # the run resumed: the next response follows this one directly
                interrupted = True
                break
            results: list[AResult] = []
            for call in calls:
                retry = "none"
                if chance(draw, 12):
                    retry = "prompt" if fmt == "pydantic-ai" and chance(draw, 50) else "outcome"
                result = AResult(call, contents(), retry)
                if defect("a call never answered", 5):
                    call.sound = False
                    continue
                if not call.legacy and fmt != "responses" and defect("a result arriving after a later response", 4):
                    call.sound = False
                    late.append(result)
                    continue
                results.append(result)
            if late and results and chance(draw, 60):
                results.extend(late)  # the late results of earlier calls arrive here
                late = []
            if defect("an orphan result", 5):
                orphan = ACall(new_id("gone"), draw(tool_names), {}, sound=False)
                # After a legacy result, which must come right after its function_call.
                at = len(results) if any(c.legacy for c in calls) else draw(st.integers(0, len(results)))
                results.insert(at, AResult(orphan, draw(texts)))
            user_text = draw(nonempty_texts) if chance(draw, 12) else None
            legacy = any(c.legacy for c in calls)
            if len(results) >= 2 and not legacy and chance(draw, 30):
                # Valid: one response's results spread over a run of request messages.
                pieces = draw(st.integers(2, min(4, len(results))))
                cuts = sorted(draw(st.lists(st.integers(1, len(results) - 1), min_size=pieces - 1, max_size=pieces - 1, unique=True)))
                bounds = [0, *cuts, len(results)]
                for a, b in zip(bounds, bounds[1:]):
                    items.append(AResults(results[a:b]))
                items[-1].user_text = user_text
            elif results or user_text:
                items.append(AResults(results, user_text))
            answered_ids.extend(c.id for c in calls if c.sound)
            if chance(draw, 8):
                if fmt in ("openai", "responses"):
                    items.append(AAssistant(None, ""))  # valid: content ""
                elif defect("an empty message", 100):
                    items.append(AEmpty(draw(st.sampled_from(["request", "response"]))))
        if not interrupted and (turn < turns - 1 or chance(draw, 60)):
            text = draw(nonempty_texts)
            if fmt in ("openai", "responses") and chance(draw, 8):
                text = ""  # valid: an empty final answer
            items.append(AAssistant(draw(nonempty_texts) if chance(draw, 30) else None, text, native=fmt != "openai" and chance(draw, 10)))
    if late:
        for r in late:
            r.call.sound = False
    if chance(draw, 45):
        items.append(AUser(draw(nonempty_texts), media()))
    elif isinstance(items[-1], AAssistant) and not items[-1].calls and defect("a trailing request of orphan results", 30):
        # The pending request holds only results whose calls are gone.
        orphan = ACall(new_id("gone"), draw(tool_names), {}, sound=False)
        items.append(AResults([AResult(orphan, draw(texts))]))
    if fmt == "pydantic-ai" and not isinstance(items[-1], (AUser, AResults)):
        # pydantic-ai refuses a history that does not end with a request.
        if not defect("ends with a ModelResponse", 10):
            items.append(AUser(draw(nonempty_texts)))
    # Ambiguity: a reused id whose earlier use was never answered.
    seen: dict[str, ACall] = {}
    for item in items:
        if isinstance(item, AAssistant):
            for c in item.calls:
                if c.id in seen and not seen[c.id].sound:
                    c.sound = False
                seen[c.id] = c
    if fmt == "anthropic" and isinstance(items[-1], AAssistant):
        # A final assistant turn is a prefill: valid, but the task is then in an earlier turn.
        pass
    return Session(items, found, _nothing_to_send(items))


def _nothing_to_send(items: list) -> bool:
    """Whether the history ends with a run of requests whose only content is results that
    answer no call in the history (the orphans' ``gone_`` ids): repair removes that whole
    pending request, and docs/compaction.md section 4 step 4 says there is then nothing to
    send (OpenAI chat, Responses and Anthropic raise; pydantic-ai keeps it, emptied)."""
    tail: list = []
    for item in reversed(items):
        if not (isinstance(item, AResults) or (isinstance(item, AEmpty) and item.side == "request")):
            break
        tail.append(item)
    runs = [item for item in tail if isinstance(item, AResults)]
    return bool(runs) and all(
        run.user_text is None and all(r.call.id.startswith("gone_") for r in run.results) for run in runs
    )


# ---- Rendering ----------------------------------------------------------------------------


@dataclass
class Adversarial:
    """A drawn history: ``messages`` in ``fmt``, the ``defects`` put into it (empty: a
    history its provider accepts), and ``sound_pairs``: ``(call item, result item)`` of
    every well-placed pair with an unambiguous id."""

    fmt: str
    messages: list
    defects: tuple[str, ...]
    sound_pairs: list[tuple[Any, Any]]
    # Ends with a request of nothing but orphan results: compacting it raises
    # InvalidMessageError ("nothing is left to send") except for pydantic-ai.
    nothing_to_send: bool = False

    @property
    def valid(self) -> bool:
        return not self.defects


class _Pairs:
    def __init__(self) -> None:
        self.calls: dict[int, Any] = {}  # id(ACall) -> rendered call item
        self.results: dict[int, Any] = {}  # id(ACall) -> rendered result item
        self.sound: dict[int, ACall] = {}

    def call(self, call: ACall, item: Any) -> None:
        self.calls[id(call)] = item
        self.sound[id(call)] = call

    def result(self, call: ACall, item: Any) -> None:
        self.results[id(call)] = item

    def pairs(self) -> list[tuple[Any, Any]]:
        return [
            (self.calls[k], self.results[k])
            for k, c in self.sound.items()
            if c.sound and k in self.results
        ]


def _pydantic_media(kind: str):
    if kind == "image":
        return ImageUrl("https://example.com/cat.png")
    if kind == "audio":
        return AudioUrl("https://example.com/a.mp3")
    if kind == "document":
        return DocumentUrl("https://example.com/a.pdf")
    return BinaryImage(b"\x89PNG\r\n\x1a\nfake", media_type="image/png")


def render_pydantic_ai(draw, session: Session, pairs: _Pairs) -> list:
    out: list = []
    system_parts: list = []
    for m in session.items:
        if isinstance(m, ASystem):
            if chance(draw, 60):
                system_parts.append(SystemPromptPart(m.text))
            else:
                out.append(ModelRequest([SystemPromptPart(m.text)]))
        elif isinstance(m, ACompaction):
            out.append(ModelRequest([CompactionPart(m.summary)]))
        elif isinstance(m, AUser):
            content: Any = m.text
            if m.media:
                content = [m.text, *(_pydantic_media(k) for k in m.media)]
                if chance(draw, 30):
                    content.append(BinaryContent(b"\x00\x01binary", media_type="application/pdf"))
            parts = [*system_parts, UserPromptPart(content)]
            system_parts = []
            out.append(ModelRequest(parts, instructions=draw(nonempty_texts) if chance(draw, 15) else None))
        elif isinstance(m, AAssistant):
            parts: list = []
            if m.thinking is not None:
                parts.append(ThinkingPart(m.thinking, signature="sig-" + str(len(m.thinking))))
            if m.native:
                nid = f"native_{len(out)}"
                parts.append(NativeToolCallPart("web_search", {"query": "q"}, tool_call_id=nid, provider_name="openai"))
                parts.append(NativeToolReturnPart("web_search", {"results": ["a"]}, tool_call_id=nid, provider_name="openai"))
            if m.text is not None:
                parts.append(TextPart(m.text))
            for c in m.calls:
                args: Any = c.args if chance(draw, 60) else json.dumps(c.args, ensure_ascii=False)
                part = ToolCallPart(c.name, args, tool_call_id=c.id)
                pairs.call(c, part)
                parts.append(part)
            out.append(ModelResponse(parts, model_name="test-model"))
        elif isinstance(m, AResults):
            parts = []
            for r in m.results:
                if r.retry == "prompt":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # RetryPromptPart is deprecated, still read
                        part = RetryPromptPart("fix the arguments: " + _text_of(r.content)[:100], tool_name=r.call.name, tool_call_id=r.call.id)
                elif r.retry == "outcome":
                    part = ToolReturnPart(r.call.name, "validation error", tool_call_id=r.call.id, outcome="retried", retry=RetryInfo("validation_error"))
                else:
                    part = ToolReturnPart(r.call.name, r.content, tool_call_id=r.call.id)
                pairs.result(r.call, part)
                parts.append(part)
            if m.user_text is not None:
                parts.append(UserPromptPart(m.user_text))
            out.append(ModelRequest(parts))
        elif isinstance(m, AEmpty):
            out.append(ModelRequest([]) if m.side == "request" else ModelResponse([]))
    if system_parts:
        out.append(ModelRequest(system_parts))
    return out


def _openai_user_content(draw, m: AUser) -> Any:
    if not m.media:
        return m.text
    content: list = [{"type": "text", "text": m.text}]
    for kind in m.media:
        if kind == "image":
            content.append({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}})
        elif kind == "audio":
            content.append({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}})
        else:
            content.append({"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}})
    return content


def render_openai(draw, session: Session, pairs: _Pairs) -> list:
    out: list = []
    for m in session.items:
        if isinstance(m, ASystem):
            out.append({"role": draw(st.sampled_from(["system", "developer"])), "content": m.text})
        elif isinstance(m, AUser):
            out.append({"role": "user", "content": _openai_user_content(draw, m)})
        elif isinstance(m, AAssistant):
            message: dict = {"role": "assistant", "content": m.text}
            if m.text is None and not m.calls:
                message["content"] = ""
            if m.thinking is not None and chance(draw, 30):
                message["reasoning_content"] = m.thinking  # an extra key some servers return
            legacy = [c for c in m.calls if c.legacy]
            if legacy:
                c = legacy[0]
                message["function_call"] = {"name": c.name, "arguments": json.dumps(c.args, ensure_ascii=False)}
                pairs.call(c, message)
            elif m.calls:
                message["tool_calls"] = []
                for c in m.calls:
                    if c.custom:
                        call = {"id": c.id, "type": "custom", "custom": {"name": c.name, "input": json.dumps(c.args)}}
                    else:
                        call = {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.args, ensure_ascii=False)}}
                    message["tool_calls"].append(call)
                    pairs.call(c, call)
            out.append(message)
        elif isinstance(m, AResults):
            for r in m.results:
                text = _text_of(r.content)
                if r.call.legacy:
                    message = {"role": "function", "name": r.call.name, "content": text}
                elif chance(draw, 15):
                    message = {"role": "tool", "tool_call_id": r.call.id, "content": [{"type": "text", "text": text}]}
                else:
                    message = {"role": "tool", "tool_call_id": r.call.id, "content": text}
                pairs.result(r.call, message)
                out.append(message)
            if m.user_text is not None:
                out.append({"role": "user", "content": m.user_text})
        elif isinstance(m, AEmpty):
            if m.side == "response":
                out.append({"role": "assistant", "content": None})  # rejected: neither content nor calls
    return out


def render_responses(draw, session: Session, pairs: _Pairs) -> list:
    out: list = []
    seq = itertools.count(1)
    for m in session.items:
        if isinstance(m, ASystem):
            if chance(draw, 50):
                out.append({"role": "system", "content": m.text})
            else:
                out.append({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": m.text}]})
        elif isinstance(m, ACompaction):
            out.append({"type": "compaction", "id": f"cmp_{next(seq)}", "encrypted_content": "enc" + m.summary[:20]})
        elif isinstance(m, AUser):
            if m.media or chance(draw, 40):
                content: list = [{"type": "input_text", "text": m.text}]
                for kind in m.media:
                    if kind == "image":
                        content.append({"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"})
                    else:
                        content.append({"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="})
                out.append({"type": "message", "role": "user", "content": content})
            else:
                out.append({"role": "user", "content": m.text})
        elif isinstance(m, AAssistant):
            items: list = []
            if m.native:
                items.append({"type": "web_search_call", "id": f"ws_{next(seq)}", "status": "completed",
                              "action": {"type": "search", "query": "weather"}})
            if m.text is not None:
                if m.text == "" and chance(draw, 50):
                    items.append({"role": "assistant", "content": ""})
                else:
                    items.append({"type": "message", "id": f"msg_{next(seq)}", "role": "assistant", "status": "completed",
                                  "content": [{"type": "output_text", "text": m.text, "annotations": []}]})
            for c in m.calls:
                if c.custom:
                    item = {"type": "custom_tool_call", "call_id": c.id, "name": c.name, "input": json.dumps(c.args)}
                else:
                    item = {"type": "function_call", "call_id": c.id, "name": c.name, "arguments": json.dumps(c.args, ensure_ascii=False)}
                pairs.call(c, item)
                items.append(item)
            if m.thinking is not None and items:
                items.insert(0, {"type": "reasoning", "id": f"rs_{next(seq)}",
                                 "summary": [{"type": "summary_text", "text": m.thinking}], "encrypted_content": "gAAAAB" + "x" * 20})
            out.extend(items)
        elif isinstance(m, AResults):
            for r in m.results:
                kind = "custom_tool_call_output" if r.call.custom else "function_call_output"
                output: Any = _text_of(r.content)
                if chance(draw, 15):
                    output = [{"type": "input_text", "text": output}]
                item = {"type": kind, "call_id": r.call.id, "output": output}
                pairs.result(r.call, item)
                out.append(item)
            if m.user_text is not None:
                out.append({"role": "user", "content": m.user_text})
    return out


def render_anthropic(draw, session: Session, pairs: _Pairs) -> list:
    out: list = []
    for m in session.items:
        if isinstance(m, AUser):
            if m.media:
                blocks: list = [{"type": "text", "text": m.text}] if m.text else []
                for kind in m.media:
                    if kind == "document":
                        blocks.append({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}})
                    else:
                        blocks.append({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}})
                out.append({"role": "user", "content": blocks})
            else:
                out.append({"role": "user", "content": m.text})
        elif isinstance(m, AAssistant):
            blocks = []
            if m.thinking is not None:
                if chance(draw, 25):
                    blocks.append({"type": "redacted_thinking", "data": "EmwKAhgBEgy" + "z" * 20})
                else:
                    blocks.append({"type": "thinking", "thinking": m.thinking, "signature": "sig" + "s" * 20})
            if m.native:
                sid = f"srvtoolu_{len(out)}"
                blocks.append({"type": "server_tool_use", "id": sid, "name": "web_search", "input": {"query": "x"}})
                blocks.append({"type": "web_search_tool_result", "tool_use_id": sid,
                               "content": [{"type": "web_search_result", "url": "https://example.com", "title": "Example"}]})
            if m.text is not None:
                blocks.append({"type": "text", "text": m.text})
            for c in m.calls:
                block = {"type": "tool_use", "id": c.id, "name": c.name, "input": c.args}
                pairs.call(c, block)
                blocks.append(block)
            if len(blocks) == 1 and blocks[0]["type"] == "text" and chance(draw, 40):
                out.append({"role": "assistant", "content": m.text})
            else:
                out.append({"role": "assistant", "content": blocks})
        elif isinstance(m, AResults):
            blocks = []
            for r in m.results:
                block: dict = {"type": "tool_result", "tool_use_id": r.call.id}
                text = _text_of(r.content)
                if chance(draw, 20):
                    block["content"] = [{"type": "text", "text": text}]
                else:
                    block["content"] = text
                if r.retry != "none":
                    block["is_error"] = True
                pairs.result(r.call, block)
                blocks.append(block)
            if m.user_text is not None:
                blocks.append({"type": "text", "text": m.user_text})
            out.append({"role": "user", "content": blocks})
        elif isinstance(m, AEmpty):
            out.append({"role": "user" if m.side == "request" else "assistant", "content": draw(st.sampled_from([[], ""]))})
    return out


RENDERERS = {
    "pydantic-ai": render_pydantic_ai,
    "openai": render_openai,
    "responses": render_responses,
    "anthropic": render_anthropic,
}


@st.composite
def adversarial(draw, fmt: str, defects: bool = True) -> Adversarial:
    """An adversarial history in ``fmt`` (see the module docstring); valid unless it
    reports defects. With ``defects=False`` it is always valid."""
    session = draw(adversarial_sessions(fmt, defects=defects), label="session")
    pairs = _Pairs()
    messages = RENDERERS[fmt](draw, session, pairs)
    found = list(session.defects)
    if not messages:
        found.append("empty history")
    return Adversarial(fmt, messages, tuple(dict.fromkeys(found)), pairs.pairs(), session.nothing_to_send)


def valid_adversarial(fmt: str) -> st.SearchStrategy[Adversarial]:
    """Only histories that their provider accepts, odd as they are."""
    return adversarial(fmt, defects=False)
