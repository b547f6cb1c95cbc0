"""``compact_history`` in pure Python, counting with tiktoken: the reference to beat.

This module exists for two reasons:

* **differential tests**: it implements ``docs/compaction.md`` a second time, written
  independently of the Rust core, and the property tests require both to return the
  same messages and the same report on random histories;
* **the benchmark** (``tokensieve bench``): it is what a careful Python developer would
  write today to keep an agent's history inside a budget — plain loops, dicts and lists,
  ``tiktoken`` for the counts. It deliberately has **no cache**: every call counts every
  message again, as code without tokensieve does. (The Rust core counts through a
  content cache; the counts are identical either way.)

The public functions mirror tokensieve's: :func:`compact_history`, :func:`compact` (a
:class:`tokensieve.CompactionResult` with the same fields and values) and
:func:`count_history_tokens`. They raise the same exceptions. ``tiktoken`` is imported on
first use, so importing this module (or ``tokensieve``) never needs it.
"""

from __future__ import annotations

import json

import base64
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from tokensieve import _core
from tokensieve.compaction import CompactionResult, Format, StepReport, _extractive_text, _SummaryJob
from tokensieve.config import BudgetConfig, resolve_config
from tokensieve.errors import (
    BudgetExceededError,
    ConfigurationError,
    InputTypeError,
    InvalidMessageError,
    TokensieveError,
)

__all__ = ["compact", "compact_history", "count_history_tokens"]

#: Tokens every message costs besides its parts (3 of framing plus 1 for the role).
MESSAGE_OVERHEAD = 4
#: Tokens charged for an image, audio clip or other binary item (never read).
BINARY_PART_TOKENS = 765
#: The content of a synthesized result answering a call whose result was cut away.
STUB_TEXT = "[tool result elided by tokensieve]"

# Part kinds (docs/compaction.md, section 1). THINKING is kept with its message but cannot
# keep a message alive on its own.
SYSTEM, PROMPT, CALL, RESULT, CONTENT, THINKING = "system", "prompt", "call", "result", "content", "thinking"
# A request's instructions: sent only with the last request, and, like thinking, never
# enough to keep a message.
INSTRUCTIONS = "instructions"
# Message sides.
REQUEST, RESPONSE = "request", "response"

FORMATS: dict[str, Format] = {
    "pydantic-ai": "pydantic-ai",
    "pydantic_ai": "pydantic-ai",
    "openai": "openai",
    "chat": "openai",
    "responses": "responses",
    "openai-responses": "responses",
    "anthropic": "anthropic",
}
# Where a result must stand relative to its call, per format (docs/compaction.md, section 3).
PAIRING = {"pydantic-ai": "request-run", "anthropic": "tool-block", "openai": "tool-block", "responses": "anywhere"}
# Where a synthesized result answering a call goes, per format.
STUBS = {
    "pydantic-ai": "next-request",
    "anthropic": "next-request",
    "openai": "after-tool-block",
    "responses": "after-call",
}
# Formats whose first non-system message must be a request.
USER_FIRST = {"pydantic-ai", "anthropic"}

# Responses item types that are tool calls the caller answers (a missing call_id is an error);
# other `*_call` items are calls only when they carry a call_id.
ANSWERED_CALL_TYPES = {
    "function_call",
    "custom_tool_call",
    "computer_call",
    "local_shell_call",
    "shell_call",
    "apply_patch_call",
}
# Content block types that tell the format of a history (roles do not: all formats share them).
# Detection and reading use these same sets: a block that tells one format is an error in a
# history of another (Responses messages share ``refusal`` and ``input_audio`` with chat).
ANTHROPIC_BLOCKS = {
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "image",
    "document",
    "server_tool_use",
    "search_result",
}
OPENAI_BLOCKS = {"image_url", "input_audio", "refusal"}
RESPONSES_BLOCKS = {"input_text", "output_text", "input_image", "input_file"}
# How deep lists of content blocks may nest inside tool results (docs/compaction.md).
MAX_BLOCK_DEPTH = 32

# Media items of pydantic-ai, by their ``kind``: counted as BINARY_PART_TOKENS each.
BINARY_KINDS = {"binary", "image-url", "audio-url", "video-url", "document-url", "uploaded-file"}
# pydantic-ai framework bookkeeping: kept with its message, never sent, so not counted.
BOOKKEEPING_KINDS = {"tool-availability-delta", "capability-load-delta", "model-settings-delta", "instruction-baseline"}

# The pre-tokenizer patterns of the two encodings, as tiktoken_ext.openai_public defines
# them (copied: its constructors would download the vocabulary).
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
PATTERNS = {"o200k_base": _O200K_PATTERN, "cl100k_base": _CL100K_PATTERN}

_encodings: dict[str, Any] = {}  # name -> tiktoken.Encoding, built once per process


def _tiktoken_encoding(name: str) -> Any:
    """The ``tiktoken.Encoding`` called ``name``, built offline from tokensieve's copy of
    the published vocabulary file."""
    if name in _encodings:
        return _encodings[name]
    try:
        import tiktoken
    except ImportError as e:
        raise ImportError(
            "tokensieve.baseline counts tokens with tiktoken, which is not installed: pip install tiktoken"
        ) from e
    data = _core.tiktoken_bpe_file(name)  # raises UnknownEncodingError for other names
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    encoding = tiktoken.Encoding(name=name, pat_str=PATTERNS[name], mergeable_ranks=ranks, special_tokens={})
    _encodings[name] = encoding
    return encoding


def _counter(encoding: Any) -> Callable[[str], int]:
    """A function counting the tokens of a text with ``encoding`` (a name, an
    ``Encoding`` object or None for o200k_base)."""
    if encoding is None:
        name = "o200k_base"
    elif isinstance(encoding, str):
        name = encoding
    elif isinstance(encoding, _core.Encoding):
        name = encoding.name
    else:
        raise InputTypeError(f"encoding: expected str, got {type(encoding).__name__}")
    enc = _tiktoken_encoding(name)

    def count(text: str) -> int:
        # encode_ordinary: special-token text is plain text. A lone surrogate is
        # replaced by U+FFFD inside tiktoken, as tokensieve does.
        return len(enc.encode_ordinary(text)) if text else 0

    return count


# ---- JSON text (docs/compaction.md, "JSON text") ------------------------------------------


def _json_string(s: str) -> str:
    """A JSON string literal as ``json.dumps(s, ensure_ascii=False)`` writes it."""
    return json.dumps(s, ensure_ascii=False)


class _CircularReference(Exception):
    """A container that holds itself (directly or through others): it has no JSON text."""


_dict_items = dict.items
_list_iter = list.__iter__
_tuple_iter = tuple.__iter__


def json_text(value: Any, enclosing: tuple[int, ...] = ()) -> tuple[str, int]:
    """The text a value is counted by, and the binary tokens (images...) found in it.

    Iterative (an explicit stack of open containers), so nesting costs memory, not
    recursion; a container met again on its own path raises ``_CircularReference``, as
    ``json.dumps`` refuses cycles. ``enclosing``: the ids of the objects the value was read
    from (its message, its pydantic-ai part), on the path too: an object among them met
    inside the value is a cycle, even one ``str()`` would render (its repr elides it). Dicts, lists and tuples are read in place (their own
    ``items``/``__iter__`` overrides are not called), as the Rust core reads them.
    """
    if isinstance(value, str):
        return value, 0
    binary = 0
    out: list[str] = []
    emit = out.append
    # Each open container: [iterator, closing bracket, id, is a dict, items so far].
    stack: list[list[Any]] = []
    on_path: set[int] = set()
    top = True
    while True:
        # Write `value` (a leaf), or open it (a container); wrappers render as their content.
        seen_wrappers: set[int] = set()
        while True:
            if isinstance(value, str):
                emit(value if top else _json_string(value))
            elif value is None:
                if not top:
                    emit("null")
            elif isinstance(value, bool):
                emit("true" if value else "false")
            elif isinstance(value, int):
                # As a 64-bit integer where it fits (an IntEnum is its number), else str().
                emit(int.__repr__(value) if -(2**63) <= value < 2**63 else str(value))
            elif isinstance(value, float):
                emit(str(value))
            elif isinstance(value, (dict, list, tuple)):
                if id(value) in on_path:
                    raise _CircularReference
                on_path.add(id(value))
                if isinstance(value, dict):
                    emit("{")
                    stack.append([iter(_dict_items(value)), "}", id(value), True, 0])
                else:
                    emit("[")
                    items = _list_iter(value) if isinstance(value, list) else _tuple_iter(value)
                    stack.append([items, "]", id(value), False, 0])
            elif isinstance(value, (bytes, bytearray)):
                binary += BINARY_PART_TOKENS
                if not top:
                    emit("null")
            else:
                # Objects: media items by their kind, text wrappers by their content, the rest by str().
                try:
                    kind = value.kind
                except Exception:
                    kind = None
                if not isinstance(kind, str):
                    kind = None
                if kind in BINARY_KINDS:
                    binary += BINARY_PART_TOKENS
                    if not top:
                        emit("null")
                elif kind == "cache-point":
                    if not top:
                        emit("null")
                elif kind in ("text-content", "structured-content"):
                    if id(value) in seen_wrappers:
                        raise _CircularReference
                    seen_wrappers.add(id(value))
                    value = value.content
                    continue
                else:
                    if id(value) in enclosing:
                        raise _CircularReference
                    text = str(value)
                    emit(text if top else _json_string(text))
            break
        top = False
        # The next item of the innermost open container, closing those that are done.
        while stack:
            frame = stack[-1]
            item: Any = next(frame[0], _MISSING)
            if item is _MISSING:
                emit(frame[1])
                on_path.discard(frame[2])
                stack.pop()
                continue
            if frame[4]:
                emit(",")
            frame[4] += 1
            if frame[3]:
                key, value = item
                emit(_json_string(key if isinstance(key, str) else str(key)) + ":")
            else:
                value = item
            break
        else:
            return "".join(out), binary


# ---- Reading a history -------------------------------------------------------------------


@dataclass
class Part:
    kind: str  # SYSTEM, PROMPT, CALL, RESULT, CONTENT, THINKING or INSTRUCTIONS
    call_id: str | None = None
    slot: int | None = None  # index in the message's list (parts, content, tool_calls) it came from
    tokens: int = 0
    stub_tokens: int = 0  # for a call: the tokens of the stub result that would answer it
    synthesized: bool = False  # for a result: its text is STUB_TEXT (tokensieve made it)


@dataclass
class Message:
    side: str  # REQUEST or RESPONSE
    parts: list[Part] = field(default_factory=list)
    bonded_to_next: bool = False  # a Responses reasoning item: kept or dropped with the next item

    def tokens(self, with_instructions: bool) -> int:
        return MESSAGE_OVERHEAD + sum(
            part.tokens for part in self.parts if with_instructions or part.kind != INSTRUCTIONS
        )


def tokens_per_message(history: list[Message]) -> list[int]:
    """Each message's tokens as the history is sent: instructions on its last request only."""
    requests = [i for i, message in enumerate(history) if message.side == REQUEST]
    last_request = requests[-1] if requests else None
    return [message.tokens(i == last_request) for i, message in enumerate(history)]


_MISSING = object()


def _attr(obj: Any, name: str) -> Any:
    """``getattr(obj, name)``, or _MISSING if that raises (anything)."""
    try:
        return getattr(obj, name)
    except Exception:
        return _MISSING


def _type_name(obj: Any) -> str:
    return type(obj).__name__


def _block_format(kind: str) -> Format | None:
    """The format a content block's ``type`` belongs to, when only one format has it."""
    if kind in ANTHROPIC_BLOCKS or kind.endswith("_tool_result"):
        return "anthropic"
    if kind in OPENAI_BLOCKS:
        return "openai"
    if kind in RESPONSES_BLOCKS:
        return "responses"
    return None


def _block_allowed(fmt: str, kind: str) -> bool:
    """Whether a block of type ``kind`` may appear in a history of ``fmt``."""
    other = _block_format(kind)
    if other is None or other == fmt:
        return True
    return other == "openai" and fmt == "responses" and kind in ("refusal", "input_audio")


# Dicts, lists and tuples are read as the Rust core reads them: in place, without calling
# a subclass's own `get`, `__contains__` or `__iter__`.
_get = dict.get
_has = dict.__contains__


def _each(items: Any) -> Any:
    if isinstance(items, list):
        return _list_iter(items)
    if isinstance(items, tuple):
        return _tuple_iter(items)
    return iter(items)


def _detect_one(message: dict) -> Format | None:
    if _has(message, "type") or _has(message, "call_id"):
        return "responses"
    if _get(message, "tool_calls") is not None or _get(message, "function_call") is not None:
        return "openai"
    role = _get(message, "role")
    if isinstance(role, str) and str.__str__(role) in ("tool", "function"):
        return "openai"
    content = _get(message, "content")
    if isinstance(content, list):
        for block in _list_iter(content):
            block_type = _get(block, "type") if isinstance(block, dict) else None
            if isinstance(block_type, str):
                fmt = _block_format(block_type)
                if fmt is not None:
                    return fmt
    return None


def detect_format(messages: list[Any]) -> Format:
    """The format of a history, from the first message that tells. The roles system,
    developer, user and assistant do not tell: every format has them."""
    for index, message in enumerate(messages):
        if isinstance(message, dict):
            try:
                fmt = _detect_one(message)
            except (TokensieveError, MemoryError):
                raise
            except Exception as exc:
                raise _wrapped(exc, index, "detecting the format") from exc
            if fmt is not None:
                return fmt
            continue
        try:
            is_pydantic_ai = hasattr(message, "parts") and hasattr(message, "kind")
        except Exception:
            is_pydantic_ai = False
        if is_pydantic_ai:
            return "pydantic-ai"
        raise InvalidMessageError(index, f"expected a dict or a pydantic-ai ModelMessage, got {_type_name(message)}")
    # Plain chat messages only: OpenAI and Anthropic read them alike.
    return "openai"


def _field(at: Any) -> str:
    """A field as errors name it: ``key``, or ``list[slot].key`` from ``(list, slot, key)``."""
    if isinstance(at, str):
        return at
    name, slot, key = at
    return f"{name}[{slot}].{key}" if key else f"{name}[{slot}]"


def _wrapped(exc: Exception, index: int, at: Any) -> InvalidMessageError:
    """An error raised by the caller's objects while reading message ``index``."""
    try:
        text = str(exc)
    except Exception:  # an exception whose own __str__ fails
        text = ""
    reason = f"{_field(at)}: {type(exc).__name__}" + (f": {text}" if text else "")
    return InvalidMessageError(index, reason)


