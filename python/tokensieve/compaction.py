"""``compact_history``: keep a history inside its token budget without breaking it.

The work is done by the Rust core in one call per history (read the messages, count
them through the content cache without the GIL, window and repair, rebuild); this module
only resolves the configuration and wraps the report. The algorithm is specified in
``docs/compaction.md``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
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


#: Writes the summary of the messages the window drops: called with those messages (the
#: caller's own objects, in order) and the history's format; returns the text, or None
#: for no summary. ``tokensieve.summarize`` provides the extractive and model summarizers.
SummaryFunction = Callable[[list[Any], str], "str | None"]

#: How an inserted summary begins: a reader (and a later compaction) can tell it apart.
SUMMARY_MARK = "[tokensieve summary of {n} earlier messages]"


def _insert_summary(out: list[Any], text: str, fmt: str, n: int, encoding: str) -> tuple[list[Any], int] | None:
    """``out`` with the summary ``text`` inserted where the format expects it, and the
    tokens that added; None if the format offers no place (an empty history).

    pydantic-ai: a ``ModelRequest`` holding a ``CompactionPart`` (a summary the framework
    sends as user-voice text; pydantic-ai's own harness does the same), after the first
    request. OpenAI chat and Responses: a ``system`` / ``developer`` message after the
    leading system messages. Anthropic (no system role, user first, tool results first in
    a user turn): a text block appended to the first user message.
    """
    if not out:
        return None
    body = SUMMARY_MARK.format(n=n) + "\n" + text
    if fmt == "pydantic-ai":
        from pydantic_ai.messages import CompactionPart, ModelRequest

        message: Any = ModelRequest(parts=[CompactionPart(content=body)])
        at = 1 if getattr(out[0], "kind", None) == "request" else 0
        cost = int(_core.count_history_tokens([message], encoding=encoding, format=fmt).sum())
        return [*out[:at], message, *out[at:]], cost
    if fmt == "anthropic":
        user = next((k for k, m in enumerate(out) if isinstance(m, dict) and m.get("role") == "user"), None)
        if user is None:
            return None
        at = user
        first = out[at]
        content = first.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        merged = {**first, "content": [*blocks, {"type": "text", "text": body}]}
        was = int(_core.count_history_tokens([first], encoding=encoding, format=fmt).sum())
        now = int(_core.count_history_tokens([merged], encoding=encoding, format=fmt).sum())
        return [*out[:at], merged, *out[at + 1 :]], now - was
    role = "system" if fmt == "openai" else "developer"
    message = {"role": role, "content": body}
    at = 0
    while at < len(out) and isinstance(out[at], dict) and out[at].get("role") in ("system", "developer"):
        at += 1
    cost = int(_core.count_history_tokens([message], encoding=encoding, format=fmt).sum())
    return [*out[:at], message, *out[at:]], cost


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
        config = config or self.config
        if self.costly_steps_suspended and config.context.summary.enabled:
            config = config.replace(context=dataclasses.replace(config.context, summary=False))  # type: ignore[arg-type]
        summary = config.context.summary
        summarizer = self.summarizer if summary.enabled else None
        # The summary's room is reserved while the window decides, released once written.
        room = summary.max_tokens if summarizer is not None else 0
        core = config.replace(reserved_tokens=config.reserved_tokens + room) if room else config
        format = _format_argument(format)  # type: ignore[assignment]
        dumped = _pydantic_ai_dump(messages, format)
        if dumped is not None:
            messages = _load_pydantic_ai(dumped)
            format = "pydantic-ai"
        out, report, steps = _core.compact_history(
            messages,
            core._core_budget(),
            encoding=config.encoding,
            format=format,
            strategies=config.context._core_strategies(),
        )
        (action, before, after, exchanges, dropped, orphans, calls, defects, cut, per_message, fmt) = report
        before, after = before - room, after - room
        # Only when the window dropped messages: acknowledgement turns pruned alone need no summary.
        if summarizer is not None and any(step == "window" and items for step, _, items in steps):
            text = summarizer([_item(messages, i) for i in dropped], fmt)
            if text:
                inserted = _insert_summary(out, text, fmt, len(dropped), config.encoding)
                if inserted is not None and inserted[1] <= summary.max_tokens:
                    out, cost = inserted
                    after += cost
                    steps = [*steps, ("summary", -cost, len(dropped))]
        if dumped is not None:
            out = _dump_pydantic_ai(out, messages, dumped)
        result = CompactionResult(
            messages=out,
            action=action,
            tokens_before=before,
            tokens_after=after,
            messages_before=len(per_message),
            messages_after=len(out),
            exchanges_kept=exchanges,
            dropped=tuple(dropped),
            orphans_removed=orphans,
            calls_repaired=calls,
            input_defects_repaired=defects,
            pairs_cut_by_window=cut,
            per_message_tokens=per_message,
            format=fmt,
            steps=tuple(StepReport(name, saved, items) for name, saved, items in steps),
            target_input_tokens=config.target_input_tokens,
            unchanged_prefix=_unchanged_prefix(dumped if dumped is not None else messages, out, len(per_message)),
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
    they work); this is the entry point where a model summarizer (see
    :mod:`tokensieve.summarize`) is awaited when the pipeline uses one.

    Example:
        >>> import asyncio
        >>> from tokensieve.compaction import compact_history_async
        >>> history = [{"role": "user", "content": "Summarize our plan."}]
        >>> asyncio.run(compact_history_async(history, max_input_tokens=8_000, target_input_tokens=2_000)) == history
        True
    """
    return compact_history(messages, config, format=format, **overrides)


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
    per_message = _core.count_history_tokens(messages, encoding=encoding, format=format)
    # The family's own priming (Llama 3: 5, harmony: 2, ChatML: 3), OpenAI's 3 by default.
    priming = REPLY_PRIMING_TOKENS if encoding is None else _core.get_encoding(encoding).reply_priming
    total = int(per_message.sum()) + priming
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
