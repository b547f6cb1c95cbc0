"""``compact_history``: keep a history inside its token budget without breaking it.

The work is done by the Rust core in one call per history (read the messages, count
them through the content cache without the GIL, window and repair, rebuild); this module
only resolves the configuration and wraps the report. The algorithm is specified in
``docs/compaction.md``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from tokensieve import _core
from tokensieve.errors import ConfigurationError, InputTypeError, InvalidMessageError, _format_argument
from tokensieve.config import BudgetConfig, BudgetOverrides, resolve_config

if TYPE_CHECKING:  # numpy is imported by the first call that returns an array, not by `import tokensieve`
    import sys

    import numpy as np
    import numpy.typing as npt

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__all__ = [
    "REPLY_PRIMING_TOKENS",
    "Api",
    "CompactionResult",
    "StepReport",
    "Compactor",
    "compact_history",
    "compact_history_async",
    "count_history_tokens",
    "count_request_tokens",
    "count_tools_tokens",
    "is_summary_text",
    "summary_room",
]

M = TypeVar("M")
Format = Literal["pydantic-ai", "openai", "responses", "anthropic"]
#: The API a request goes to: OpenAI chat completions, OpenAI Responses, Anthropic
#: Messages, or a pydantic-ai model (which maps settings and tools per provider itself).
Api = Literal["chat", "responses", "anthropic", "pydantic-ai"]
APIS: tuple[str, ...] = ("chat", "responses", "anthropic", "pydantic-ai")
_API_OF_FORMAT: dict[str, Api] = {
    "openai": "chat",
    "responses": "responses",
    "anthropic": "anthropic",
    "pydantic-ai": "pydantic-ai",
}
#: Every reply is primed with ``<|start|>assistant<|message|>``: the 3 tokens OpenAI's
#: published recipe ("How to count tokens with tiktoken") adds to every request.
REPLY_PRIMING_TOKENS = 3


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one step of the compaction pipeline did (see ``docs/strategies.md``).

    Attributes:
        step: ``"mask"``, ``"prune"``, ``"summary"`` or ``"window"``.
        tokens_saved: tokens the step took off the history it was given.
        items: what it touched: results masked, parts pruned, messages the window dropped.

    Example:
        >>> from tokensieve import StepReport
        >>> StepReport("mask", 1_200, 3).tokens_saved
        1200
    """

    step: str
    tokens_saved: int
    items: int


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What :meth:`Compactor.compact` did.

    Attributes:
        messages: the history to send: the caller's own message objects where untouched,
            new objects of the same type where parts were removed.
        action: ``"compacted"`` if the window dropped messages, else ``"none"`` (pairing
            repairs may still have happened: see ``orphans_removed``, ``calls_repaired``).
        tokens_before: tokens of the input (plus ``reserved_tokens``).
        tokens_after: tokens of ``messages`` (plus ``reserved_tokens``).
        messages_before: number of input messages.
        messages_after: number of output messages.
        exchanges_kept: exchanges (model responses with the requests that led to them) in
            the output.
        dropped: indices of the input messages that are not in the output.
        orphans_removed: tool results removed because their call was gone (a total: the
            input's own defects and the pairs the window cut).
        calls_repaired: tool calls removed (or stubbed) because their result was gone (a
            total, like ``orphans_removed``).
        input_defects_repaired: of those two totals, the defects of the input itself
            (results answering no call, calls never answered): what a repair of the whole
            input, without any window, makes too.
        pairs_cut_by_window: of those two totals, the call/result pairs valid in the input
            that the window separated (one side cut away with its exchange, the other then
            removed or stubbed): routine when compacting, not a sign of a broken input.
            ``orphans_removed + calls_repaired == input_defects_repaired + pairs_cut_by_window``.
        per_message_tokens: tokens of each input message, as counted.
        format: the history format that was read.
        steps: the pipeline's steps that ran, in order, with the tokens each saved
            (empty under the compaction threshold).
        target_input_tokens: the target the compaction aimed for.
        unchanged_prefix: how many leading messages of the output are the input's own
            first messages, unchanged: the prefix a provider's prompt cache can reuse
            (all of them when nothing changed).
    """

    messages: list[Any]
    action: Literal["none", "compacted"]
    tokens_before: int
    tokens_after: int
    messages_before: int
    messages_after: int
    exchanges_kept: int
    dropped: tuple[int, ...]
    orphans_removed: int
    calls_repaired: int
    input_defects_repaired: int
    pairs_cut_by_window: int
    per_message_tokens: npt.NDArray[np.int64]
    format: Format
    steps: tuple[StepReport, ...] = ()
    target_input_tokens: int | None = None
    unchanged_prefix: int = 0

    @property
    def tokens_saved(self) -> int:
        """``tokens_before - tokens_after``."""
        return self.tokens_before - self.tokens_after

    @property
    def effective(self) -> bool:
        """Whether the result is at or under the target (or nothing had to be done).

        A compaction that ran and still left the history over ``target_input_tokens`` is
        ineffective: compacting again will not help (see :class:`Compactor`)."""
        return self.action == "none" or self.target_input_tokens is None or self.tokens_after <= self.target_input_tokens


class _Deferred:
    """A field's value not made yet: ``make()`` makes it (see :class:`_OnFirstRead`)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


_DEFERRED_LOCK = threading.Lock()


class _OnFirstRead:
    """A field of :class:`CompactionResult` made when first read (wraps its slot).

    The core hands ``per_message_tokens`` over as the bytes of an int64 array and
    ``dropped`` as runs of indices; the numpy array and the tuple of ints are made the
    first time the field is read, and kept in the slot. So a compaction imports no numpy
    (~85 ms, the first time in a process: ``compact_history`` returns the messages
    only) and makes no tuple of thousands of ints that nobody reads. Read, a field is
    what it always was: the same type and values, the same object on every read.
    """

    __slots__ = ("slot",)

    def __init__(self, slot: Any) -> None:
        self.slot = slot

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self.slot
        value = self.slot.__get__(obj, owner)
        if type(value) is _Deferred:
            made = value.make()  # outside the lock: the first may import numpy
            with _DEFERRED_LOCK:  # two threads reading at once get the same object
                value = self.slot.__get__(obj, owner)
                if type(value) is _Deferred:
                    self.slot.__set__(obj, made)
                    value = made
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        self.slot.__set__(obj, value)

    def __delete__(self, obj: Any) -> None:
        self.slot.__delete__(obj)


for _name in ("per_message_tokens", "dropped"):
    setattr(CompactionResult, _name, _OnFirstRead(CompactionResult.__dict__[_name]))


def _int64_array(data: bytearray) -> npt.NDArray[np.int64]:
    import numpy as np

    return np.frombuffer(data, dtype=np.int64)


class _Runs(Sequence[int]):
    """Ascending indices as the core hands them over: ``(start, stop)`` runs."""

    __slots__ = ("runs", "n")

    def __init__(self, runs: list[tuple[int, int]]) -> None:
        self.runs = runs
        self.n = sum(stop - start for start, stop in runs)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        for start, stop in self.runs:
            yield from range(start, stop)

    def __getitem__(self, i: int) -> int:  # type: ignore[override]  # ints only, no slices
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        for start, stop in self.runs:
            if i < stop - start:
                return start + i
            i -= stop - start
        raise IndexError(i)

    def tuple(self) -> tuple[int, ...]:
        return tuple(self)


#: Writes the summary of the messages the window drops: called with those messages (the
#: caller's own objects, in order) and the history's format; returns the text, or None
#: for no summary. ``tokensieve.summarize`` provides the extractive and model summarizers;
#: without one, the pipeline uses a shared :class:`~tokensieve.summarize.ExtractiveSummarizer`.
SummaryFunction = Callable[[list[Any], str], "str | None"]

#: How an inserted summary begins when its text does not say what it is already: a reader
#: (and a later compaction) can tell it apart.
SUMMARY_MARK = "[tokensieve summary of {n} earlier messages]"
#: The first line of a summary the pipeline wrote: this mark, or the header of a summary of
#: ``tokensieve.summarize`` (extractive or written by a model).
_SUMMARY_LINE = re.compile(
    r"\[(?:tokensieve summary of \d+ earlier messages?"
    r"|Summary of \d+ earlier messages?, (?:extracted by tokensieve|written by a model))\]"
)
#: The largest share of ``target_input_tokens`` a summary may take: its room is taken from
#: the target (the window gets the rest), so a large ``summary.max_tokens`` against a small
#: target cannot crowd the recent exchanges out.
SUMMARY_TARGET_SHARE = 0.1
#: Where an earlier summary can be: among the first messages (after the system prompt,
#: after pydantic-ai's first request, in Anthropic's first user message).
_SUMMARY_SCAN = 4


def is_summary_text(text: Any) -> bool:
    """Whether ``text`` is a summary the compaction pipeline inserted (by its first line).

    Example:
        >>> from tokensieve.compaction import is_summary_text
        >>> is_summary_text("[Summary of 12 earlier messages, extracted by tokensieve]\\n## Task")
        True
        >>> is_summary_text("Summarize this file")
        False
    """
    return type(text) is str and _SUMMARY_LINE.match(text) is not None


def summary_room(config: BudgetConfig) -> int:
    """Tokens reserved for the summary out of ``target_input_tokens``: ``summary.max_tokens``,
    at most :data:`SUMMARY_TARGET_SHARE` of the target; 0 when the summary is off.

    Example:
        >>> from tokensieve import BudgetConfig
        >>> from tokensieve.compaction import summary_room
        >>> summary_room(BudgetConfig()), summary_room(BudgetConfig(target_input_tokens=1_000))
        (1000, 100)
    """
    summary = config.context.summary
    if not summary.enabled:
        return 0
    return max(0, min(summary.max_tokens, int(config.target_input_tokens * SUMMARY_TARGET_SHARE)))


@dataclass(slots=True)
class _Found:
    """A summary met in the history: where, its text, its tokens (what it adds to its message)."""

    index: int
    text: str
    tokens: int


def _text_block_at(content: Any) -> int | None:
    """The index of the summary's text block in an Anthropic content list, if any."""
    if type(content) is not list:
        return None
    for k, block in enumerate(content):
        if type(block) is dict and block.get("type") == "text" and is_summary_text(block.get("text")):
            return k
    return None


def _count_each(messages: list[Any], fmt: str, encoding: str) -> list[int]:
    """Each message's tokens as it counts inside a history: a pydantic-ai request's
    ``instructions`` count only on the history's last request, so they are left out here
    (the messages compared share them)."""
    if fmt == "pydantic-ai":
        messages = [
            dataclasses.replace(m, instructions=None) if getattr(m, "kind", None) == "request" and getattr(m, "instructions", None) is not None else m
            for m in messages
        ]
    return _core._history_tokens(messages, encoding=encoding, format=fmt)


def _compaction_part_at(message: Any) -> int | None:
    """The index of the summary's ``CompactionPart`` in a pydantic-ai request, if any."""
    if getattr(message, "kind", None) != "request":
        return None
    for k, part in enumerate(message.parts):
        if getattr(part, "part_kind", None) == "compaction" and is_summary_text(getattr(part, "content", None)):
            return k
    return None


def _find_summary(messages: Sequence[Any], fmt: str, encoding: str) -> _Found | None:
    """A summary the pipeline inserted earlier, among the first messages (never raises)."""
    try:
        n = len(messages)
        for i in range(min(n, _SUMMARY_SCAN)):
            m = _item(messages, i)
            if fmt == "pydantic-ai":
                k = _compaction_part_at(m)
                if k is not None:
                    parts = list(m.parts)
                    text = parts[k].content
                    without = dataclasses.replace(m, parts=parts[:k] + parts[k + 1 :])
                    both = _count_each([m, without], fmt, encoding)
                    return _Found(i, text, both[0] - both[1])
            elif type(m) is dict:
                role = m.get("role")
                if fmt == "anthropic":
                    if role != "user":
                        continue
                    k = _text_block_at(m.get("content"))
                    if k is not None:
                        content = m["content"]
                        text = content[k]["text"]
                        without = {**m, "content": content[:k] + content[k + 1 :]}
                        pair = _count_each([m, without], fmt, encoding)
                        return _Found(i, text, pair[0] - pair[1])
                    continue
                if role in ("system", "developer") and is_summary_text(m.get("content")):
                    cost = _core._history_tokens([m], encoding=encoding, format=fmt, total=True)
                    return _Found(i, m["content"], cost)
    except Exception:  # an object that cannot be read: no earlier summary is used
        return None
    return None


def _summary_body(text: str, n: int) -> str:
    return text if is_summary_text(text) else SUMMARY_MARK.format(n=n) + "\n" + text


@dataclass(frozen=True, slots=True)
class _Pair:
    """Two messages a placed summary merged into one."""

    first: Any
    second: Any


def _merged_requests(out: list[Any], at: int, part: Any = None) -> tuple[list[Any], Any, Any] | None:
    """When ``out[at]`` (the request holding the summary, or one trimmed to its system
    prompts) is followed by another request, the two merged (with ``part`` added), as
    pydantic-ai would merge them when sending: ``(out, merged, _Pair(first, second))``."""
    if at + 1 >= len(out) or getattr(out[at], "kind", None) != "request" or getattr(out[at + 1], "kind", None) != "request":
        return None
    first, second = out[at], out[at + 1]
    # The first's parts (system prompts, the summary) before the second's (its prompt: a
    # window opens on a request whose results lost their calls, so it holds none).
    message = dataclasses.replace(second, parts=[*first.parts, *([part] if part is not None else []), *second.parts])
    return [*out[:at], message, *out[at + 2 :]], message, _Pair(first, second)


def _place_summary(out: list[Any], body: str, fmt: str, at: int | None) -> tuple[list[Any], Any, Any] | None:
    """``out`` with the summary ``body``: replacing the one at ``out[at]`` (updated in place,
    never a second one), else inserted where the format expects it; with the message that
    holds it and the message it replaced (None when inserted). None if the format offers
    no place (an empty history, an Anthropic history without a user message).

    pydantic-ai: a ``CompactionPart`` (a summary the framework sends as user-voice text;
    pydantic-ai's own harness does the same) in the first request, after its system
    prompts and tool results, before the user's prompt. OpenAI chat and Responses: a ``system`` / ``developer`` message after the
    leading system messages. Anthropic (no system role in messages, user first, tool
    results first in a user turn): a text block in the first user message, after its
    ``tool_result`` blocks and before the user's own text.
    """
    if not out:
        return None
    if fmt == "pydantic-ai":
        from pydantic_ai.messages import CompactionPart, ModelRequest

        if at is not None:
            old = out[at]
            parts = list(old.parts)
            k = _compaction_part_at(old)
            parts[k] = dataclasses.replace(parts[k], content=body)  # type: ignore[index]
            message: Any = dataclasses.replace(old, parts=parts)
            out = [*out[:at], message, *out[at + 1 :]]
            merged = _merged_requests(out, at)
            if merged is not None:
                return merged[0], merged[1], _Pair(old, out[at + 1])
            return out, message, old
        merged = _merged_requests(out, 0, CompactionPart(content=body))
        if merged is not None:
            return merged
        part = CompactionPart(content=body)
        if getattr(out[0], "kind", None) != "request":
            message = ModelRequest(parts=[part])
            return [message, *out], message, None
        # In the first request (pydantic-ai would merge a request of its own into it),
        # after its system prompts and tool results, before the user's prompt.
        first = out[0]
        parts = list(first.parts)
        k = 0
        while k < len(parts) and getattr(parts[k], "part_kind", None) in ("system-prompt", "tool-return", "retry-prompt"):
            k += 1
        message = dataclasses.replace(first, parts=[*parts[:k], part, *parts[k:]])
        return [message, *out[1:]], message, first
    if fmt == "anthropic":
        block = {"type": "text", "text": body}
        if at is not None:
            old = out[at]
            content = list(old["content"])
            content[_text_block_at(content)] = block  # type: ignore[index]
            message = {**old, "content": content}
            return [*out[:at], message, *out[at + 1 :]], message, old
        user = next((k for k, m in enumerate(out) if type(m) is dict and m.get("role") == "user"), None)
        if user is None:
            return None
        first = out[user]
        content = first.get("content")
        # A string content becomes a text block (none if empty: Anthropic refuses empty text).
        blocks = ([{"type": "text", "text": content}] if content else []) if isinstance(content, str) else list(content or [])
        results = 0
        while results < len(blocks) and type(blocks[results]) is dict and blocks[results].get("type") == "tool_result":
            results += 1
        holder = {**first, "content": [*blocks[:results], block, *blocks[results:]]}
        return [*out[:user], holder, *out[user + 1 :]], holder, first
    role = "system" if fmt == "openai" else "developer"
    if at is not None:
        message = {**out[at], "content": body}
        return [*out[:at], message, *out[at + 1 :]], message, out[at]
    message = {"role": role, "content": body}
    first = 0
    while first < len(out) and type(out[first]) is dict and out[first].get("role") in ("system", "developer"):
        first += 1
    return [*out[:first], message, *out[first:]], message, None


class _SummaryJob:
    """The summary a compaction writes, between the window and the result.

    Made before the window (:meth:`plan`: the room taken from the target, the summary met
    in the history); :meth:`inputs` says what to summarize once the window has run, and
    :meth:`apply` places the text. Every failure to read or place a summary skips it: the
    compaction goes on as without a summary, never raising for it. Used by
    :class:`Compactor` and mirrored by ``tokensieve.baseline.compact``.
    """

    __slots__ = ("config", "encoding", "fmt", "found", "room", "window_target")

    def __init__(self, config: BudgetConfig, room: int, found: _Found | None, fmt: str) -> None:
        self.config = config
        self.encoding = config.encoding
        self.room = room
        self.found = found
        self.fmt = fmt
        # The window gets the target minus the summary's room (an earlier summary in the
        # history is counted with the messages already: only the rest of the room is taken).
        taken = max(room - (found.tokens if found is not None else 0), 0)
        self.window_target = max(config.target_input_tokens - taken, 0)

    @classmethod
    def plan(cls, config: BudgetConfig, messages: Sequence[Any], fmt: str | None) -> _SummaryJob | None:
        room = summary_room(config)
        if room <= 0:
            return None
        try:
            fmt = fmt or _detect_format(messages)
        except Exception:  # the core reads the messages and says what is wrong with them
            fmt = "openai"
        return cls(config, room, _find_summary(messages, fmt, config.encoding), fmt)

    def window_config(self, config: BudgetConfig) -> BudgetConfig:
        """``config`` with the window's target."""
        if self.window_target == config.target_input_tokens:
            return config
        return config.replace(target_input_tokens=self.window_target)

    def inputs(
        self, messages: Sequence[Any], out: list[Any], dropped: Sequence[int], steps: Sequence[tuple[str, int, int]]
    ) -> tuple[list[Any], str | None] | None:
        """What to summarize, when the window dropped messages: the input's messages up
        to the last one dropped or whose output masking replaced (what masking hid: the
        summary covers it), the earlier summary excepted, and that summary's text; else
        None. Masking alone (nothing dropped) writes no summary: one placed after the
        system prompt would change with every masking batch, and the provider's prompt
        cache with it."""
        if not any(step == "window" and items for step, _, items in steps):
            return None
        try:
            n = len(messages)
            boundary = dropped[-1] + 1 if dropped else 0  # the core's indices: ascending, distinct
            if any(step == "mask" and items for step, _, items in steps):
                # The last message whose output masking replaced (masking covers what is
                # older than the last exchanges, in batches: this moves once a batch).
                # Walked from the last message down to the last one dropped: every message
                # in between is kept, input message i at out[i - len(dropped)] (the
                # dropped indices are distinct, all below the boundary).
                for i in range(min(n, len(out) + len(dropped)) - 1, boundary - 1, -1):
                    j = i - len(dropped)
                    if out[j] is not _item(messages, i) and _holds_placeholder(out[j], self.fmt):
                        boundary = i + 1
                        break
            skip = self.found.index if self.found is not None else -1
            if type(messages) is list or type(messages) is tuple:
                # Sliced (an exact list or tuple: no subclass's own methods, as ``_item``).
                chosen = list(messages[:boundary])
                if 0 <= skip < boundary:
                    del chosen[skip]
            else:
                chosen = [_item(messages, i) for i in range(boundary) if i != skip]
        except Exception:
            return None
        return chosen, (self.found.text if self.found is not None else None)

    def cap(self, before: int, after: int) -> int:
        """The summary's token cap: its room, and never more than keeps the compaction from
        adding tokens (``before``) or crossing the hard limit (an earlier summary it
        replaces frees its own tokens)."""
        was = self.found.tokens if self.found is not None else 0
        hard = int(self.config.hard_limit_tokens)
        return max(0, min(self.room, before - after + was, hard - after + was))

    def apply(self, out: list[Any], text: str | None, n: int, before: int, after: int) -> tuple[list[Any], int] | None:
        """``out`` with the summary placed, and the tokens that added; None: no summary (no
        text, no place for it, or over its room, or it would make the compaction add tokens
        or cross the hard limit: the history is never lost for want of one)."""
        if not text:
            return None
        try:
            at = None
            if self.found is not None:
                # The earlier summary, where the window kept it: updated, never doubled.
                at = next((k for k in range(min(len(out), _SUMMARY_SCAN + 1)) if _summary_at(out[k], self.fmt)), None)
            placed = _place_summary(out, _summary_body(text, n), self.fmt, at)
            if placed is None:
                return None
            placed_out, new, old = placed
            olds = [] if old is None else [old.first, old.second] if isinstance(old, _Pair) else [old]
            counts = _count_each([new, *olds], self.fmt, self.encoding)
            cost = counts[0] - sum(counts[1:])
            # What the summary itself takes: all of its message, or what it adds to one.
            was = self.found.tokens if at is not None and self.found is not None else 0
            own = cost + was
        except Exception:
            return None
        if own > self.room or after + cost > before or after + cost > self.config.hard_limit_tokens:
            return None
        return placed_out, cost


_MASKED = "[tokensieve masked the output of "


def _holds_placeholder(message: Any, fmt: str) -> bool:
    """Whether a rebuilt message holds a tool output masking replaced."""
    def masked(value: Any) -> bool:
        return type(value) is str and value.startswith(_MASKED)

    if fmt == "pydantic-ai":
        return any(masked(getattr(p, "content", None)) for p in getattr(message, "parts", ()))
    if type(message) is not dict:
        return False
    if fmt == "responses":
        return masked(message.get("output"))
    content = message.get("content")
    if fmt == "anthropic" and type(content) is list:
        return any(type(b) is dict and masked(b.get("content")) for b in content)
    return masked(content)


def _summary_at(message: Any, fmt: str) -> bool:
    try:
        if fmt == "pydantic-ai":
            return _compaction_part_at(message) is not None
        if type(message) is not dict:
            return False
        if fmt == "anthropic":
            return message.get("role") == "user" and _text_block_at(message.get("content")) is not None
        return message.get("role") in ("system", "developer") and is_summary_text(message.get("content"))
    except Exception:
        return False


_SHARED_SUMMARIZERS: dict[tuple[str, int], Any] = {}
_SHARED_LOCK = threading.Lock()


def _extractive(encoding: str, cap: int) -> Any:
    """The shared extractive summarizer of an encoding and cap (its cache is by content)."""
    key = (encoding, cap)
    with _SHARED_LOCK:
        summarizer = _SHARED_SUMMARIZERS.get(key)
        if summarizer is None:
            from tokensieve.summarize import ExtractiveSummarizer

            if len(_SHARED_SUMMARIZERS) >= 16:
                _SHARED_SUMMARIZERS.pop(next(iter(_SHARED_SUMMARIZERS)))
            summarizer = _SHARED_SUMMARIZERS[key] = ExtractiveSummarizer(BudgetConfig(encoding=encoding), max_tokens=cap)
        return summarizer


#: Message framing a summary's text is rendered within (its message's own tokens).
_SUMMARY_FRAMING = 8


def _previous_summary(text: str | None) -> Any:
    """The :class:`~tokensieve.summarize.Summary` an earlier summary's text came from (its
    facts, when this process wrote it), else one read back from its text."""
    if text is None:
        return None
    from tokensieve.summarize import Summary, remembered

    return remembered(text) or Summary(text=text, tokens=0, summarizer="extractive")


def _extractive_text(
    job: _SummaryJob, chosen: list[Any], previous_text: str | None, before: int, after: int, *, proven: bool = False
) -> str | None:
    """The extractive summary's text within the job's cap; None when it cannot be read.
    ``proven``: called right after the window's read of the history, no other code run
    between (then the messages that read proved unchanged reuse their events)."""
    cap = job.cap(before, after) - _SUMMARY_FRAMING
    if cap <= 0:
        return None
    try:
        summarizer, previous = _extractive(job.encoding, cap), _previous_summary(previous_text)
        if proven:
            summary = summarizer._summarize_proven(chosen, job.fmt, previous)
        else:
            summary = summarizer.summarize(chosen, format=job.fmt, previous=previous)
    except Exception:  # a message the summary cannot read: no summary, the compaction goes on
        return None
    return summary.text if summary.tokens <= cap else None


def _item(messages: Sequence[Any], i: int) -> Any:
    """``messages[i]`` read in place for a list or tuple (never a subclass's own methods:
    the core read them so too)."""
    if isinstance(messages, list):
        return list.__getitem__(messages, i)
    if isinstance(messages, tuple):
        return tuple.__getitem__(messages, i)
    return messages[i]


def _unchanged_prefix(messages: Sequence[Any], out: list[Any], n_input: int) -> int:
    """Leading output messages that are the input's own, in place."""
    n = 0
    while n < min(n_input, len(out)) and _item(messages, n) is out[n]:
        n += 1
    return n


class _State:
    """A compaction between the window and the summary's text."""

    __slots__ = (
        "action", "after", "before", "calls", "chosen", "config", "cut", "defects", "dropped", "dumped",
        "exchanges", "fmt", "job", "messages", "orphans", "out", "per_message", "previous", "steps",
    )

    def __init__(self, config: BudgetConfig, messages: Sequence[Any], dumped: Any, out: list[Any], report: tuple, steps: list, job: _SummaryJob | None) -> None:
        (self.action, self.before, self.after, self.exchanges, dropped, self.orphans, self.calls,
         self.defects, self.cut, self.per_message, self.fmt) = report
        self.dropped = _Runs(dropped)
        self.config, self.messages, self.dumped, self.out, self.steps, self.job = config, messages, dumped, out, steps, job
        self.chosen: list[Any] | None = None
        self.previous: str | None = None


def _call_summarizer(summarizer: SummaryFunction, state: _State) -> str | None:
    """The text of a caller's summarizer, given the messages the window dropped."""
    return summarizer([_item(state.messages, i) for i in state.dropped], state.fmt)


async def _model_text(state: _State, model: Any) -> str | None:
    """The summary written by ``model``, falling back to the extractive one."""
    from tokensieve.summarize import ModelSummarizer

    job, chosen = state.job, state.chosen
    if job is None or chosen is None:
        return None
    cap = job.cap(state.before, state.after) - _SUMMARY_FRAMING
    if cap <= 0:
        return None
    try:
        summarizer = ModelSummarizer(model, job.config, max_tokens=cap, fallback=_extractive(job.encoding, cap))
        summary = await summarizer.summarize_async(
            chosen, format=job.fmt, previous=_previous_summary(state.previous)  # type: ignore[arg-type]
        )
    except Exception:  # unreadable messages, a model that cannot be built: no summary
        return None
    if summary.tokens > cap:  # the model wrote more than its room: the extractive summary
        return _extractive_text(job, chosen, state.previous, state.before, state.after)
    return summary.text


class Compactor:
    """A compactor bound to one budget, for use before every model request.

    Args:
        config: a :class:`BudgetConfig`, a preset name such as ``"cerebras"``, or None
            for the defaults.
        **overrides: single fields to change, e.g. ``max_exchanges=6``.

    Example:
        >>> from tokensieve import Compactor
        >>> compactor = Compactor("cerebras", max_exchanges=2)
        >>> history = [
        ...     {"role": "system", "content": "You are terse."},
        ...     {"role": "user", "content": "Hi"},
        ... ]
        >>> result = compactor.compact(history)
        >>> (result.action, result.messages == history)
        ('none', True)
    """

    __slots__ = ("config", "ineffective_streak", "model", "summarizer")

    #: After this many ineffective compactions in a row, the costly steps are not retried.
    INEFFECTIVE_LIMIT = 2

    def __init__(
        self,
        config: BudgetConfig | str | None = None,
        *,
        summarizer: SummaryFunction | None = None,
        **overrides: Unpack[BudgetOverrides],
    ) -> None:
        self.config: BudgetConfig = resolve_config(config, overrides)
        #: Writes the summary of what the window drops (see :data:`SummaryFunction`);
        #: None: no summary is inserted.
        self.summarizer = summarizer
        #: Compactions in a row that ran and still left the history over its target.
        self.ineffective_streak = 0
        #: The model this compactor works for (telemetry only).
        self.model: str | None = self.config.model

    def __repr__(self) -> str:
        return f"Compactor({self.config!r})"

    @property
    def costly_steps_suspended(self) -> bool:
        """Whether the costly steps (the model summary) are off because the last
        compactions were ineffective: retrying them would loop, paying each time
        (claude-code#24179). They are retried once a compaction gets under the target."""
        return self.ineffective_streak >= self.INEFFECTIVE_LIMIT

    def _observe(self, result: CompactionResult) -> None:
        if result.effective:
            self.ineffective_streak = 0
            return
        self.ineffective_streak += 1
        if self.ineffective_streak == self.INEFFECTIVE_LIMIT:
            from tokensieve import telemetry

            telemetry.compaction_ineffective(
                attempts=self.ineffective_streak,
                tokens_after=result.tokens_after,
                target_input_tokens=result.target_input_tokens or 0,
                model=self.model,
            )

    def compact(
        self, messages: Sequence[M], *, format: Format | None = None, config: BudgetConfig | None = None
    ) -> CompactionResult:
        """Compact ``messages`` (never modified) and report what was done.

        ``config`` replaces this compactor's budget for this call (``preflight`` adds the
        request's overhead to it) while the ineffective-compaction streak is kept: after
        two compactions in a row that leave the history over its target, the costly steps
        are suspended (a ``compaction_ineffective`` telemetry event says so) until one gets
        under the target again.

        ``messages`` may also be pydantic-ai's own JSON (``ModelMessagesTypeAdapter.dump_python(...,
        mode="json")`` or a JSON file of it): a list of dicts with ``kind`` and ``parts``,
        detected or named with ``format="pydantic-ai"``. It is validated through
        pydantic-ai (which must be installed), compacted, and returned as dicts again: the
        caller's own dicts where untouched, freshly dumped ones where rebuilt.

        Raises:
            BudgetExceededError: the history is over the hard limit even when compacted.
            InvalidMessageError: a message cannot be read (its index is in the error).
            InputTypeError: ``messages`` is not a list.
        """
        state = self._window(messages, format, config)
        text = None
        if state.chosen is not None and state.job is not None:
            if self.summarizer is not None:
                text = _call_summarizer(self.summarizer, state)
            else:
                text = _extractive_text(state.job, state.chosen, state.previous, state.before, state.after, proven=True)
        return self._finish(state, text)

    async def compact_async(
        self, messages: Sequence[M], *, format: Format | None = None, config: BudgetConfig | None = None
    ) -> CompactionResult:
        """:meth:`compact` for async callers: with a ``summary.model`` configured (e.g. a
        preset's ``summary_model``), the summary is written by that model
        (:class:`~tokensieve.summarize.ModelSummarizer`, falling back to the extractive
        summary on failure or timeout); else the same result as :meth:`compact`.

        Example:
            >>> import asyncio
            >>> from tokensieve import Compactor
            >>> history = [{"role": "user", "content": "Summarize our plan."}]
            >>> asyncio.run(Compactor().compact_async(history)).action
            'none'
        """
        state = self._window(messages, format, config)
        text = None
        if state.chosen is not None and state.job is not None:
            model = state.job.config.context.summary.model
            if self.summarizer is not None:
                text = _call_summarizer(self.summarizer, state)
            elif model is not None and not self.costly_steps_suspended:
                text = await _model_text(state, model)
            else:
                text = _extractive_text(state.job, state.chosen, state.previous, state.before, state.after, proven=True)
        return self._finish(state, text)

    def _window(self, messages: Sequence[Any], format: Format | None, config: BudgetConfig | None) -> _State:
        """Every step but the summary's text: the window ran, the summary is planned."""
        config = config or self.config
        format = _format_argument(format)  # type: ignore[assignment]
        dumped = _pydantic_ai_dump(messages, format)
        if dumped is not None:
            messages = _load_pydantic_ai(dumped)
            format = "pydantic-ai"
        # A summarizer of the caller's (a model, perhaps) is a costly step: suspended after
        # ineffective compactions. The extractive summary costs no model call and stays.
        suspended = self.summarizer is not None and self.costly_steps_suspended
        job = None if suspended else _SummaryJob.plan(config, messages, format)
        core = job.window_config(config) if job is not None else config
        out, report, steps = _core.compact_history(
            messages,
            core._core_budget(),
            encoding=config.encoding,
            format=format,
            strategies=config.context._core_strategies(),
        )
        state = _State(config, messages, dumped, out, report, list(steps), job)
        if job is not None:
            job.fmt = state.fmt
            found = job.inputs(messages, out, state.dropped, steps)
            if found is not None:
                state.chosen, state.previous = found
        return state

    def _finish(self, state: _State, text: str | None) -> CompactionResult:
        out, after, steps = state.out, state.after, state.steps
        job = state.job
        if job is not None and text:
            placed = job.apply(out, text, len(state.dropped), state.before, after)
            if placed is not None:
                out, cost = placed
                after += cost
                steps = [*steps, ("summary", -cost, len(state.dropped))]
        if state.dumped is not None:
            out = _dump_pydantic_ai(out, state.messages, state.dumped)
        per_message = state.per_message  # int64s, bytes: an array when first read
        n_input = len(per_message) // 8
        result = CompactionResult(
            messages=out,
            action=state.action,
            tokens_before=state.before,
            tokens_after=after,
            messages_before=n_input,
            messages_after=len(out),
            exchanges_kept=state.exchanges,
            dropped=_Deferred(state.dropped.tuple),  # type: ignore[arg-type]
            orphans_removed=state.orphans,
            calls_repaired=state.calls,
            input_defects_repaired=state.defects,
            pairs_cut_by_window=state.cut,
            per_message_tokens=_Deferred(lambda: _int64_array(per_message)),  # type: ignore[arg-type]
            format=state.fmt,
            steps=tuple(StepReport(name, saved, items) for name, saved, items in steps),
            target_input_tokens=state.config.target_input_tokens,
            unchanged_prefix=_unchanged_prefix(
                state.dumped if state.dumped is not None else state.messages, out, n_input
            ),
        )
        self._observe(result)
        return result

    def __call__(self, messages: Sequence[M]) -> list[M]:
        """The compacted messages: makes a Compactor usable as a history processor."""
        return self.compact(messages).messages


def compact_history(
    messages: Sequence[M],
    config: BudgetConfig | str | None = None,
    *,
    format: Format | None = None,
    **overrides: Unpack[BudgetOverrides],
) -> list[M]:
    """Return ``messages`` cut down to the token budget, as a valid history.

    Call it before every model request. Below the compaction threshold the history comes
    back whole (broken tool-call pairs repaired); above it, the system prompt, the current
    task and as many recent exchanges as fit the target are kept (at most
    ``max_exchanges`` when that is set, always the last one), and every tool call stays
    with its result. The input is never modified.

    Args:
        messages: pydantic-ai ``ModelMessage`` objects, OpenAI chat-completions dicts,
            OpenAI Responses input items or Anthropic Messages dicts (detected, or named
            with ``format``).
        config: a :class:`BudgetConfig`, a preset name, or None for the defaults.
        format: ``"pydantic-ai"``, ``"openai"``, ``"responses"`` or ``"anthropic"``.
        **overrides: single :class:`BudgetConfig` fields to change.

    Returns:
        A new list of messages.

    Raises:
        BudgetExceededError: over the hard limit even when compacted.
        InvalidMessageError: a message cannot be read (its index is in the error).

    Example:
        >>> from tokensieve import compact_history
        >>> history = [{"role": "user", "content": "Summarize our plan."}]
        >>> compact_history(history, max_input_tokens=8_000, target_input_tokens=2_000) == history
        True
    """
    return Compactor(config, **overrides).compact(messages, format=format).messages


async def compact_history_async(
    messages: Sequence[M],
    config: BudgetConfig | str | None = None,
    *,
    format: Format | None = None,
    **overrides: Unpack[BudgetOverrides],
) -> list[M]:
    """:func:`compact_history` for async callers: the same result, awaited.

    The steps that need no model run inline (they are fast and release the GIL while
    they work); with a ``summary.model`` in the config (a preset's ``summary_model``) the
    summary of what the window drops is written by that model and awaited here
    (:class:`~tokensieve.summarize.ModelSummarizer`, falling back to the extractive
    summary on failure or timeout); without one, the same result as :func:`compact_history`.

    Example:
        >>> import asyncio
        >>> from tokensieve.compaction import compact_history_async
        >>> history = [{"role": "user", "content": "Summarize our plan."}]
        >>> asyncio.run(compact_history_async(history, max_input_tokens=8_000, target_input_tokens=2_000)) == history
        True
    """
    result = await Compactor(config, **overrides).compact_async(messages, format=format)
    return result.messages


def count_history_tokens(
    messages: Sequence[Any], encoding: str | None = None, *, format: Format | None = None
) -> npt.NDArray[np.int64]:
    """Tokens of each message, exactly as the compactor counts them.

    Example:
        >>> from tokensieve import count_history_tokens
        >>> count_history_tokens([{"role": "user", "content": "Hello, world!"}]).tolist()
        [8]
    """
    format = _format_argument(format)  # type: ignore[assignment]
    dumped = _pydantic_ai_dump(messages, format)
    if dumped is not None:
        messages, format = _load_pydantic_ai(dumped), "pydantic-ai"
    return _core.count_history_tokens(messages, encoding=encoding, format=format)


def count_request_tokens(
    messages: Sequence[Any],
    *,
    tools: Sequence[Any] | None = None,
    format: Format | None = None,
    encoding: str | None = None,
    api: Api | None = None,
) -> int:
    """Input tokens of a whole request: the messages, the reply priming and the tools.

    The messages are counted as :func:`count_history_tokens` counts them (3 tokens of
    framing and 1 for the role per message, plus a chat message's ``name`` and 1 token for
    it), plus the :data:`REPLY_PRIMING_TOKENS` (3) every request carries: the numbers of
    OpenAI's published recipe ("How to count tokens with tiktoken"), exact for the
    messages. The other families count with their chat template's own numbers
    (``Encoding.message_overhead`` and ``Encoding.reply_priming``). ``tools`` are counted as :func:`count_tools_tokens` renders them for
    ``api``; how a provider renders tool schemas inside its prompt is not public, so that
    part is an estimate (the compact JSON of what is sent).

    Args:
        messages: the history, in any supported format (pydantic-ai JSON dumps too).
        tools: tool definitions: dicts as an API receives them (chat completions
            ``{"type": "function", "function": {...}}``, Responses
            ``{"type": "function", "name": ...}``, Anthropic ``{"name", "description",
            "input_schema"}``), plain ``{"name", "description", "parameters"}`` dicts, or
            pydantic-ai ``ToolDefinition`` objects.
        format: the history format, if not to be detected.
        encoding: ``"o200k_base"`` (the default) or ``"cl100k_base"``.
        api: the API the request goes to (``"chat"``, ``"responses"``, ``"anthropic"``,
            ``"pydantic-ai"``); by default the one of the history's format.

    Example:
        >>> from tokensieve import count_request_tokens
        >>> history = [
        ...     {"role": "system", "content": "You are a helpful assistant."},
        ...     {"role": "user", "content": "What is the capital of France?"},
        ...     {"role": "assistant", "content": "Paris."},
        ... ]
        >>> count_request_tokens(history)
        30
        >>> weather = {"name": "get_weather", "description": "Weather of a city.",
        ...            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
        >>> count_request_tokens(history, tools=[weather]) > 30
        True
    """
    format = _format_argument(format)  # type: ignore[assignment]
    dumped = _pydantic_ai_dump(messages, format)
    if dumped is not None:
        messages, format = _load_pydantic_ai(dumped), "pydantic-ai"
    history = _core._history_tokens(messages, encoding=encoding, format=format, total=True)
    # The family's own priming (Llama 3: 5, harmony: 2, ChatML: 3), OpenAI's 3 by default.
    priming = REPLY_PRIMING_TOKENS if encoding is None else _core.get_encoding(encoding).reply_priming
    total = history + priming
    detected = format or _detect_format(messages)
    if detected == "openai":
        total += _name_tokens(messages, encoding)
    if tools:
        total += count_tools_tokens(tools, api=api or _API_OF_FORMAT.get(detected, "chat"), encoding=encoding)
    return total


def count_tools_tokens(tools: Sequence[Any], *, api: Api = "chat", encoding: str | None = None) -> int:
    """Tokens of tool definitions as ``api`` receives them: the compact JSON of the ``tools``
    list of the request (an estimate: providers do not publish how they render schemas
    into the prompt).

    A tool already in ``api``'s own shape is counted as given; a tool in another API's
    shape, a plain ``{"name", "description", "parameters"}`` dict or a pydantic-ai
    ``ToolDefinition`` is rendered in ``api``'s shape first (``"pydantic-ai"`` renders as
    chat completions, the shape of most providers pydantic-ai talks to). A dict that is
    no function tool (a provider's built-in tool) is counted as given.

    Example:
        >>> from tokensieve.compaction import count_tools_tokens
        >>> tool = {"name": "add", "description": "Add two ints.",
        ...         "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}
        >>> count_tools_tokens([tool], api="anthropic") < count_tools_tokens([tool], api="chat")
        True
    """
    if api not in APIS:
        raise ConfigurationError(f"api must be one of {', '.join(APIS)}, got {api!r}")
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Sequence):
        raise InputTypeError(f"tools: expected a list of tool definitions, got {type(tools).__name__}")
    if not tools:
        return 0
    shape = "chat" if api == "pydantic-ai" else api
    rendered = [_render_tool(tool, shape, i) for i, tool in enumerate(tools)]
    text = json.dumps(rendered, separators=(",", ":"), ensure_ascii=False, default=str)
    return _core.count_tokens(text, encoding)  # the content cache makes repeats a lookup