class Reader:
    """Turns the caller's messages into a list of :class:`Message`, counting as it goes."""

    def __init__(self, count: Callable[[str], int], stubs: bool = False, fmt: str = "openai") -> None:
        self.count = count
        self.stubs = stubs  # count what stub results would cost (only when they may be made)
        self.fmt = fmt
        self.messages: list[Message] = []
        self.index = 0
        self.at: Any = ""  # the field being read, named by an error raised meanwhile
        self.blocks: list[int] = []  # ids of the lists of blocks being read, outermost first
        self.legacy_call: str | None = None  # the function_call id of the previous OpenAI message
        self.enclosing: tuple[int, ...] = ()  # ids of the message and part being read (see json_text)

    # -- helpers --

    def invalid(self, reason: str) -> InvalidMessageError:
        return InvalidMessageError(self.index, reason)

    def begin(self, side: str) -> Message:
        message = Message(side)
        self.messages.append(message)
        return message

    def add(self, kind: str, slot: int | None = None, call_id: str | None = None) -> Part:
        part = Part(kind, call_id, slot)
        self.messages[-1].parts.append(part)
        if call_id is not None:
            part.tokens += self.count(call_id)
            if kind == CALL and self.stubs:
                part.stub_tokens += self.count(call_id) + self.count(STUB_TEXT)
        return part

    def add_value(self, part: Part, value: Any, at: Any) -> None:
        self.at = at
        if part.kind == RESULT and isinstance(value, str) and str.__str__(value) == STUB_TEXT:
            part.synthesized = True
        try:
            text, binary = json_text(value, self.enclosing)
        except _CircularReference:
            raise self.invalid(f"{_field(at)}: circular reference") from None
        part.tokens += binary + self.count(text)

    def call_id(self, value: Any, what: str, at: Any) -> str:
        self.at = at
        if value is None or value is _MISSING:
            raise self.invalid(f"{what} without an id")
        call_id = str.__str__(value) if isinstance(value, str) else str(value)
        if not call_id:
            raise self.invalid(f"{what} with an empty id")
        return call_id

    def as_dict(self, message: Any) -> dict:
        if not isinstance(message, dict):
            raise self.invalid(f"expected a dict, got {_type_name(message)}")
        return message

    def role(self, message: dict) -> str:
        self.at = "role"
        role = _get(message, "role", _MISSING)
        if role is _MISSING:
            raise self.invalid("message without a role")
        if not isinstance(role, str):
            raise self.invalid(f"role must be a string, got {_type_name(role)}")
        return str(role)

    def type_of(self, d: dict, at: Any) -> str:
        self.at = at
        kind = _get(d, "type", _MISSING)
        return "" if kind is _MISSING or kind is None else str(kind)

    def foreign(self, what: str, other: str) -> InvalidMessageError:
        return self.invalid(
            f"{what} belongs to the {other} format, not to this {self.fmt} history (formats cannot be mixed)"
        )

    def check_keys(self, d: dict) -> None:
        """A dict message with the keys of another format (a Responses item's ``type`` or
        ``call_id``, OpenAI chat's ``tool_calls`` or ``function_call``)."""
        if self.fmt != "responses":
            for key in ("type", "call_id"):
                if _has(d, key):
                    raise self.foreign(f"a dict with {key!r} (a Responses item)", "responses")
        if self.fmt != "openai":
            for key in ("tool_calls", "function_call"):
                if _get(d, key) is not None:
                    raise self.foreign(f"a message with {key!r}", "openai")

    def check_block(self, kind: str, at: Any) -> None:
        if not _block_allowed(self.fmt, kind):
            raise self.foreign(f"{_field(at)}: a {kind!r} block", _block_format(kind) or "openai")

    def read(self, messages: list[Any], fmt: str) -> list[Message]:
        self.fmt = fmt
        for index, message in enumerate(messages):
            self.index = index
            self.at = ""
            self.blocks.clear()
            self.enclosing = (id(message),)
            try:
                if fmt == "pydantic-ai":
                    self.pydantic_ai(message)
                elif fmt == "openai":
                    self.openai(message)
                elif fmt == "responses":
                    self.responses(message)
                else:
                    self.anthropic(message)
            except (TokensieveError, MemoryError):
                raise
            except Exception as exc:
                raise _wrapped(exc, index, self.at) from exc
        if fmt == "responses":
            # A reasoning item belongs to the response item that follows it, if any.
            for i, message in enumerate(self.messages):
                if message.bonded_to_next:
                    following = self.messages[i + 1] if i + 1 < len(self.messages) else None
                    message.bonded_to_next = following is not None and following.side == RESPONSE
        return self.messages

    # -- pydantic-ai --

    def pydantic_ai(self, message: Any) -> None:
        kind = _attr(message, "kind")
        if kind is _MISSING:
            raise self.invalid(f"expected a pydantic-ai ModelMessage, got {_type_name(message)}")
        kind = str(kind)
        if kind == "request":
            side = REQUEST
        elif kind == "response":
            side = RESPONSE
        else:
            raise self.invalid(f"unknown message kind {kind!r}")
        self.begin(side)
        self.at = "parts"
        for slot, part in enumerate(_each(message.parts)):
            self.at = ("parts", slot, "")
            self.enclosing = (id(message), id(part))
            self.pydantic_ai_part(part, slot, side)
        self.enclosing = (id(message),)
        # Counted only while this is the last request of the history.
        if side == REQUEST:
            self.at = "instructions"
            instructions = _attr(message, "instructions")
            if instructions is not _MISSING and instructions is not None:
                self.add_value(self.add(INSTRUCTIONS), instructions, "instructions")

    def pydantic_ai_part(self, part: Any, slot: int, side: str) -> None:
        self.at = ("parts", slot, "part_kind")
        part_kind = _attr(part, "part_kind")
        part_kind = "" if part_kind is _MISSING else str(part_kind)
        tool_name = _attr(part, "tool_name")

        def add_content(p: Part) -> None:
            content = _attr(part, "content")
            if content is not _MISSING:
                self.add_value(p, content, ("parts", slot, "content"))

        if part_kind == "system-prompt" or (part_kind == "compaction" and side == REQUEST):
            add_content(self.add(SYSTEM, slot))
        elif part_kind == "user-prompt":
            # A list prompt counts item by item (text as text, media as binary), as chat
            # formats send it.
            p = self.add(PROMPT, slot)
            self.at = ("parts", slot, "content")
            content = part.content
            if isinstance(content, (list, tuple)):
                for item in _each(content):
                    self.add_value(p, item, ("parts", slot, "content"))
            else:
                self.add_value(p, content, ("parts", slot, "content"))
        elif part_kind == "thinking" and side == RESPONSE:
            add_content(self.add(THINKING, slot))
        elif part_kind == "tool-return" or (
            part_kind == "retry-prompt" and tool_name is not _MISSING and tool_name is not None
        ):
            call_id = self.call_id(_attr(part, "tool_call_id"), "tool return", ("parts", slot, "tool_call_id"))
            p = self.add(RESULT, slot, call_id)
            if tool_name is not _MISSING:
                self.add_value(p, tool_name, ("parts", slot, "tool_name"))
            add_content(p)
        elif part_kind == "tool-call" and side == RESPONSE:
            p = self.add(CALL, slot, self.call_id(_attr(part, "tool_call_id"), "tool call", ("parts", slot, "tool_call_id")))
            if tool_name is not _MISSING:
                if self.stubs:
                    self.at = ("parts", slot, "tool_name")
                    p.stub_tokens += self.count(self.render(tool_name, ("parts", slot, "tool_name")))
                self.add_value(p, tool_name, ("parts", slot, "tool_name"))
            args = _attr(part, "args")
            if args is not _MISSING:
                self.add_value(p, args, ("parts", slot, "args"))
        elif part_kind == "builtin-tool-call":
            p = self.add(CONTENT, slot)
            if tool_name is not _MISSING:
                self.add_value(p, tool_name, ("parts", slot, "tool_name"))
            args = _attr(part, "args")
            if args is not _MISSING:
                self.add_value(p, args, ("parts", slot, "args"))
        elif part_kind == "builtin-tool-return":
            p = self.add(CONTENT, slot)
            if tool_name is not _MISSING:
                self.add_value(p, tool_name, ("parts", slot, "tool_name"))
            add_content(p)
        elif part_kind == "file":
            self.add(CONTENT, slot).tokens += BINARY_PART_TOKENS
        elif part_kind == "speech":
            p = self.add(CONTENT, slot)
            transcript = _attr(part, "transcript")
            if transcript is not _MISSING:
                self.add_value(p, transcript, ("parts", slot, "transcript"))
        elif part_kind in BOOKKEEPING_KINDS:
            self.add(CONTENT, slot)
        else:
            # text, thinking, retry feedback, instruction deltas, unknown kinds: their content.
            add_content(self.add(CONTENT, slot))

    def render(self, value: Any, at: Any) -> str:
        """The JSON text of ``value`` (a cycle is an error naming ``at``)."""
        self.at = at
        try:
            return json_text(value, self.enclosing)[0]
        except _CircularReference:
            raise self.invalid(f"{_field(at)}: circular reference") from None

    # -- OpenAI chat completions --

    def openai(self, message: Any) -> None:
        d = self.as_dict(message)
        self.check_keys(d)
        role = self.role(d)
        self.at = "content"
        content = _get(d, "content")
        legacy_before, self.legacy_call = self.legacy_call, None
        if role in ("system", "developer"):
            self.begin(REQUEST)
            p = self.add(SYSTEM)
            if content is not None:
                self.openai_content(p, content, "content")
        elif role == "user":
            self.begin(REQUEST)
            p = self.add(PROMPT)
            if content is not None:
                self.openai_content(p, content, "content")
            name = _get(d, "name", _MISSING)
            if name is not _MISSING:
                self.add_value(p, name, "name")
        elif role == "assistant":
            self.begin(RESPONSE)
            self.at = "refusal"
            refusal = _get(d, "refusal")
            self.at = "tool_calls"
            tool_calls = _get(d, "tool_calls")
            function_call = _get(d, "function_call")
            # An empty string is no text beside tool calls (the message goes with its calls),
            # but it is the whole of a plain assistant turn, which OpenAI accepts: kept.
            self.at = "content"
            if isinstance(content, str):
                has_text = len(content) > 0 or (tool_calls is None and function_call is None)
            else:
                has_text = content is not None
            if has_text or refusal is not None:
                p = self.add(CONTENT)
                if content is not None:
                    self.openai_content(p, content, "content")
                if refusal is not None:
                    self.add_value(p, refusal, "refusal")
            if tool_calls is not None:
                self.at = "tool_calls"
                if not isinstance(tool_calls, (list, tuple)):
                    try:
                        iter(tool_calls)
                    except TypeError as exc:
                        raise self.invalid("tool_calls: expected a list of tool calls") from exc
                for slot, call in enumerate(_each(tool_calls)):
                    self.at = ("tool_calls", slot, "")
                    if not isinstance(call, dict):
                        raise self.invalid(f"tool_calls[{slot}] must be a dict")
                    call_id = self.call_id(_get(call, "id"), f"tool_calls[{slot}]: tool call", ("tool_calls", slot, "id"))
                    p = self.add(CALL, slot, call_id)
                    self.at = ("tool_calls", slot, "function")
                    body = _get(call, "function", _MISSING)
                    prefix = "function"
                    if body is _MISSING:
                        body, prefix = _get(call, "custom"), "custom"
                    if isinstance(body, dict):
                        for key in ("name", "arguments", "input"):
                            at = ("tool_calls", slot, f"{prefix}.{key}")
                            self.at = at
                            value = _get(body, key, _MISSING)
                            if value is not _MISSING:
                                self.add_value(p, value, at)
            if function_call is not None:
                # A legacy call has no id: the `function` message right after answers it.
                call_id = f"\0function_call@{self.index}"
                p = self.add(CALL)
                p.call_id = call_id
                fields = function_call if isinstance(function_call, dict) else {}
                self.at = "function_call"
                name = _get(fields, "name", _MISSING)
                if self.stubs:
                    # Its stub is a `function` message: the function's name and STUB_TEXT.
                    p.stub_tokens += self.count(STUB_TEXT)
                    if name is not _MISSING:
                        p.stub_tokens += self.count(self.render(name, "function_call.name"))
                if name is not _MISSING:
                    self.add_value(p, name, "function_call.name")
                self.at = "function_call"
                arguments = _get(fields, "arguments", _MISSING)
                if arguments is not _MISSING:
                    self.add_value(p, arguments, "function_call.arguments")
                self.legacy_call = call_id
        elif role == "tool":
            self.begin(REQUEST)
            p = self.add(RESULT, None, self.call_id(_get(d, "tool_call_id"), "tool message", "tool_call_id"))
            if content is not None:
                self.openai_content(p, content, "content")
        elif role == "function":
            self.begin(REQUEST)
            p = self.add(RESULT)
            p.call_id = legacy_before if legacy_before is not None else f"\0function@{self.index}"
            name = _get(d, "name", _MISSING)
            if name is not _MISSING:
                self.add_value(p, name, "name")
            if content is not None:
                self.openai_content(p, content, "content")
        else:
            raise self.invalid(f"unknown role {role!r}")

    def openai_content(self, p: Part, content: Any, at: str) -> None:
        """A chat-format ``content``: a string, or a list of typed items, none of which
        may tell another format."""
        if isinstance(content, list):
            for slot, item in enumerate(_list_iter(content)):
                item_at = (at, slot, "")
                if isinstance(item, dict):
                    self.check_block(self.type_of(item, item_at), item_at)
                self.block(p, item, item_at)
        else:
            self.add_value(p, content, at)

    def block(self, p: Part, item: Any, at: Any) -> None:
        """A typed content item or block: its text, or the fixed price of media."""
        if not isinstance(item, dict):
            self.add_value(p, item, at)
            return
        kind = self.type_of(item, at)
        if kind in ("text", "input_text", "output_text", "summary_text"):
            keys: tuple[str, ...] = ("text",)
        elif kind in ("refusal", "thinking"):
            keys = (kind,)
        elif kind in ("tool_use", "server_tool_use"):
            keys = ("name", "id", "input")
        elif kind == "tool_result":
            content = _get(item, "content", _MISSING)
            if content is not _MISSING:
                self.nested_content(p, content, _with_key(at, "content"))
            return
        elif kind.endswith("_tool_result"):
            keys = ("content",)
        else:
            p.tokens += BINARY_PART_TOKENS
            return
        for key in keys:
            key_at = _with_key(at, key)
            self.at = key_at
            value = _get(item, key, _MISSING)
            if value is not _MISSING:
                self.add_value(p, value, key_at)

    def nested_content(self, p: Part, content: Any, at: Any) -> None:
        """Content that is a string or a list of blocks (tool results, summaries)."""
        if isinstance(content, list) and all(isinstance(item, dict) for item in _list_iter(content)):
            if id(content) in self.blocks:
                raise self.invalid(f"{_field(at)}: circular reference")
            if len(self.blocks) >= MAX_BLOCK_DEPTH:
                raise self.invalid(f"{_field(at)}: content blocks nested more than {MAX_BLOCK_DEPTH} deep")
            self.blocks.append(id(content))
            for item in _list_iter(content):
                self.block(p, item, at)
            self.blocks.pop()
        else:
            self.add_value(p, content, at)

    # -- OpenAI Responses --

    def responses(self, message: Any) -> None:
        d = self.as_dict(message)
        kind = self.type_of(d, "type")
        if kind in ("", "message"):
            self.check_keys(d)
            role = self.role(d)
            if role == "user":
                side, part_kind = REQUEST, PROMPT
            elif role in ("system", "developer"):
                side, part_kind = REQUEST, SYSTEM
            elif role == "assistant":
                side, part_kind = RESPONSE, CONTENT
            else:
                raise self.invalid(f"unknown role {role!r}")
            self.begin(side)
            p = self.add(part_kind)
            self.at = "content"
            content = _get(d, "content")
            if content is not None:
                self.openai_content(p, content, "content")
        elif kind.endswith("_call_output"):
            self.begin(REQUEST)
            p = self.add(RESULT, None, self.call_id(_get(d, "call_id"), f"{kind} item", "call_id"))
            self.at = "output"
            output = _get(d, "output", _MISSING)
            if output is not _MISSING:
                self.nested_content(p, output, "output")
        elif kind.endswith("_call") and (kind in ANSWERED_CALL_TYPES or _has(d, "call_id")):
            self.begin(RESPONSE)
            p = self.add(CALL, None, self.call_id(_get(d, "call_id"), f"{kind} item", "call_id"))
            for key in ("name", "arguments", "input", "action"):
                self.at = key
                value = _get(d, key, _MISSING)
                if value is not _MISSING:
                    self.add_value(p, value, key)
        elif kind == "reasoning":
            self.begin(RESPONSE).bonded_to_next = True
            p = self.add(CONTENT)
            self.at = "summary"
            summary = _get(d, "summary", _MISSING)
            if summary is not _MISSING:
                self.nested_content(p, summary, "summary")
        elif kind == "compaction":
            self.begin(REQUEST)
            p = self.add(SYSTEM)
            self.at = "summary"
            summary = _get(d, "summary", _MISSING)
            if summary is not _MISSING:
                self.add_value(p, summary, "summary")
        else:
            self.begin(RESPONSE)
            p = self.add(CONTENT)
            self.at = "content"
            content = _get(d, "content", _MISSING)
            if content is not _MISSING:
                self.add_value(p, content, "content")

    # -- Anthropic Messages --

    def anthropic(self, message: Any) -> None:
        d = self.as_dict(message)
        self.check_keys(d)
        role = self.role(d)
        if role == "user":
            side = REQUEST
        elif role == "assistant":
            side = RESPONSE
        else:
            raise self.invalid(
                f"unknown role {role!r} (Anthropic messages are 'user' or 'assistant'; "
                "the system prompt is a separate parameter)"
            )
        self.begin(side)
        self.at = "content"
        content = _get(d, "content")
        if content is None:
            return
        plain = PROMPT if side == REQUEST else CONTENT
        if not isinstance(content, list):
            self.add_value(self.add(plain), content, "content")
            return
        for slot, block in enumerate(_list_iter(content)):
            if not isinstance(block, dict):
                self.add_value(self.add(plain, slot), block, ("content", slot, ""))
                continue
            kind = self.type_of(block, ("content", slot, "type"))
            self.check_block(kind, ("content", slot, ""))
            if kind == "tool_use" and side == RESPONSE:
                p = self.add(CALL, slot, self.call_id(_get(block, "id"), "tool_use block", ("content", slot, "id")))
                for key in ("name", "input"):
                    self.at = ("content", slot, key)
                    value = _get(block, key, _MISSING)
                    if value is not _MISSING:
                        self.add_value(p, value, ("content", slot, key))
            elif kind == "tool_result" and side == REQUEST:
                call_id = self.call_id(_get(block, "tool_use_id"), "tool_result block", ("content", slot, "tool_use_id"))
                p = self.add(RESULT, slot, call_id)
                self.at = ("content", slot, "content")
                result = _get(block, "content", _MISSING)
                if result is not _MISSING:
                    self.nested_content(p, result, ("content", slot, "content"))
            elif kind in ("thinking", "redacted_thinking") and side == RESPONSE:
                self.block(self.add(THINKING, slot), block, ("content", slot, ""))
            else:
                self.block(self.add(plain, slot), block, ("content", slot, ""))


def _with_key(at: Any, key: str) -> Any:
    """``content[2]`` with its key (``content[2].text``); other fields are kept as they are."""
    if isinstance(at, tuple) and not at[2]:
        return (at[0], at[1], key)
    return at



# ---- Compaction --------------------------------------------------------------------------


def _only_stub_results(message: Message) -> bool:
    """A message made only of results tokensieve synthesized."""
    return bool(message.parts) and all(part.kind == RESULT and part.synthesized for part in message.parts)


def _window_plan(history: list[Message], keep_pending: bool = False) -> tuple[list[int], list[int], list[int]]:
    """The messages with a system part, the messages with a prompt and the start of each
    exchange (section 2); with ``keep_pending``, also the pending request's start."""
    system = [i for i, m in enumerate(history) if any(p.kind == SYSTEM for p in m.parts)]
    with_prompt = [i for i, m in enumerate(history) if any(p.kind == PROMPT for p in m.parts)]
    n = len(history)
    starts = [0]
    i = 1
    while i < n:
        if history[i].side == REQUEST and history[i - 1].side == RESPONSE:
            end = next((j for j in range(i, n) if history[j].side == RESPONSE), n)
            # A run of synthesized results answers the response before it: no new exchange.
            if not all(_only_stub_results(history[j]) for j in range(i, end)):
                starts.append(i)
            i = end
        else:
            i += 1
    if not keep_pending and (n == 0 or all(history[j].side == REQUEST for j in range(starts[-1], n))):
        starts.pop()  # the pending request
    return system, with_prompt, starts


def _estimated_window(
    history: list[Message], system: list[int], with_prompt: list[int], starts: list[int], config: BudgetConfig, most: int
) -> int:
    """The search's seed: the most exchanges whose window, before repair (messages from
    its first exchange on, plus the system messages and the current task before it), fits
    the target; 1 if none does."""
    tokens = tokens_per_message(history)
    task = with_prompt[-1] if with_prompt else None
    pinned = set(system) | ({task} if task is not None else set())
    pinned_before = sum(tokens[i] for i in pinned)
    suffix = 0
    at = len(history)
    best = 1
    for k in range(1, most + 1):
        first = starts[-k]
        while at > first:  # the window's start walks back; what it swallows leaves the pinned sum
            at -= 1
            suffix += tokens[at]
            if at in pinned:
                pinned_before -= tokens[at]
        if suffix + pinned_before + config.reserved_tokens > config.target_input_tokens:
            break
        best = k
    return best


def _search_window(seed: int, most: int, try_k: Callable[[int], tuple[Any, bool]]) -> Any:
    """The window of the most exchanges (at most ``most``) that fits, or of one: from the
    seed, gallop up while windows fit (down while they do not), then bisect the bracket."""
    tried: dict[int, tuple[Any, bool]] = {}

    def fits(k: int) -> bool:
        if k not in tried:
            tried[k] = try_k(k)
        return tried[k][1]

    seed = max(1, min(seed, most))
    if fits(seed):
        lo, hi, step = seed, most + 1, 1
        while lo < most:
            nxt = min(lo + step, most)
            if fits(nxt):
                lo, step = nxt, step * 2
            else:
                hi = nxt
                break
    else:
        lo, hi, step = 1, seed, 1
        while hi > 1:
            nxt = max(hi - step, 1)
            if fits(nxt):
                lo = nxt
                break
            hi, step = nxt, step * 2
        if hi == 1:
            lo, hi = 1, 2
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    fits(lo)
    return tried[lo][0]


class Repair:
    """Section 3: remove parts and messages from a selection until the pairing holds."""

    def __init__(
        self, history: list[Message], fmt: str, stub: bool, selection: list[bool], trim: Sequence[int] = ()
    ) -> None:
        self.history = history
        self.pairing = PAIRING[fmt]
        self.stubs = STUBS[fmt]
        self.user_first = fmt in USER_FIRST
        # pydantic-ai refuses a history that does not end with a request: keep it, emptied.
        self.keep_last_request = fmt == "pydantic-ai"
        self.stub = stub
        self.whole = not trim and all(selection)
        self.alive = list(selection)
        self.part_alive = [[True] * len(m.parts) for m in history]
        self.stubbed = [[False] * len(m.parts) for m in history]
        self.orphans_removed = 0
        self.calls_repaired = 0
        self.repaired: list[tuple[int, int]] = []  # results removed, calls removed or stubbed
        for i in trim:  # pinned for their system parts only
            for j, part in enumerate(history[i].parts):
                if part.kind not in (SYSTEM, INSTRUCTIONS):
                    self.part_alive[i][j] = False
        while self.one_pass():
            pass

    def alive_kinds(self, i: int) -> list[str]:
        return [p.kind for p, alive in zip(self.history[i].parts, self.part_alive[i]) if alive]

    def only_results(self, i: int) -> bool:
        """A request whose alive parts are all tool results (part of a tool block)."""
        return self.history[i].side == REQUEST and all(kind == RESULT for kind in self.alive_kinds(i))

    def open_call(self, i: int, call_id: str | None, paired: set) -> tuple[int, int] | None:
        """The first alive call of message i with this id, not yet paired nor stubbed."""
        for j, part in enumerate(self.history[i].parts):
            if (
                part.kind == CALL
                and part.call_id == call_id
                and self.part_alive[i][j]
                and (i, j) not in paired
                and not self.stubbed[i][j]
            ):
                return (i, j)
        return None

    def one_pass(self) -> bool:
        history = self.history
        order = [i for i in range(len(history)) if self.alive[i]]
        changed = False

        # 1. Pair each result with a call; a result without one is an orphan.
        paired: set[tuple[int, int]] = set()
        calls_so_far: dict[str | None, list[tuple[int, int]]] = {}  # for "anywhere": id -> calls, oldest first
        last_response = None  # for "request-run": the nearest alive response so far
        for pos, i in enumerate(order):
            for j, part in enumerate(history[i].parts):
                if part.kind != RESULT or not self.part_alive[i][j]:
                    continue
                call = None
                if self.pairing == "request-run":
                    if last_response is not None:
                        call = self.open_call(last_response, part.call_id, paired)
                elif self.pairing == "tool-block":
                    owner = None
                    for before in range(pos - 1, -1, -1):
                        if not self.only_results(order[before]):
                            owner = order[before]
                            break
                    if owner is not None and history[owner].side == RESPONSE:
                        call = self.open_call(owner, part.call_id, paired)
                else:  # anywhere: the nearest earlier call still open
                    candidates = calls_so_far.get(part.call_id)
                    if candidates:
                        call = candidates.pop()
                if call is None:
                    self.part_alive[i][j] = False
                    self.orphans_removed += 1
                    self.repaired.append((i, j))
                    changed = True
                else:
                    paired.add(call)
                    paired.add((i, j))
            if history[i].side == RESPONSE:
                last_response = i
            if self.pairing == "anywhere":
                for j, part in enumerate(history[i].parts):
                    if part.kind == CALL and self.part_alive[i][j] and not self.stubbed[i][j]:
                        calls_so_far.setdefault(part.call_id, []).append((i, j))

        # 2. Calls nobody answered: removed, or answered by a stub.
        for i in order:
            for j, part in enumerate(history[i].parts):
                if part.kind == CALL and self.part_alive[i][j] and (i, j) not in paired and not self.stubbed[i][j]:
                    if self.stub:
                        self.stubbed[i][j] = True
                    else:
                        self.part_alive[i][j] = False
                    self.calls_repaired += 1
                    self.repaired.append((i, j))
                    changed = True

        # 3. Messages left with nothing (thinking alone counts as nothing), except a last
        #    request that must stay.
        last = len(history) - 1
        for i in order:
            if self.keep_last_request and i == last and history[i].side == REQUEST:
                continue
            if all(kind in (THINKING, INSTRUCTIONS) for kind in self.alive_kinds(i)):
                self.alive[i] = False
                changed = True

        # 4. A reasoning item and the item it belongs to live and die together.
        for i in order:
            if history[i].bonded_to_next and i + 1 < len(history) and self.alive[i] != self.alive[i + 1]:
                self.alive[i] = self.alive[i + 1] = False
                changed = True

        # 5. The first message that is not only system parts must be a request.
        if self.user_first:
            for i in order:
                if not self.alive[i] or all(kind == SYSTEM for kind in self.alive_kinds(i)):
                    continue
                if history[i].side == RESPONSE:
                    self.alive[i] = False
                    changed = True
                break
        return changed


@dataclass
class Plan:
    """The output of one repair: what to build, and its report."""

    entries: list[tuple]  # ("kept", index, kept part indices or None, stub calls, stub_at) | ("stub", calls)
    tokens: int
    dropped: list[int]
    orphans_removed: int
    calls_repaired: int