def _render_tool(tool: Any, shape: str, index: int) -> Any:
    if isinstance(tool, Mapping):
        function = tool.get("function")
        if tool.get("type") == "function" and isinstance(function, Mapping):
            own, fields = "chat", function
        elif "input_schema" in tool:
            own, fields = "anthropic", tool
        elif tool.get("type") == "function" and "name" in tool:
            own, fields = "responses", tool
        elif "name" in tool and "parameters" in tool and "type" not in tool:
            own, fields = None, tool
        else:
            return tool  # a built-in tool (web search, ...): sent as is
        if own == shape:
            return tool
        name = fields.get("name")
        description = fields.get("description")
        parameters = fields.get("input_schema" if own == "anthropic" else "parameters")
        strict = fields.get("strict")
    else:
        name = getattr(tool, "name", None)
        parameters = getattr(tool, "parameters_json_schema", None)
        if not isinstance(name, str) or parameters is None:
            raise InputTypeError(
                f"tools[{index}]: expected a tool definition (a dict, or an object with name and "
                f"parameters_json_schema), got {type(tool).__name__}"
            )
        description = getattr(tool, "description", None)
        strict = getattr(tool, "strict", None)
    if not isinstance(name, str):
        raise InputTypeError(f"tools[{index}]: a tool definition without a name")
    if shape == "anthropic":
        out: dict[str, Any] = {"name": name}
        if description is not None:
            out["description"] = description
        out["input_schema"] = parameters if parameters is not None else {"type": "object"}
        return out
    spec: dict[str, Any] = {"name": name, "description": description or "", "parameters": parameters}
    if shape == "responses":
        return {"type": "function", **spec, "strict": bool(strict)}
    if strict:
        spec["strict"] = True
    return {"type": "function", "function": spec}