def _plan(repair: Repair, reserved_tokens: int) -> Plan:
    """What a repair keeps, where its stub results go, and how many tokens that is."""
    history = repair.history
    kept = [i for i in range(len(history)) if repair.alive[i]]
    stubs_into: dict[int, list[tuple[int, int]]] = {}  # request index -> calls answered inside it
    stubs_after: dict[int, list[list[tuple[int, int]]]] = {}  # index -> new messages after it
    for pos, i in enumerate(kept):
        calls = [(i, j) for j in range(len(history[i].parts)) if repair.part_alive[i][j] and repair.stubbed[i][j]]
        if not calls:
            continue
        if repair.stubs == "next-request":
            following = kept[pos + 1] if pos + 1 < len(kept) else None
            if following is not None and history[following].side == REQUEST:
                stubs_into.setdefault(following, []).extend(calls)
            else:
                stubs_after.setdefault(i, []).append(calls)
        elif repair.stubs == "after-tool-block":
            end = pos
            while end + 1 < len(kept) and repair.only_results(kept[end + 1]):
                end += 1
            for call in calls:
                stubs_after.setdefault(kept[end], []).append([call])
        else:
            for call in calls:
                stubs_after.setdefault(i, []).append([call])

    def stub_tokens(calls: list[tuple[int, int]]) -> int:
        return sum(history[i].parts[j].stub_tokens for i, j in calls)

    entries: list[tuple] = []
    tokens = reserved_tokens
    dropped = []
    for i, message in enumerate(history):
        if not repair.alive[i]:
            dropped.append(i)
            continue
        parts = [j for j in range(len(message.parts)) if repair.part_alive[i][j]]
        stubs = stubs_into.get(i, [])
        tokens += MESSAGE_OVERHEAD + stub_tokens(stubs)
        tokens += sum(message.parts[j].tokens for j in parts if message.parts[j].kind != INSTRUCTIONS)
        # Synthesized results go right after the message's last result (results first).
        stub_at = 0
        for position, j in enumerate(parts):
            if message.parts[j].kind == RESULT:
                stub_at = position + 1
        entries.append(("kept", i, parts if len(parts) != len(message.parts) else None, stubs, stub_at))
        for calls in stubs_after.get(i, []):
            tokens += MESSAGE_OVERHEAD + stub_tokens(calls)
            entries.append(("stub", calls))
    # The instructions of the last request sent count (none when that is a stub message).
    requests = [e for e in entries if e[0] == "stub" or history[e[1]].side == REQUEST]
    if requests and requests[-1][0] == "kept":
        i = requests[-1][1]
        tokens += sum(
            part.tokens
            for j, part in enumerate(history[i].parts)
            if part.kind == INSTRUCTIONS and repair.part_alive[i][j]
        )
    return Plan(entries, tokens, dropped, repair.orphans_removed, repair.calls_repaired)


def _exchanges_in(history: list[Message], plan: Plan) -> int:
    """The number of runs of response messages in the output, where a request made only of
    synthesized results does not end a run."""
    count = 0
    in_run = False
    for entry in plan.entries:
        if entry[0] == "stub":
            continue
        _, i, parts, stubs, _ = entry
        if history[i].side == RESPONSE:
            count += not in_run
            in_run = True
        elif parts is None:
            in_run = in_run and _only_stub_results(history[i])
        else:
            synthesized = all(history[i].parts[j].kind == RESULT and history[i].parts[j].synthesized for j in parts)
            in_run = in_run and bool(parts or stubs) and synthesized
    return count


def _check_something_to_send(history: list[Message], repair: Repair) -> None:
    """A history ending with a request must still end with one of its requests: when
    repair removes the whole pending request because its results answer no call, there is
    nothing left to send. (One removed for being empty had nothing to send anyway.)"""
    n = len(history)
    pending = next((i + 1 for i in range(n - 1, -1, -1) if history[i].side == RESPONSE), 0)
    if pending == n or any(repair.alive[i] for i in range(pending, n)):
        return
    if any(part.kind == RESULT for message in history[pending:] for part in message.parts):
        raise InvalidMessageError(
            n - 1,
            "the history ends with this request, but its tool results answer no call in the history, "
            "so nothing is left to send",
        )


# ---- Building the output ------------------------------------------------------------------


def _item_at(items: Any, slot: int) -> Any:
    """Item ``slot`` of a list of parts, taken as the reader took it (``_each``): a list or
    a tuple in place, any other iterable (a set, a dict's keys) by iterating it again."""
    if isinstance(items, list):
        return list.__getitem__(items, slot)
    if isinstance(items, tuple):
        return tuple.__getitem__(items, slot)
    for i, item in enumerate(items):
        if i == slot:
            return item
    raise IndexError("the list of parts changed since it was read")


def _call_source(messages: list[Any], history: list[Message], fmt: str, call: tuple[int, int]) -> Any:
    """The Python object a call was read from: its message, or an item of its list."""
    i, j = call
    slot = history[i].parts[j].slot
    message = messages[i]
    if slot is None:
        return message
    if fmt == "pydantic-ai":
        return _item_at(message.parts, slot)
    if fmt == "anthropic":
        return _item_at(message["content"], slot)
    return _item_at(message["tool_calls"], slot)


def _stub_result(messages: list[Any], history: list[Message], fmt: str, call: tuple[int, int]) -> Any:
    """A synthesized result (a part or a block) answering ``call``."""
    call_id = cast(str, history[call[0]].parts[call[1]].call_id)  # calls always have one
    if fmt == "pydantic-ai":
        from pydantic_ai.messages import ToolReturnPart

        from pydantic_ai import messages as pydantic_ai_messages

        tool_name = _call_source(messages, history, fmt, call).tool_name
        # Derived from the input alone, as pydantic-ai's own synthesized returns are.
        extra: dict[str, Any] = {}
        timestamp = _attr(messages[call[0]], "timestamp")
        if timestamp is not _MISSING:
            extra["timestamp"] = timestamp
        key = getattr(pydantic_ai_messages, "SYNTHESIZED_TOOL_RETURN_METADATA_KEY", None)
        if key is not None:
            extra["metadata"] = {key: True}
        return ToolReturnPart(tool_name, STUB_TEXT, call_id, **extra)
    return {"type": "tool_result", "tool_use_id": call_id, "content": STUB_TEXT}


def _stub_messages(messages: list[Any], history: list[Message], fmt: str, calls: list[tuple[int, int]]) -> list[Any]:
    """New messages answering ``calls``, in the format's shape."""
    if fmt == "pydantic-ai":
        from pydantic_ai.messages import ModelRequest

        return [ModelRequest([_stub_result(messages, history, fmt, call) for call in calls])]
    if fmt == "anthropic":
        return [{"role": "user", "content": [_stub_result(messages, history, fmt, call) for call in calls]}]
    out = []
    for call in calls:
        call_id = history[call[0]].parts[call[1]].call_id
        source = _call_source(messages, history, fmt, call)
        if fmt == "openai" and history[call[0]].parts[call[1]].slot is None:
            # A legacy function_call is answered by a `function` message, by position.
            # Named as the reader read the name (none if the call had none).
            fields = _get(source, "function_call", None)
            function_name = _get(fields, "name", _MISSING) if isinstance(fields, dict) else _MISSING
            stub: dict[str, Any] = {"role": "function"}
            if function_name is not _MISSING:
                stub["name"] = function_name
            stub["content"] = STUB_TEXT
            out.append(stub)
        elif fmt == "openai":
            out.append({"role": "tool", "tool_call_id": call_id, "content": STUB_TEXT})
        else:
            out.append({"type": f"{source['type']}_output", "call_id": call_id, "output": STUB_TEXT})
    return out


def _with_content(part: Any, text: str) -> Any:
    """A pydantic-ai part with its content replaced; a retry prompt (its class is deprecated
    and warns when built) copied without its constructor (``build.rs``)."""
    if isinstance(_get_field(part, "part_kind"), str) and str.__str__(part.part_kind) == "retry-prompt":
        try:
            fields = part.__dict__
        except AttributeError:
            fields = None
        if fields is not None:
            copy = object.__new__(type(part))
            copy.__dict__.update(fields)
            copy.content = text
            return copy
    return dataclasses.replace(part, content=text)


def _rebuild(messages: list[Any], history: list[Message], fmt: str, entry: tuple, replaced: dict | None = None) -> Any:
    """A kept message that lost parts, gained stub results or has parts whose content is
    replaced (masked), as a new object."""
    _, i, parts, stubs, stub_at = entry
    replaced = replaced or {}
    message = messages[i]
    read = history[i]
    kept = parts if parts is not None else list(range(len(read.parts)))
    for j in kept:
        if read.parts[j].slot is None and (i, j) in replaced and fmt in ("openai", "responses"):
            copy = dict(message)
            copy["content" if fmt == "openai" else "output"] = replaced[(i, j)]
            return copy
    slots = [read.parts[j].slot for j in kept if read.parts[j].slot is not None]
    texts = [replaced.get((i, j)) for j in kept if read.parts[j].slot is not None]
    new_results = [_stub_result(messages, history, fmt, call) for call in stubs]
    if fmt == "pydantic-ai":
        items = [_item_at(message.parts, slot) for slot in slots]
        items = [item if t is None else _with_content(item, t) for item, t in zip(items, texts)]
        at = min(stub_at, len(items))
        items[at:at] = new_results
        return dataclasses.replace(message, parts=items)
    if fmt == "anthropic":
        copy = dict(message)
        content = copy["content"]
        if isinstance(content, list):
            items = [_item_at(content, slot) for slot in slots]
            items = [item if t is None else {**item, "content": t} for item, t in zip(items, texts)]
        else:
            # A plain-string user message that receives results: its text becomes a text block.
            items = [{"type": "text", "text": content}]
        at = min(stub_at, len(items))
        items[at:at] = new_results
        copy["content"] = items
        return copy
    if fmt == "openai":
        # Only an assistant message loses parts: some of its tool calls.
        copy = dict(message)
        if copy.get("tool_calls") is not None:
            calls = [_item_at(copy["tool_calls"], slot) for slot in slots]
            if calls:
                copy["tool_calls"] = calls
            else:
                del copy["tool_calls"]
        keeps_legacy_call = any(read.parts[j].kind == CALL and read.parts[j].slot is None for j in kept)
        if not keeps_legacy_call and "function_call" in copy:
            del copy["function_call"]
        return copy
    return message  # a Responses item has one part: kept whole or dropped


def _build(
    messages: list[Any], history: list[Message], fmt: str, plan: Plan, replaced: dict | None = None
) -> list[Any]:
    replaced = replaced or {}
    out = []
    for entry in plan.entries:
        # A stub answers calls of the message it follows: errors name that one.
        index = entry[1][0][0] if entry[0] == "stub" else entry[1]
        try:
            if entry[0] == "stub":
                out.extend(_stub_messages(messages, history, fmt, entry[1]))
            elif entry[2] is None and not entry[3] and not any((entry[1], j) in replaced for j in range(len(history[entry[1]].parts))):
                out.append(messages[entry[1]])  # untouched: the caller's own object
            else:
                out.append(_rebuild(messages, history, fmt, entry, replaced))
        except (TokensieveError, MemoryError):
            raise
        except Exception as exc:  # the caller's objects changed or misbehave since read
            raise _wrapped(exc, index, "rebuilding it") from exc
    return out


# ---- The pipeline's steps (rust/src/strategies/, docs/strategies.md) ---------------------

KEY_FIELDS = (
    "path", "file_path", "filepath", "filename", "file", "target_file",
    "command", "cmd", "url", "query", "pattern", "name",
)  # fmt: skip
PLACEHOLDER_START = "[tokensieve masked the output of "
PLACEHOLDER_END = " tokens]"


PLACEHOLDER_PREFIX = "[tokensieve "


@dataclass
class _Detail:
    tool: str | None = None
    key: tuple[str, str] | None = None
    args: Any = None  # calls: what identical calls share (the core hashes it), None if unknown
    content_tokens: int = 0
    lines: int = 0
    placeholder: bool = False
    error: bool = False
    says_failed: bool = False  # results (OpenAI chat, Responses): the text says the call failed
    retry: bool = False  # results: a pydantic-ai retry prompt (pruned, never masked)
    reason: str | None = None  # failed results: the line that says why (``failure::reason``)
    text: str | None = None  # results: the text (the core hashes it)
    ack: bool = False  # prompts: the text is only an acknowledgement


# Whole prompts that only acknowledge (``rust/src/strategies/prune.rs``, ``ACKNOWLEDGEMENTS``).
ACKNOWLEDGEMENTS = frozenset(
    {
        "ok", "okay", "k", "kk", "thanks", "thank you", "thanks a lot", "thank you so much", "thx", "ty",
        "tysm", "cheers", "got it", "great", "cool", "nice", "perfect", "awesome", "alright", "noted",
        "understood", "sounds good", "good", "ok thanks", "ok thank you", "okay thanks", "okay thank you",
        "great thanks", "great thank you", "perfect thanks", "got it thanks", "cool thanks", "nice thanks",
        "thanks great",
    }
)  # fmt: skip


def is_acknowledgement(text: str) -> bool:
    """Whether a prompt only acknowledges ("OK!", "thanks.", "got it, thanks").

    >>> is_acknowledgement("Got it, thanks!"), is_acknowledgement("ok, now fix the test")
    (True, False)
    """
    if not text.isascii() or len(text) > 64:
        return False
    mapped = "".join(c if c.isalnum() or c == "'" else " " for c in text.lower())
    return " ".join(mapped.split()) in ACKNOWLEDGEMENTS


def is_placeholder(text: str) -> bool:
    return text.startswith(PLACEHOLDER_PREFIX) and text.endswith("]") and "\n" not in text


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _one_line(s: str, limit: int) -> str:
    import unicodedata

    flat = "".join(" " if unicodedata.category(c) == "Cc" else c for c in s)
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _call_label(tool: str | None, key: tuple[str, str] | None) -> str:
    text = _one_line(tool, 64) if tool is not None else "a tool"
    if key is not None:
        text += f"({key[0]}={_one_line(key[1], 120)})"
    return text


def placeholder(tool: str | None, key: tuple[str, str] | None, lines: int, tokens: int) -> str:
    return PLACEHOLDER_START + _call_label(tool, key) + f": {lines} line{'' if lines == 1 else 's'}, {tokens}{PLACEHOLDER_END}"


def _read_like(tool: str) -> bool:
    lowered = "".join(c.lower() if c.isascii() else c for c in tool)
    return any(w in lowered for w in ("read", "cat", "view", "open", "show"))


def pointer(tool: str, key: tuple[str, str] | None, same_output: bool) -> str:
    reason = "the same call returned the same output later" if same_output else "superseded by a later identical read"
    return f"{PLACEHOLDER_PREFIX}pruned the output of {_call_label(tool, key)}: {reason}]"


def failure_pointer(tool: str, key: tuple[str, str] | None, reason: str | None = None) -> str:
    said = f"; it said: {_one_line(reason, 200)}" if reason else ""
    return f"{PLACEHOLDER_PREFIX}pruned a failed attempt of {_call_label(tool, key)}: superseded by a later successful call{said}]"


# ---- Whether a tool output says it failed (``rust/src/strategies/failure.rs``) -------------

_BLANK = b" \t\r\n\x0c"
_FAILURE_OPENINGS = (
    b"error:", b"error[", b"[error]", b"fatal:", b"error executing", b"error calling", b"error running",
    b"error invoking", b"an error occurred", b"traceback (most recent call last)",
)  # fmt: skip
_MISSING_PHRASES = (b"no such file or directory", b"command not found")
_EXIT_NEEDLES = (b"exit code", b"exit status", b"exited with code", b"exit_code", b"returncode", b"return code")
_HEAD_BYTES = 4096


def _prefix_at_boundary(b: bytes, limit: int) -> bytes:
    if len(b) <= limit:
        return b
    end = limit
    while end > 0 and b[end] & 0xC0 == 0x80:
        end -= 1
    return b[:end]


def _suffix_at_boundary(b: bytes, limit: int) -> bytes:
    if len(b) <= limit:
        return b
    start = len(b) - limit
    while start < len(b) and b[start] & 0xC0 == 0x80:
        start += 1
    return b[start:]


def _exit_code(b: bytes) -> int | None:
    """The last exit code a UTF-8 text states, in its first and last 4 KiB (``failure::exit_code``)."""
    found = None
    for part in (_prefix_at_boundary(b, _HEAD_BYTES), _suffix_at_boundary(b, _HEAD_BYTES)):
        lower = part.lower()
        for needle in _EXIT_NEEDLES:
            start = 0
            while (at := lower.find(needle, start)) >= 0:
                start = at + len(needle)
                rest = lower[start:]
                j = 0
                while j < len(rest) and j < 4 and rest[j] in b" :=\"'>(":
                    j += 1
                negative = rest[j : j + 1] == b"-"
                if negative:
                    j += 1
                k = j
                while k < len(rest) and k - j < 6 and 0x30 <= rest[k] <= 0x39:
                    k += 1
                if k > j:
                    n = int(rest[j:k])
                    found = -n if negative else n
        if found is not None and len(part) == len(b):
            break
    return found


def _says_failed(text: str, command: bool) -> bool:
    """Whether a tool output's text says its call failed (``failure::says_failed``).

    >>> _says_failed("Error: no such file", False), _says_failed("Fixed the error in a.py", False)
    (True, False)
    """
    b = text.encode("utf-8")
    if command:
        code = _exit_code(b)
        if code is not None:
            return code != 0
    lines = [x for x in (line.strip(_BLANK) for line in b.split(b"\n")) if x]
    if lines:
        head = lines[0][:64].lower()
        if head == b"error" or head.startswith(_FAILURE_OPENINGS):
            return True
    rest = b.lstrip(_BLANK)
    if rest.startswith(b"{"):
        rest = rest[1:].lstrip(_BLANK)
        if rest.startswith(b'"error"'):
            rest = rest[7:].lstrip(_BLANK)
            if rest.startswith(b":"):
                value = rest[1:].lstrip(_BLANK)
                if not (not value or value.startswith((b"null", b"false", b'""'))):
                    return True
    if lines and len(lines) <= 3 and any(m in lines[0].lower() for m in _MISSING_PHRASES):
        return True
    if command:
        head = _prefix_at_boundary(b, _HEAD_BYTES)
        return b"command not found" in head or b"Traceback (most recent call last)" in head
    return False


_REASON_OPENINGS = (b"error", b"failed", b"failure", b"fatal", b"panic")


def _blank_split(b: bytes) -> list[bytes]:
    return [x for x in (line.strip(_BLANK) for line in b.split(b"\n")) if x]


def _reason(text: str) -> str:
    """The line of a failed output that says why (``failure::reason``).

    >>> _reason("Traceback (most recent call last):\\n  File \\"a.py\\"\\nValueError: bad\\n")
    'ValueError: bad'
    """
    b = text.encode("utf-8")
    lines = _blank_split(b)
    first = lines[0] if lines else b""
    if first[:64].lower().startswith(b"traceback (most recent call last)"):
        tail = _blank_split(_suffix_at_boundary(b, _HEAD_BYTES))
        line = tail[-1] if tail else first
    else:
        head = _prefix_at_boundary(b, _HEAD_BYTES)
        ends = [head] if len(head) == len(b) else [head, _suffix_at_boundary(b, _HEAD_BYTES)]
        found = (x for end in ends for x in _blank_split(end) if x[:64].lower().startswith(_REASON_OPENINGS))
        line = next(found, first)
    return _prefix_at_boundary(line, _HEAD_BYTES).decode("utf-8")


def runs_command(tool: str, key_field: str | None) -> bool:
    """Whether a call runs a process (``prune::runs_command``): its key argument is
    ``command`` or ``cmd``, or its tool's name contains ``bash``, ``shell`` or ``terminal``.

    >>> runs_command("run", "command"), runs_command("Bash", None), runs_command("read_file", "path")
    (True, True, False)
    """
    lowered = "".join(c.lower() if c.isascii() else c for c in tool)
    return key_field in ("command", "cmd") or any(w in lowered for w in ("bash", "shell", "terminal"))


def _failed(result: _Detail) -> bool:
    return result.error or result.says_failed


def _json_string_field(text: str, key: str) -> str | None:
    """The first ``"key": "<string>"`` of a JSON text, unescaped (no full parse)."""
    needle = f'"{key}"'
    start = 0
    while True:
        at = text.find(needle, start)
        if at < 0:
            return None
        start = at + len(needle)
        rest = text[start:].lstrip()
        if not rest.startswith(":"):
            continue
        rest = rest[1:].lstrip()
        if not rest.startswith('"'):
            return None
        out: list[str] = []
        i = 1
        while i < len(rest):
            c = rest[i]
            i += 1
            if c == '"':
                return "".join(out)
            if c == "\\":
                if i >= len(rest):
                    return None
                e = rest[i]
                i += 1
                if e == "u":
                    digits = rest[i : i + 4]
                    i += len(digits)
                    try:
                        code = int(digits, 16) if len(digits) == 4 and all(d in "0123456789abcdefABCDEF" for d in digits) else -1
                    except ValueError:
                        code = -1
                    out.append(chr(code) if 0 <= code and not 0xD800 <= code <= 0xDFFF else "\ufffd")
                else:
                    out.append({"n": "\n", "t": "\t", "r": "\r"}.get(e, e))
            else:
                out.append(c)
        return None


def _get_field(obj: Any, key: str) -> Any:
    try:
        value = dict.get(obj, key) if isinstance(obj, dict) else getattr(obj, key)
    except Exception:
        return None
    return value


def _str(value: Any) -> str | None:
    return str.__str__(value) if isinstance(value, str) else None


def _call_detail(fmt: str, source: Any) -> _Detail:
    if fmt == "pydantic-ai":
        name, args = _get_field(source, "tool_name"), _get_field(source, "args")
    elif fmt == "anthropic":
        name, args = _get_field(source, "name"), _get_field(source, "input")
    elif fmt == "responses":
        name = _get_field(source, "name")
        args = _get_field(source, "arguments")
        if args is None:
            args = _get_field(source, "input")
    else:
        body = next((b for b in (_get_field(source, k) for k in ("function", "custom", "function_call")) if b is not None), None)
        name = args = None
        if body is not None:
            name = _get_field(body, "name")
            args = _get_field(body, "arguments")
            if args is None:
                args = _get_field(body, "input")
    detail = _Detail(tool=_str(name))
    if isinstance(args, dict):
        try:
            shared = tuple((str(k), str(v)) for k, v in dict.items(args))
            detail.args = ("dict", shared) if all(_utf8(k) and _utf8(v) for k, v in shared) else None
        except Exception:
            detail.args = None
    elif _str(args) is not None:
        detail.args = ("str", _str(args)) if _utf8(_str(args)) else None  # type: ignore[arg-type]
    if isinstance(args, dict):
        for k in KEY_FIELDS:
            value = _str(dict.get(args, k))
            if value is not None:
                detail.key = (k, value)
                break
    elif _str(args) is not None:
        for k in KEY_FIELDS:
            value = _json_string_field(_str(args), k)  # type: ignore[arg-type]
            if value is not None:
                detail.key = (k, value)
                break
    return detail


def _result_detail(fmt: str, source: Any, count: Callable[[str], int], command: bool = False) -> _Detail:
    detail = _Detail()
    if fmt == "pydantic-ai":
        kind = _str(_get_field(source, "part_kind")) or ""
        detail.tool = _str(_get_field(source, "tool_name"))
        outcome = _get_field(source, "outcome")
        detail.error = kind != "tool-return" or (outcome is not None and _str(outcome) != "success")
        content = _get_field(source, "content")
        if kind != "tool-return":
            # A retry prompt: measured for the prune step, never masked; a list of
            # validation errors by its JSON text, as the reader counted it.
            detail.retry = True
            if content is not None and not isinstance(content, str):
                try:
                    rendered, binary = json_text(content)
                except Exception:
                    return detail
                if _utf8(rendered):
                    detail.text = rendered
                    detail.reason = _reason(rendered)
                    detail.content_tokens = count(rendered) + binary
                    detail.lines = rendered.count("\n") + (1 if rendered and not rendered.endswith("\n") else 0)
                return detail
    elif fmt == "anthropic":
        flag = _get_field(source, "is_error")
        try:
            detail.error = flag is not None and bool(flag)
        except Exception:
            detail.error = False
        content = _get_field(source, "content")
    elif fmt == "responses":
        content = _get_field(source, "output")
    else:
        content = _get_field(source, "content")
    text = _str(content)
    if text is not None and _utf8(text):
        detail.text = text
        detail.placeholder = is_placeholder(text)
        detail.content_tokens = count(text)
        detail.lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
        if fmt in ("openai", "responses"):  # no failure flag: what the text says
            detail.says_failed = _says_failed(text, command)
        if detail.error or detail.says_failed:
            detail.reason = _reason(text)
    return detail


def _prompt_text(fmt: str, obj: Any, slot: int | None) -> str | None:
    """The text of a prompt when it is a plain string (``details.rs``, ``prompt_text``)."""
    if fmt == "pydantic-ai":
        if slot is None:
            return None
        parts = _get_field(obj, "parts")
        item = parts[slot] if isinstance(parts, (list, tuple)) and slot < len(parts) else None
        return None if item is None else _str(_get_field(item, "content"))
    if slot is None:
        return _str(_get_field(obj, "content"))
    if fmt == "anthropic":
        blocks = _get_field(obj, "content")
        block = blocks[slot] if isinstance(blocks, (list, tuple)) and slot < len(blocks) else None
        if block is None or _str(_get_field(block, "type")) != "text":
            return None
        return _str(_get_field(block, "text"))
    return None


def _details(
    messages: list[Any], history: list[Message], fmt: str, count: Callable[[str], int], acknowledgements: bool = False
) -> dict:
    """The details of every call and result, by (message, part) (``rust/src/python/details.rs``);
    with ``acknowledgements``, also whether each request of a single prompt only acknowledges."""
    details: dict[tuple[int, int], _Detail] = {}
    calls: dict[str | None, _Detail] = {}  # each call id's latest call so far: is it a command?
    for i, message in enumerate(history):
        if acknowledgements and len(message.parts) == 1 and message.parts[0].kind == PROMPT:
            try:
                text = _prompt_text(fmt, messages[i], message.parts[0].slot)
            except Exception:
                text = None
            details[(i, 0)] = _Detail(ack=text is not None and is_acknowledgement(text))
            continue
        if not any(p.kind in (CALL, RESULT) for p in message.parts):
            continue
        obj = messages[i]
        key = {"pydantic-ai": "parts", "anthropic": "content", "openai": "tool_calls"}.get(fmt)
        container = None if key is None else _get_field(obj, key)
        for j, part in enumerate(message.parts):
            if part.kind not in (CALL, RESULT):
                continue
            if part.slot is None:
                source = obj
            elif isinstance(container, (list, tuple)) and part.slot < len(container):
                source = container[part.slot]
            else:
                continue
            if part.kind == CALL:
                calls[part.call_id] = details[(i, j)] = _call_detail(fmt, source)
            else:
                call = calls.get(part.call_id)
                command = call is not None and call.tool is not None and runs_command(call.tool, call.key[0] if call.key else None)
                details[(i, j)] = _result_detail(fmt, source, count, command)
    return details


def _mask_plan(
    history: list[Message], details: dict, starts: list[int], keep: int, minimum: int, count: Callable[[str], int]
) -> dict[tuple[int, int], tuple[str, int]]:
    """Results older than the last ``keep`` exchanges → (placeholder, tokens), all or none."""
    old = len(starts) - keep
    if old <= 0:
        return {}
    end = starts[old] if old < len(starts) else _pending_start(history, starts)
    calls: dict[str | None, _Detail] = {}
    plan: dict[tuple[int, int], tuple[str, int]] = {}
    saved = 0
    for i in range(end):
        for j, part in enumerate(history[i].parts):
            if part.kind == CALL:
                calls[part.call_id] = details.get((i, j), _Detail())
            elif part.kind == RESULT and not part.synthesized:
                d = details.get((i, j), _Detail())
                if d.content_tokens == 0 or d.placeholder or d.retry:
                    continue
                call = calls.get(part.call_id)
                tool = d.tool if d.tool is not None else (call.tool if call is not None else None)
                text = placeholder(tool, call.key if call is not None else None, d.lines, d.content_tokens)
                tokens = max(part.tokens - d.content_tokens, 0) + count(text)
                if tokens < part.tokens:
                    saved += part.tokens - tokens
                    plan[(i, j)] = (text, tokens)
    return plan if saved >= max(minimum, 1) else {}