def _detect_format(messages: Sequence[Any]) -> str:
    """The format of ``messages`` by the rule of ``docs/compaction.md`` (the core's detection),
    for choosing an API: the first message that tells."""
    if messages and _is_dumped_message(messages[0]):
        return "pydantic-ai"
    for message in messages:
        if not isinstance(message, dict):
            return "pydantic-ai" if hasattr(message, "parts") and hasattr(message, "kind") else "openai"
        if "type" in message or "call_id" in message:
            return "responses"
        if "tool_calls" in message or "function_call" in message or message.get("role") in ("tool", "function"):
            return "openai"
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                kind = block.get("type") if isinstance(block, dict) else None
                if kind in ("tool_use", "tool_result", "thinking", "redacted_thinking", "image", "document"):
                    return "anthropic"
                if kind in ("image_url", "input_audio", "refusal"):
                    return "openai"
                if kind in ("input_text", "output_text", "input_image", "input_file"):
                    return "responses"
    return "openai"


def _name_tokens(messages: Sequence[Any], encoding: str | None) -> int:
    """The recipe's ``name`` tokens of chat messages (the name, plus 1)."""
    names = [
        m["name"]
        for m in messages
        if type(m) is dict and isinstance(m.get("name"), str) and m.get("role") not in ("tool", "function")
    ]
    if not names:
        return 0
    return int(_core.count_tokens_batch(names, encoding).sum()) + len(names)