def _prune_plan(
    history: list[Message],
    details: dict,
    starts: list[int],
    repeated_calls: bool,
    superseded_reads: bool,
    skip: dict,
    count: Callable[[str], int],
    superseded_failures: bool = False,
) -> dict[tuple[int, int], tuple[str, int]]:
    """Earlier outputs a later call made redundant → (pointer, tokens)."""
    if not starts:
        return {}
    protected = starts[-1]
    calls: dict[str | None, tuple[int, int]] = {}
    pairs = []
    for i, message in enumerate(history):
        for j, part in enumerate(message.parts):
            if part.kind == CALL:
                calls[part.call_id] = (i, j)
            elif part.kind == RESULT and not part.synthesized and part.call_id in calls:
                pairs.append((calls[part.call_id], (i, j)))
    later: dict[tuple[str, Any], str] = {}
    succeeded: set[tuple[str, tuple[str, str] | None]] = set()  # (tool, key argument) that succeeded later
    plan: dict[tuple[int, int], tuple[str, int]] = {}
    for c, r in reversed(pairs):
        call, result = details.get(c, _Detail()), details.get(r, _Detail())
        if call.tool is None:
            continue
        has_text = result.content_tokens > 0 and not result.placeholder and result.text is not None
        open_ = r[0] < protected and has_text and r not in skip
        key = (call.tool, call.args)
        failed = _failed(result)
        text = None
        if open_ and failed and superseded_failures and (call.tool, call.key) in succeeded:
            text = failure_pointer(call.tool, call.key, result.reason)
        elif open_ and call.args is not None and key in later:
            same = later[key] == result.text
            if (same and repeated_calls) or (not same and superseded_reads and _read_like(call.tool)):
                text = pointer(call.tool, call.key, same)
        if text is not None:
            part = history[r[0]].parts[r[1]]
            tokens = max(part.tokens - result.content_tokens, 0) + count(text)
            if tokens < part.tokens:
                plan[r] = (text, tokens)
        if has_text and not failed:
            if call.args is not None:
                later[key] = result.text  # type: ignore[assignment]
            succeeded.add((call.tool, call.key))
    return plan


def _acknowledged(history: list[Message], details: dict, starts: list[int], drop_dangling: bool) -> list[int]:
    """Messages the ``acknowledgements`` rule removes (``prune.rs``, ``acknowledged``): whole
    exchanges of acknowledgement prompts and replies without a tool call (with
    ``drop_dangling``, a call no result answers counts as absent), never the first, the
    last, or the one holding the current task."""
    n = len(starts)
    if n < 3:
        return []
    answered = {p.call_id for m in history for p in m.parts if p.kind == RESULT} if drop_dangling else set()
    ends = [*starts[1:], _pending_start(history, starts)]
    task = next((i for i in range(len(history) - 1, -1, -1) if any(p.kind == PROMPT for p in history[i].parts)), None)
    gone: list[int] = []
    for k in range(1, n - 1):
        lo, hi = starts[k], ends[k]
        if (task is not None and lo <= task < hi) or history[lo - 1].bonded_to_next or history[hi - 1].bonded_to_next:
            continue
        acks = 0
        only = True
        for i in range(lo, hi):
            for j, part in enumerate(history[i].parts):
                if history[i].side == REQUEST and part.kind == PROMPT and details.get((i, j), _Detail()).ack:
                    acks += 1
                elif history[i].side == RESPONSE and part.kind == CALL:
                    if not drop_dangling or part.call_id in answered:
                        only = False
                elif not (history[i].side == RESPONSE and part.kind in (CONTENT, THINKING)):
                    only = False
        if only and acks:
            gone.extend(range(lo, hi))
    return gone


def _pending_start(history: list[Message], starts: list[int]) -> int:
    """Where the last exchange ends: the pending request's start, or the end."""
    _, _, all_starts = _window_plan(history, keep_pending=True)
    return all_starts[-1] if len(all_starts) > len(starts) else len(history)


# ---- Public API --------------------------------------------------------------------------


def _as_list(messages: Any) -> list[Any]:
    if isinstance(messages, list):
        return messages
    if isinstance(messages, tuple):
        return list(messages)
    raise InputTypeError(f"messages: expected a list of messages, got {_type_name(messages)}")


def _format_of(messages: list[Any], format: str | None) -> Format:
    if format is None:
        return detect_format(messages)
    if not isinstance(format, str):
        raise InputTypeError(f"format: expected str, got {_type_name(format)}")
    format = str.__str__(format)  # a str subclass by its value, never its own __eq__/__hash__
    if format not in FORMATS:
        raise ConfigurationError(
            f"invalid configuration: unknown format {format!r}; "
            "expected 'pydantic-ai', 'openai', 'responses' or 'anthropic'"
        )
    return FORMATS[format]


def _read(
    messages: Any, format: str | None, count: Callable[[str], int], stubs: bool = False
) -> tuple[list[Any], Format, list[Message]]:
    messages = _as_list(messages)
    fmt = _format_of(messages, format)
    return messages, fmt, Reader(count, stubs, fmt).read(messages, fmt)


def count_history_tokens(messages: Sequence[Any], encoding: Any = None, *, format: str | None = None) -> list[int]:
    """Tokens of each message, as :func:`compact` counts them."""
    count = _counter(encoding)
    _, _, history = _read(messages, format, count)
    return tokens_per_message(history)


def compact(
    messages: Sequence[Any], config: BudgetConfig | str | None = None, *, format: str | None = None, **overrides: Any
) -> CompactionResult:
    """Compact ``messages`` (never modified) following ``docs/compaction.md``."""
    import numpy as np

    config = resolve_config(config, overrides)
    count = _counter(config.encoding)
    stub = config.dangling_calls == "stub"
    messages, fmt, history = _read(messages, format, count, stubs=stub)
    limit = float(config.max_input_tokens)
    # The summary (docs/strategies.md, "Summary"): its room is taken from the window's
    # target; an earlier summary in the history is updated, never doubled.
    job = _SummaryJob.plan(config, messages, fmt)
    target = job.window_target if job is not None else config.target_input_tokens

    def over(tokens: int, fraction: float) -> bool:
        return float(tokens) > float(fraction) * limit

    tokens_before = sum(tokens_per_message(history)) + config.reserved_tokens
    per_message = tokens_per_message(history)
    # The pipeline's steps, over the threshold only (docs/strategies.md): they change the
    # tokens of the parts they replace; the window then works on what they made.
    replaced: dict[tuple[int, int], str] = {}
    steps: list[tuple[str, int, int]] = []
    mask, prune = config.context.mask, config.context.prune
    pruning = prune.enabled and (
        prune.repeated_calls or prune.superseded_reads or prune.acknowledgements or prune.superseded_failures
    )
    gone: list[int] = []  # messages removed whole before the window (acknowledgements)
    if (mask.enabled or pruning) and over(tokens_before, config.compaction_threshold):
        details = _details(messages, history, fmt, count, pruning and prune.acknowledgements)
        _, _, starts = _window_plan(history)
        original = {(i, j): part.tokens for i, m in enumerate(history) for j, part in enumerate(m.parts)}
        plans: list[tuple[str, dict | None]] = []
        if mask.enabled:
            plans.append(("mask", _mask_plan(history, details, starts, mask.keep_exchanges, mask.min_tokens_saved, count)))
        if pruning:
            plans.append(("prune", None))
        for name, step in plans:
            if step is None:  # pruning sees what masking replaced
                step = _prune_plan(
                    history,
                    details,
                    starts,
                    prune.repeated_calls,
                    prune.superseded_reads,
                    replaced,
                    count,
                    prune.superseded_failures,
                )
            saved, items = sum(original[r] - t for r, (_, t) in step.items()), len(step)
            for (i, j), (text, tokens) in step.items():
                history[i].parts[j].tokens = tokens
                replaced[(i, j)] = text
            if name == "prune" and prune.acknowledgements:
                gone = _acknowledged(history, details, starts, config.dangling_calls == "drop")
                if gone:
                    removed = set(gone)
                    kept = [m for i, m in enumerate(history) if i not in removed]
                    saved += sum(tokens_per_message(history)) - sum(tokens_per_message(kept))
                    items += len(gone)
            steps.append((name, saved, items))
    all_messages = messages
    keep = list(range(len(history)))
    if gone:
        # The window works on the history without them; its plan is mapped back below.
        removed = set(gone)
        keep = [i for i in keep if i not in removed]
        new_index = {old: new for new, old in enumerate(keep)}
        messages = [list.__getitem__(messages, i) for i in keep]
        history = [history[i] for i in keep]
        replaced = {(new_index[i], j): text for (i, j), text in replaced.items()}
    working_before = sum(tokens_per_message(history)) + config.reserved_tokens
    everything = [True] * len(history)
    plan = None
    action: Literal["none", "compacted"] = "none"
    repair = None
    # Over the threshold the window runs on what the steps made, even if they brought it under.
    if not over(tokens_before, config.compaction_threshold):
        # The whole history repaired, unless its stubs push it over the threshold.
        repair = Repair(history, fmt, stub, everything)
        plan = _plan(repair, config.reserved_tokens)
        if over(plan.tokens, config.compaction_threshold):
            repair = plan = None
    if plan is None:
        system, with_prompt, starts = _window_plan(history)
        n_ex = len(starts)
        most = n_ex if config.max_exchanges is None else min(config.max_exchanges, n_ex)

        def try_window(k: int) -> tuple[tuple[Repair, Plan, str], bool]:
            first = starts[-k]
            selection = [i >= first for i in range(len(history))]
            if with_prompt:
                selection[with_prompt[-1]] = True  # the current task
            if fmt in USER_FIRST and first not in with_prompt:
                # Open the window with the prompt of the turn it starts in.
                openers = [i for i in with_prompt if i < first]
                if openers:
                    selection[openers[-1]] = True
            # System messages outside the window: their system parts only.
            trim = [i for i in system if not selection[i]]
            for i in trim:
                selection[i] = True
            window_action = "none" if all(selection) and not trim else "compacted"
            window_repair = Repair(history, fmt, stub, selection, trim)
            window_plan = _plan(window_repair, config.reserved_tokens)
            return (window_repair, window_plan, window_action), window_plan.tokens <= target

        if most > 0:
            window_config = config.replace(target_input_tokens=target) if target != config.target_input_tokens else config
            seed = _estimated_window(history, system, with_prompt, starts, window_config, most)
            repair, plan, chosen_action = _search_window(seed, most, try_window)
            action = "compacted" if chosen_action == "compacted" else "none"
    if plan is None or repair is None:
        action = "none"
        repair = Repair(history, fmt, stub, everything)
        plan = _plan(repair, config.reserved_tokens)

    # Which of the output's repairs are defects of the input: those a repair of the whole
    # input makes too; the others are pairs the window cut.
    if not repair.repaired or repair.whole:
        defects = len(repair.repaired)
    else:
        reference = set(Repair(history, fmt, stub, everything).repaired)
        defects = sum(1 for part in repair.repaired if part in reference)
    _check_something_to_send(history, repair)
    if over(plan.tokens, config.hard_limit_threshold):
        raise BudgetExceededError(
            tokens_before, plan.tokens, int(float(config.hard_limit_threshold) * float(config.max_input_tokens))
        )
    if replaced or gone:
        action = "compacted"
    if working_before > plan.tokens or plan.dropped:
        steps.append(("window", max(working_before - plan.tokens, 0), len(plan.dropped)))
    out = _build(messages, history, fmt, plan, replaced)
    messages = all_messages
    dropped = tuple(sorted([keep[i] for i in plan.dropped] + gone))
    tokens_after = plan.tokens
    if job is not None:
        job.fmt = fmt
        chosen = job.inputs(messages, out, dropped, steps)
        if chosen is not None:
            text = _extractive_text(job, chosen[0], chosen[1], tokens_before, tokens_after)
            placed = job.apply(out, text, len(dropped), tokens_before, tokens_after)
            if placed is not None:
                out, cost = placed
                tokens_after += cost
                steps.append(("summary", -cost, len(dropped)))
    return CompactionResult(
        messages=out,
        action=action,
        tokens_before=tokens_before,
        tokens_after=tokens_after,
        messages_before=len(messages),
        messages_after=len(out),
        exchanges_kept=_exchanges_in(history, plan),
        dropped=dropped,
        orphans_removed=plan.orphans_removed,
        calls_repaired=plan.calls_repaired,
        input_defects_repaired=defects,
        pairs_cut_by_window=len(repair.repaired) - defects,
        per_message_tokens=np.array(per_message, dtype=np.int64),
        format=fmt,
        steps=tuple(StepReport(*step) for step in steps),
        target_input_tokens=config.target_input_tokens,
        unchanged_prefix=next(
            (k for k in range(min(len(per_message), len(out))) if list.__getitem__(messages, k) is not out[k]),
            min(len(per_message), len(out)),
        ),
    )


def compact_history(
    messages: Sequence[Any], config: BudgetConfig | str | None = None, *, format: str | None = None, **overrides: Any
) -> list[Any]:
    """The compacted messages (see :func:`compact`)."""
    return compact(messages, config, format=format, **overrides).messages


# =========================================================================================
# Tool output narrowing (tokensieve.narrow) in pure Python
# =========================================================================================
#
# The same algorithm as rust/src/narrow/ (see its module docs), written a second time
# the plain way: the whole text in memory, a list of lines, tiktoken for the counts.
# ``narrow_text`` returns the same tuple as ``tokensieve._core.narrow_text``; the
# differential tests hold the two equal, and benches/test_bench_narrow.py measures both.

import math as _math

NARROW_MODES = ("full", "truncated", "heads_tails", "errors_only", "smart_summary")
SEG_MAX = 2048
CONTEXT_BEFORE = 2
CONTEXT_AFTER = 2
CONTINUATION = 30
LAST_HITS = 8
JSON_MAX_BYTES = 64 << 20
DETECT_BYTES = 64 * 1024
_WIDEST = 999_999_999_999
_WS = " \t\r\n\x0b\x0c"

ERROR_PATTERNS = (
    "error", "fatal", "panic", "exception", "traceback", "fail", "abort", "segmentation fault",
    "core dumped", "denied", "err!", "undefined reference", "cannot find", "no such file",
    "not found", "caused by", "assert", "\u2717", "\u2716", "\u2715",
)
WARNING_PATTERNS = ("warn", "deprecat")
SUMMARY_PATTERNS = (
    " passed", "test result:", "Ran ", "Tests:", "Test Suites:", "short test summary", "ok  \t",
    "Finished ", "Successfully installed", "vulnerabilities", "packages in",
)


def spellings(patterns: tuple[str, ...]) -> list[str]:
    """Each pattern as written, capitalized and in upper case (detect.rs ``spellings``)."""
    out: list[str] = []
    for p in patterns:
        for v in (p, p[:1].upper() + p[1:] if p[:1].isascii() else p, "".join(c.upper() if c.isascii() else c for c in p)):
            if v not in out:
                out.append(v)
    return out


_ERROR_SPELLINGS = spellings(ERROR_PATTERNS)
_WARNING_SPELLINGS = spellings(WARNING_PATTERNS)
LOG_KINDS = ("pytest", "unittest", "cargo", "go_test", "tsc", "npm", "pip", "traceback")
_DIFF_HEADERS = (
    "--- ", "+++ ", "index ", "new file", "deleted file", "rename ", "similarity ", "Binary files ",
    "old mode", "new mode",
)


def _nbytes(s: str) -> int:
    return len(s.encode("utf-8"))


class _Counter:
    """tiktoken's counts, the pre-tokenizer's pieces, the longest token."""

    def __init__(self, encoding: Any) -> None:
        import regex  # type: ignore[import-untyped]  # tiktoken's dependency, no stubs

        self.name = encoding if isinstance(encoding, str) else getattr(encoding, "name", "o200k_base")
        self.count = _counter(self.name)
        enc = _tiktoken_encoding(self.name)
        self.encode = enc.encode_ordinary
        # Python's `$` also matches before a final newline; tiktoken's only at the end.
        self.pattern = regex.compile(PATTERNS[self.name].replace(r"\s++$", r"\s++\Z"))
        self.max_token_len = max(len(t) for t in enc.token_byte_values())

    def pieces(self, text: str) -> list[str]:
        return self.pattern.findall(text)


_COUNTERS: dict[str, _Counter] = {}


def _narrow_counter(encoding: Any) -> _Counter:
    name = "o200k_base" if encoding is None else encoding if isinstance(encoding, str) else encoding.name
    if name not in _COUNTERS:
        _COUNTERS[name] = _Counter(name)
    return _COUNTERS[name]


def _detect_prefix(text: str) -> str:
    b = text.encode("utf-8")
    if len(b) <= DETECT_BYTES:
        return text
    end = DETECT_BYTES
    while (b[end] & 0xC0) == 0x80:
        end -= 1
    return b[:end].decode("utf-8")


def grep_key(line: str) -> str | None:
    colon = line.find(":")
    if colon <= 0 or any(c in _WS for c in line[:colon]) or not ("/" in line[:colon] or "." in line[:colon]):
        return None
    rest = line[colon + 1 :]
    digits = 0
    while digits < len(rest) and rest[digits] in "0123456789":
        digits += 1
    return line[:colon] if digits > 0 and rest[digits : digits + 1] == ":" else None


def _is_cjk(c: str) -> bool:
    o = ord(c)
    return 0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xFF00 <= o <= 0xFFEF


def _looks_like_json(p: str) -> bool:
    t = p.lstrip(_WS)
    if t.startswith("{"):
        return t[1:].lstrip(_WS).startswith(('"', "}")) or not t[1:].lstrip(_WS)
    if not t.startswith("["):
        return False
    v = t[1:].lstrip(_WS)
    if not v or v.startswith(("{", "[", '"', "]")):
        return True
    word = next((w for w in ("true", "false", "null") if v.startswith(w)), None)
    if word is not None:
        n = len(word)
    else:
        n = 0
        while n < len(v) and (v[n] in "0123456789-+.eE"):
            n += 1
        digits = v[:n].lstrip("-")
        if n == 0 or (len(digits) > 1 and digits[0] == "0" and digits[1] in "0123456789"):
            return False
    after = v[n:].lstrip(_WS)
    return not after or after.startswith((",", "]"))


def detect_kind(p: str) -> str:
    """The kind of an output from its first 64 KiB (rust/src/narrow/detect.rs)."""
    if _looks_like_json(p):
        return "json"
    bad = sum(1 for c in p if (c < " " and c not in "\t\n\r") or c == "\x7f" or c == "\ufffd")
    if p and bad * 100 >= len(p):
        return "binary"
    if p.startswith("diff --git ") or "\ndiff --git " in p or (p.startswith("--- ") and "\n+++ " in p):
        return "diff"
    if p.startswith("commit ") and "\nAuthor: " in p:
        return "git_log"
    if "test session starts" in p or "short test summary info" in p:
        return "pytest"
    if ("\nRan " in p and (" test in " in p or " tests in " in p)) or "=" * 70 in p:
        return "unittest"
    if "error[E" in p or "   Compiling " in p or "test result: " in p or "warning: unused" in p:
        return "cargo"
    if "=== RUN " in p or "--- FAIL: " in p or "\nok  \t" in p or "\nFAIL\t" in p:
        return "go_test"
    if ": error TS" in p or "): error TS" in p:
        return "tsc"
    if "npm ERR!" in p or "npm WARN" in p or "npm error" in p:
        return "npm"
    if "Collecting " in p or "Requirement already satisfied" in p or "Successfully installed" in p:
        return "pip"
    if "Traceback (most recent call last):" in p:
        return "traceback"
    lines = [line for line in p.split("\n") if line.strip(_WS)][:20]
    if lines:
        if sum(1 for line in lines if grep_key(line) is not None) * 2 >= len(lines):
            return "grep"
        paths = sum(1 for line in lines if not any(c in _WS for c in line.rstrip("\r")) and _nbytes(line) <= 255)
        dirs = any("/" in line or line.rstrip("\r").endswith(":") for line in lines)
        if dirs and paths * 5 >= len(lines) * 4:
            return "listing"
    if any(_nbytes(line) > 1000 for line in p.split("\n")):
        return "minified"
    visible = [c for c in p if c not in _WS]
    if visible and sum(1 for c in visible if _is_cjk(c)) * 10 >= len(visible) * 3:
        return "cjk"
    return "text"


def _segments(text: str) -> list[tuple[str, int, bool]]:
    """(segment, line, starts_line) of every segment of ``text``."""
    out = []
    start, line = 0, 0
    while start < len(text):
        nl = text.find("\n", start)
        end = len(text) if nl < 0 else nl + 1
        piece = text[start:end]
        b = piece.encode("utf-8")
        pos, first = 0, True
        while len(b) - pos > SEG_MAX:
            e = pos + SEG_MAX
            while (b[e] & 0xC0) == 0x80:
                e -= 1
            out.append((b[pos:e].decode("utf-8"), line, first))
            pos, first = e, False
        out.append((b[pos:].decode("utf-8") if pos else piece, line, first))
        start, line = end, line + 1
    return out


@dataclass
class _Kept:
    seg: int
    line: int
    text: str
    tokens: int
    starts_line: bool
    cut_after: bool = False
    cut_before: bool = False
    is_match: bool = False
    in_tail: bool = False


def _has_gap(prev: _Kept | None, nxt: _Kept | None, segs: int) -> bool:
    if prev is None and nxt is not None:
        return nxt.seg > 0 or nxt.cut_before
    if prev is not None and nxt is not None:
        return prev.seg + 1 < nxt.seg or prev.cut_after or nxt.cut_before
    if prev is not None:
        return prev.seg + 1 < segs or prev.cut_after
    return segs > 0


def _gap_marker(prev: _Kept | None, nxt: _Kept | None, lines: int) -> str:
    if prev is None:
        a = 0
    elif prev.text.endswith("\n") and not prev.cut_after:
        a = prev.line + 1
    else:
        a = prev.line
    if nxt is None:
        b = max(lines - 1, 0)
    elif nxt.cut_before or not nxt.starts_line:
        b = nxt.line
    else:
        b = max(nxt.line - 1, 0)
    b = max(a, b)
    nl = "\n" if prev is not None and not prev.text.endswith("\n") else ""
    if a == b:
        return f"{nl}[... line {a + 1} omitted ...]\n"
    return f"{nl}[... lines {a + 1}-{b + 1} omitted ...]\n"


_WIDEST_GAP = f"\n[... lines {_WIDEST}-{_WIDEST} omitted ...]\n"


def _summary_gap(omitted: int) -> str:
    return f"[... {omitted} summary lines omitted ...]\n"


def _closing(label, dropped, lines, bytes_dropped, nbytes, tokens, nofit, counts, note) -> str:
    s = f"[tokensieve {label}: omitted {dropped} of {lines} lines ({bytes_dropped} of {nbytes} bytes)"
    if tokens is not None:
        s += f"; the full output has {tokens} tokens"
    if nofit is not None and nofit > 0:
        s += f"; {nofit} error lines did not fit"
    if counts is not None:
        s += f"; {counts[0]} error and {counts[1]} warning lines in all"
    if note is not None:
        s += "; " + note
    return s + "]"


def _summary_closing(label, lines, nbytes, kept, tokens, note) -> str:
    s = f"[tokensieve {label}: {lines} lines ({nbytes} bytes) summarized in {kept} lines"
    if tokens is not None:
        s += f"; the full output has {tokens} tokens"
    if note is not None:
        s += "; " + note
    return s + "]"


def _short_closing(label: str, lines: int) -> str:
    return f"[tokensieve {label}: {lines} lines omitted]"


def _prefix_within(c: _Counter, text: str, budget: int) -> tuple[int, int]:
    end, used = 0, 0
    for piece in c.pieces(text):
        t = len(c.encode(piece))
        if used + t > budget:
            break
        used += t
        end += len(piece)
    return end, used


def _suffix_within(c: _Counter, text: str, budget: int) -> tuple[int, int]:
    start, used = len(text), 0
    for piece in reversed(c.pieces(text)):
        t = len(c.encode(piece))
        if used + t > budget:
            break
        used += t
        start -= len(piece)
    return start, used


def _render_lines(kept: list[_Kept], segs: int, lines: int, nbytes: int, closing_of) -> tuple[str, int, int]:
    out: list[str] = []
    prev = None
    distinct, last_line, kept_bytes = 0, None, 0
    for k in kept:
        if _has_gap(prev, k, segs):
            out.append(_gap_marker(prev, k, lines))
        out.append(k.text)
        kept_bytes += _nbytes(k.text)
        if last_line != k.line:
            distinct += 1
            last_line = k.line
        prev = k
    if _has_gap(prev, None, segs):
        out.append(_gap_marker(prev, None, lines))
    text = "".join(out)
    lines_dropped, bytes_dropped = lines - distinct, nbytes - kept_bytes
    if text and not text.endswith("\n"):
        text += "\n"
    return text + closing_of(lines_dropped, bytes_dropped), lines_dropped, bytes_dropped


def _fit(c: _Counter, limit: int, kept: list[_Kept], render, trim, short) -> tuple[str, int, int, int]:
    while True:
        text, lines_dropped, bytes_dropped = render(kept)
        tokens = c.count(text)
        if tokens <= limit:
            return text, tokens, lines_dropped, bytes_dropped
        if not trim(kept, tokens - limit):
            text = short()
            tokens = c.count(text)
            if tokens > limit:
                text, tokens = "", 0
            return text, tokens, lines_dropped, bytes_dropped


def _trim_last(kept: list[_Kept], excess: int, nofit: list[int]) -> bool:
    removed = 0
    while removed < excess:
        if not kept:
            return False
        k = kept.pop()
        removed += max(k.tokens, 1)
        nofit[0] += int(k.is_match)
    return True


def _trim_heads_tails(kept: list[_Kept], excess: int) -> bool:
    removed = 0
    while removed < excess:
        if not kept:
            return False
        head = sum(k.tokens for k in kept if not k.in_tail)
        tail = sum(k.tokens for k in kept if k.in_tail)
        if head >= tail and head > 0:
            i = max(j for j, k in enumerate(kept) if not k.in_tail)
        else:
            i = min(j for j, k in enumerate(kept) if k.in_tail)
        removed += max(kept.pop(i).tokens, 1)
    return True


def _heads_tails(c: _Counter, segs: list, budget: int, ratio: float, truncate: bool) -> list[_Kept]:
    head_budget = budget if truncate else _math.floor(budget * ratio)
    gap_reserve = c.count(_WIDEST_GAP)
    head: list[_Kept] = []
    used = 0
    tail_from = None
    tail_budget = 0
    for i, (text, line, starts) in enumerate(segs):
        t = c.count(text)
        if used + t <= head_budget:
            head.append(_Kept(i, line, text, t, starts))
            used += t
            continue
        if truncate or not head:
            end, u = _prefix_within(c, text, head_budget - used)
            if end > 0:
                head.append(_Kept(i, line, text[:end], u, starts, cut_after=True))
                used += u
        if not truncate:
            tail_budget = max(budget - (used + gap_reserve), 0)
            tail_from = i + 1
        break
    tail: list[_Kept] = []
    if tail_from is not None and tail_budget > 0:
        tail_used = 0
        for i in range(len(segs) - 1, tail_from - 1, -1):
            text, line, starts = segs[i]
            t = c.count(text)
            if tail_used + t > tail_budget:
                if not tail:
                    start, u = _suffix_within(c, text, tail_budget)
                    if start < len(text):
                        tail.append(_Kept(i, line, text[start:], u, False, cut_before=True, in_tail=True))
                break
            tail_used += t
            tail.append(_Kept(i, line, text, t, starts, in_tail=True))
    return head + tail[::-1]


class _Errors:
    def __init__(self, c: _Counter, smart: bool, budget: int) -> None:
        self.c, self.smart, self.total_budget, self.budget = c, smart, budget, budget - budget // 4
        self.last: list[tuple[int, int, bool, str]] = []
        self.kept: list[_Kept] = []
        self.used = 0
        self.before: list[tuple[int, int, bool, str]] = []
        self.in_cont = False
        self.cont_left = self.after_left = 0
        self.exhausted = False
        self.matched = self.nofit = self.errors = self.warnings = 0

    def try_keep(self, k: _Kept, lines: int) -> bool:
        tokens = self.c.count(k.text)
        cost = tokens
        prev = self.kept[-1] if self.kept else None
        if _has_gap(prev, k, 0):
            cost += self.c.count(_gap_marker(prev, k, lines))
        if self.used + cost > self.budget:
            self.exhausted = True
            if k.is_match:
                self.nofit += 1
            return False
        self.used += cost
        k.tokens = tokens
        self.kept.append(k)
        self.before.clear()
        return True

    def push(self, seg: int, line: int, starts: bool, text: str) -> None:
        is_err = any(p in text for p in _ERROR_SPELLINGS)
        if self.smart:
            is_warn = any(p in text for p in _WARNING_SPELLINGS)
            self.warnings += int(is_warn)
            hit = is_err or is_warn or any(p in text for p in SUMMARY_PATTERNS)
        else:
            hit = is_err
        self.errors += int(is_err)
        self.matched += int(hit)
        if self.exhausted:
            if hit:
                self.nofit += 1
                self.remember(seg, line, starts, text)
            return
        if hit:
            before, self.before = self.before, []
            for s, ln, st, t in before:
                if not self.try_keep(_Kept(s, ln, t, 0, st), line):
                    self.nofit += 1
                    self.remember(seg, line, starts, text)
                    return
            if self.try_keep(_Kept(seg, line, text, 0, starts, is_match=True), line):
                self.in_cont, self.cont_left, self.after_left = True, CONTINUATION, CONTEXT_AFTER
            else:
                self.remember(seg, line, starts, text)
        elif self.in_cont and self.cont_left > 0 and text[:1] in (" ", "\t") and text.strip(" \t\r\n"):
            self.cont_left -= 1
            self.try_keep(_Kept(seg, line, text, 0, starts), line)
        else:
            self.in_cont = False
            if self.after_left > 0:
                self.after_left -= 1
                self.try_keep(_Kept(seg, line, text, 0, starts), line)
            else:
                self.before.append((seg, line, starts, text))
                if len(self.before) > CONTEXT_BEFORE:
                    self.before.pop(0)

    def remember(self, seg: int, line: int, starts: bool, text: str) -> None:
        self.last.append((seg, line, starts, text))
        if len(self.last) > LAST_HITS:
            self.last.pop(0)

    def finish(self) -> None:
        gap = self.c.count(_WIDEST_GAP)
        room = max(self.total_budget - self.used, 0)
        counts = [self.c.count(t) for _, _, _, t in self.last]
        used = take = 0
        for t in reversed(counts):
            if used + t + gap > room:
                break
            used += t + gap
            take += 1
        for (seg, line, starts, text), t in list(zip(self.last, counts))[len(self.last) - take :]:
            self.kept.append(_Kept(seg, line, text, t, starts, is_match=True))
            self.nofit -= 1
        self.last = []
        self.used += used