# ---- pydantic-ai's own JSON ----------------------------------------------------------------

_PYDANTIC_AI_EXTRA = 'pip install "tokensieve[pydantic-ai]"'


def _is_dumped_message(message: Any) -> bool:
    return type(message) is dict and message.get("kind") in ("request", "response") and "parts" in message


def _pydantic_ai_dump(messages: Any, format: str | None) -> list[dict[str, Any]] | None:
    """``messages`` as a list if it is pydantic-ai's JSON (dumped dicts), else None."""
    if format not in (None, "pydantic-ai") or not isinstance(messages, (list, tuple)) or not messages:
        return None
    first = messages[0]
    if format is None and not _is_dumped_message(first):
        return None
    if format == "pydantic-ai" and not isinstance(first, dict):
        return None  # message objects: the core reads them
    return list(messages)


def _load_pydantic_ai(dumped: list[dict[str, Any]]) -> list[Any]:
    try:
        from pydantic import ValidationError
        from pydantic_ai.messages import ModelMessagesTypeAdapter
    except ImportError:
        raise ConfigurationError(
            f"this history is pydantic-ai's JSON (dicts with 'kind' and 'parts'): reading it needs "
            f"pydantic-ai: {_PYDANTIC_AI_EXTRA}"
        ) from None
    for index, message in enumerate(dumped):
        if not _is_dumped_message(message):
            raise InvalidMessageError(
                index,
                f"expected a pydantic-ai message (a dict with 'kind' 'request' or 'response' and 'parts'), "
                f"got {_shape(message)}",
            )
    try:
        return ModelMessagesTypeAdapter.validate_python(dumped)
    except ValidationError as error:
        first = error.errors()[0]
        loc = first.get("loc", ())
        index = loc[0] if loc and isinstance(loc[0], int) else 0
        where = ".".join(str(p) for p in loc[1:])
        raise InvalidMessageError(
            index, f"not a valid pydantic-ai message: {where + ': ' if where else ''}{first.get('msg')}"
        ) from None
    except Exception as error:  # raised by the caller's own objects (their __str__, __eq__, ...)
        index = next((i for i, m in enumerate(dumped) if not _validates(ModelMessagesTypeAdapter, m)), 0)
        raise InvalidMessageError(
            index, f"not a valid pydantic-ai message: {type(error).__name__}: {_text_of(error)}"
        ) from error


def _validates(adapter: Any, message: Any) -> bool:
    try:
        adapter.validate_python([message])
    except Exception:
        return False
    return True


def _text_of(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # an exception whose own __str__ fails
        return ""


def _dump_pydantic_ai(out: list[Any], loaded: Sequence[Any], dumped: list[dict[str, Any]]) -> list[Any]:
    """The compacted objects as the caller's dicts (untouched ones) or new dumps (rebuilt ones)."""
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    original = {id(obj): d for obj, d in zip(loaded, dumped)}
    rebuilt = [m for m in out if id(m) not in original]
    fresh = iter(ModelMessagesTypeAdapter.dump_python(rebuilt, mode="json") if rebuilt else ())
    return [original[id(m)] if id(m) in original else next(fresh) for m in out]


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        # The dict's own keys, not its (possibly overridden) __iter__; str keys by value.
        keys = [str.__str__(k) if isinstance(k, str) else type(k).__name__ for k in list(dict.keys(value))[:6]]
        return "a dict with keys " + ", ".join(map(repr, keys)) if keys else "an empty dict"
    return type(value).__name__