def _verbatim(s: str, line: int) -> tuple[str, bool, int]:
    return (s, True, line) if s.endswith("\n") else (s + "\n", False, line)


def _transform(kind: str, segs: list) -> list[tuple[str, bool, int]]:
    """The summary lines of a diff, git log, grep output or listing (summary.rs)."""
    items: list[tuple[str, bool, int]] = []
    last = 0
    in_hunk, added, deleted = False, 0, 0
    expect_subject = False
    key: str | None = None
    count = 0
    shown: list = []
    entries: list[str] = []
    ls_recursive = False

    def close_hunk():
        nonlocal in_hunk, added, deleted
        if in_hunk:
            items.append((f"    (+{added} -{deleted} lines)\n", False, last))
            in_hunk, added, deleted = False, 0, 0

    def flush_grep():
        nonlocal key, count, shown
        if key is not None:
            line = shown[0][2] if shown else last
            items.append((f"{key}: {count} matches\n", False, line))
            items.extend(shown)
            shown = []
            if count > 3:
                items.append((f"  ... {count - 3} more matches in {key}\n", False, last))
            count = 0
            key = None

    def flush_listing():
        nonlocal key, count, entries
        if key is not None:
            text = f"{key}/ ({count} entries): {', '.join(entries)}"
            if count > 5:
                text += f", ... +{count - 5} more"
            items.append((text + "\n", False, last))
            entries = []
            count = 0
            key = None

    def add_entry(name: str):
        nonlocal count
        count += 1
        if len(entries) < 5:
            entries.append(name)

    for s, line, starts in segs:
        if not starts:
            continue
        last = line
        if kind == "diff":
            if s.startswith("diff --git ") or (not in_hunk and s.startswith(_DIFF_HEADERS)):
                close_hunk()
                items.append(_verbatim(s, line))
            elif s.startswith("@@"):
                close_hunk()
                items.append(_verbatim(s, line))
                in_hunk = True
            elif in_hunk:
                if s.startswith("+"):
                    added += 1
                elif s.startswith("-"):
                    deleted += 1
            else:
                items.append(_verbatim(s, line))
        elif kind == "git_log":
            if s.startswith("commit "):
                items.append(_verbatim(s, line))
                expect_subject = True
            elif expect_subject and s[:1] in (" ", "\t") and s.strip(" \t\r\n"):
                items.append(_verbatim(s, line))
                expect_subject = False
        elif kind == "grep":
            k = grep_key(s)
            if k is None:
                flush_grep()
                if s.strip(" \t\r\n") != "--":
                    items.append(_verbatim(s, line))
            else:
                if key != k:
                    flush_grep()
                    key = k
                count += 1
                if count <= 3:
                    shown.append(_verbatim(s, line))
        else:  # listing
            name = s.rstrip("\n\r")
            if name.endswith(":") and " " not in name and "\t" not in name:
                flush_listing()
                key = name[:-1]
                ls_recursive = True
            elif not name:
                if ls_recursive:
                    flush_listing()
                    ls_recursive = False
            elif ls_recursive:
                if key is None:
                    key = "."
                add_entry(name)
            else:
                i = name.rfind("/")
                k, base = (name[:i], name[i + 1 :]) if i >= 0 else (".", name)
                if key != k:
                    flush_listing()
                    key = k
                add_entry(base)
    if kind == "diff":
        close_hunk()
    elif kind == "grep":
        flush_grep()
    elif kind == "listing":
        flush_listing()
    return items


class _JsonObject(list):
    pass


class _JsonNumber(str):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_cut(s: str) -> str:
    return json.dumps(s[:60] + "..." if len(s) > 60 else s, ensure_ascii=False)


def _json_render(node: Any, depth: int, out: list[str]) -> None:
    ind = "  "
    if isinstance(node, _JsonNumber):
        out[-1] += node
    elif node is True or node is False or node is None:
        out[-1] += {True: "true", False: "false", None: "null"}[node]
    elif isinstance(node, str):
        out[-1] += _json_cut(node)
    elif isinstance(node, _JsonObject):
        n = len(node)
        if n == 0:
            out[-1] += "{}"
        elif depth >= 6:
            out[-1] += f"{{... {n} keys}}"
        else:
            out[-1] += "{"
            for k, v in node[:20]:
                out.append(f"{ind * (depth + 1)}{_json_cut(k)}: ")
                _json_render(v, depth + 1, out)
            if n > 20:
                out.append(f"{ind * (depth + 1)}... {n - 20} more keys")
            out.append(ind * depth + "}")
    else:
        n = len(node)
        if n == 0:
            out[-1] += "[]"
        elif depth >= 6:
            out[-1] += f"[... {n} items]"
        else:
            out[-1] += "["
            for v in node[:3]:
                out.append(ind * (depth + 1))
                _json_render(v, depth + 1, out)
            if n > 3:
                out.append(f"{ind * (depth + 1)}... {n - 3} more items ({n} in all)")
            out.append(ind * depth + "]")


def json_shape(text: str) -> list[tuple[str, bool, int]] | None:
    """The shape of a JSON document as summary lines, or None (summary.rs)."""
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_JsonObject,
            parse_int=_JsonNumber,
            parse_float=_JsonNumber,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError):
        return None
    stack = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > 200:
            return None
        if isinstance(node, str) and not isinstance(node, _JsonNumber) and _has_surrogate(node):
            return None
        if isinstance(node, _JsonObject):
            for k, v in node:
                if _has_surrogate(k):
                    return None
                stack.append((v, depth + 1))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    out = [""]
    _json_render(doc, 0, out)
    return [(line + "\n", False, 0) for line in out]


def _has_surrogate(s: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in s)


def _finish_summary(c, limit, ratio, note, kind, items, lines, nbytes, tokens) -> tuple:
    label = f"smart_summary ({kind})"
    widest = _summary_closing(label, _WIDEST, _WIDEST, _WIDEST, None if tokens is None else _WIDEST, note)
    budget = max(limit - c.count("\n" + _summary_gap(_WIDEST) + widest), 0)
    counts = [c.count(t) for t, _, _ in items]
    if sum(counts) <= budget:
        kept = [(i, False) for i in range(len(items))]
    else:
        head_budget = _math.floor(budget * ratio)
        used, head_end = 0, 0
        while head_end < len(items) and used + counts[head_end] <= head_budget:
            used += counts[head_end]
            head_end += 1
        kept = [(i, False) for i in range(head_end)]
        tail_budget = max(budget - (used + c.count(_summary_gap(_WIDEST))), 0)
        tail_used, start = 0, len(items)
        while start > head_end and tail_used + counts[start - 1] <= tail_budget:
            tail_used += counts[start - 1]
            start -= 1
        kept += [(i, True) for i in range(start, len(items))]

    def render(kept):
        out, prev = [], None
        distinct, last_line, kept_bytes = 0, None, 0
        for i, _ in kept:
            if (i > 0) if prev is None else (prev + 1 < i):
                out.append(_summary_gap(i - (0 if prev is None else prev + 1)))
            text, verbatim, line = items[i]
            out.append(text)
            if verbatim:
                kept_bytes += _nbytes(text)
                if last_line != line:
                    distinct += 1
                    last_line = line
            prev = i
        after = 0 if prev is None else prev + 1
        if after < len(items):
            out.append(_summary_gap(len(items) - after))
        out.append(_summary_closing(label, lines, nbytes, len(kept), tokens, note))
        return "".join(out), lines - distinct, nbytes - kept_bytes

    while True:
        text, lines_dropped, bytes_dropped = render(kept)
        n = c.count(text)
        if n <= limit:
            return (text, "smart_summary", kind, tokens, n, lines, lines_dropped, nbytes, bytes_dropped, 0, 0)
        if not kept:
            text = _short_closing(label, lines)
            n = c.count(text)
            if n > limit:
                text, n = "", 0
            return (text, "smart_summary", kind, tokens, n, lines, lines, nbytes, nbytes, 0, 0)
        removed = 0
        while removed < n - limit and kept:
            head = sum(counts[i] for i, t in kept if not t)
            tail = sum(counts[i] for i, t in kept if t)
            if head >= tail and head > 0:
                j = max(j for j, (_, t) in enumerate(kept) if not t)
            else:
                j = min(j for j, (_, t) in enumerate(kept) if t)
            removed += max(counts[kept.pop(j)[0]], 1)


def narrow_text(
    text: str,
    mode: str,
    max_tokens: int,
    *,
    encoding: Any = None,
    head_ratio: float = 0.4,
    count_all_max_bytes: int = 0,
    note: str | None = None,
) -> tuple:
    """``tokensieve._core.narrow_text`` in pure Python: the same tuple, the same text.

    Example:
        >>> from tokensieve import baseline, _core
        >>> log = "".join(f"step {i}\\n" for i in range(3000))
        >>> baseline.narrow_text(log, "heads_tails", 100) == _core.narrow_text(log, "heads_tails", 100)
        True
    """
    if mode not in NARROW_MODES:
        raise ConfigurationError(f"unknown narrowing mode {mode!r}; modes: {', '.join(NARROW_MODES)}")
    if not 0.0 <= head_ratio <= 1.0:
        raise ConfigurationError(f"invalid configuration: head_ratio must be in [0, 1], got {head_ratio}")
    if not isinstance(text, str):
        raise InputTypeError(f"text: expected str, got {type(text).__name__}")
    if _has_surrogate(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    c = _narrow_counter(encoding)
    kind = detect_kind(_detect_prefix(text))
    nbytes = _nbytes(text)
    nlines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)

    def unchanged(n: int) -> tuple:
        return (None, "full", kind, n, n, nlines, 0, nbytes, 0, 0, 0)

    if mode == "full":
        return unchanged(c.count(text))
    total = None
    if nbytes <= count_all_max_bytes:
        total = c.count(text)
        if total <= max_tokens:
            return unchanged(total)
    elif nbytes <= max_tokens * c.max_token_len:
        n = c.count(text)
        if n <= max_tokens:
            return unchanged(n)
    segs = _segments(text)
    lines = sum(1 for _, _, starts in segs if starts)
    widest_tokens = _WIDEST if count_all_max_bytes > 0 else None
    limit = max_tokens

    def heads_tails() -> tuple:
        label = "truncated" if mode == "truncated" else "heads_tails"
        reserve = c.count(_WIDEST_GAP + _closing(label, _WIDEST, _WIDEST, _WIDEST, _WIDEST, widest_tokens, None, None, note))
        kept = _heads_tails(c, segs, max(limit - reserve, 0), head_ratio, mode == "truncated")

        def closing_of(ld, bd):
            return _closing(label, ld, lines, bd, nbytes, total, None, None, note)

        def render(k):
            return _render_lines(k, len(segs), lines, nbytes, closing_of)

        if mode == "truncated":
            trim = lambda k, e: _trim_last(k, e, [0])  # noqa: E731
        else:
            trim = _trim_heads_tails
        out, n, ld, bd = _fit(c, limit, kept, render, trim, lambda: _short_closing(label, lines))
        if not kept:
            ld, bd = lines, nbytes
        return (out, label, kind, total, n, lines, ld, nbytes, bd, 0, 0)

    smart = mode == "smart_summary"
    if mode == "errors_only" or (smart and kind in LOG_KINDS):
        label = f"smart_summary ({kind})" if smart else "errors_only"
        counts_widest = (_WIDEST, _WIDEST) if smart else None
        reserve = c.count(_WIDEST_GAP + _closing(label, _WIDEST, _WIDEST, _WIDEST, _WIDEST, widest_tokens, _WIDEST, counts_widest, note))
        errs = _Errors(c, smart, max(limit - reserve, 0))
        for i, (seg, line, starts) in enumerate(segs):
            errs.push(i, line, starts, seg)
        if errs.matched > 0:
            errs.finish()
            nofit = [errs.nofit]
            counts = (errs.errors, errs.warnings) if smart else None

            def closing_of(ld, bd):
                return _closing(label, ld, lines, bd, nbytes, total, nofit[0], counts, note)

            kept = errs.kept
            out, n, ld, bd = _fit(
                c,
                limit,
                kept,
                lambda k: _render_lines(k, len(segs), lines, nbytes, closing_of),
                lambda k, e: _trim_last(k, e, nofit),
                lambda: _short_closing(label, lines),
            )
            if not kept:
                ld, bd = lines, nbytes
            return (out, mode, kind, total, n, lines, ld, nbytes, bd, errs.errors, nofit[0])
        return heads_tails()
    if smart and kind in ("diff", "git_log", "grep", "listing"):
        return _finish_summary(c, limit, head_ratio, note, kind, _transform(kind, segs), lines, nbytes, total)
    if smart and kind == "json" and nbytes <= JSON_MAX_BYTES:
        items = json_shape(text)
        if items is not None:
            return _finish_summary(c, limit, head_ratio, note, kind, items, lines, nbytes, total)
    return heads_tails()
