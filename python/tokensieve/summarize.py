"""Summaries of what the window drops: the :class:`Summarizer` protocol and its two
implementations.

- :class:`ExtractiveSummarizer` needs no model. The Rust core reads the messages (any of
  the four formats) and extracts facts: the user's first prompt verbatim, later requests
  shortened, every file path created, modified, written, deleted or moved (from file
  tools' arguments, patches and shell commands), the commands run with their outcome,
  the decisions the assistant stated and the errors still open; it renders them as
  compact sections within a token cap that never cuts the task. Deterministic; results
  are cached by the content of what was summarized, and a growing dropped prefix is
  summarized incrementally (only the new messages are read into the facts).
- :class:`ModelSummarizer` asks a smaller model through pydantic-ai (an optional extra)
  for a summary with the sections intent, key decisions, artifacts (exact paths), current
  state, next steps and open questions, updating the previous summary instead of
  summarizing again, within a timeout. When the model fails, times out or answers
  nothing, it falls back to the extractive summary, says so in the result
  (``fell_back``, ``error``) and in a ``summary_fallback`` telemetry event: the history is
  never lost.

The algorithm is described in ``docs/strategies.md`` ("Summarization").

Example:
    >>> from tokensieve.summarize import ExtractiveSummarizer
    >>> dropped = [
    ...     {"role": "user", "content": "Rename load() to load_config() in src/config.py"},
    ...     {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
    ...         "function": {"name": "bash", "arguments": '{"command": "sed -i s/load/load_config/ src/config.py"}'}}]},
    ...     {"role": "tool", "tool_call_id": "c1", "content": "exit code: 0"},
    ... ]
    >>> summary = ExtractiveSummarizer().summarize(dropped)
    >>> "Rename load() to load_config() in src/config.py" in summary.text, "M src/config.py" in summary.text
    (True, True)
    >>> summary.summarizer, summary.fell_back
    ('extractive', False)
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tokensieve import _core, telemetry
from tokensieve.compaction import Format, _load_pydantic_ai, _pydantic_ai_dump
from tokensieve.config import BudgetConfig, resolve_config
from tokensieve.errors import ConfigurationError, _format_argument

__all__ = [
    "DEFAULT_SUMMARY_TOKENS",
    "MODEL_SECTIONS",
    "ExtractiveSummarizer",
    "ModelSummarizer",
    "Summarizer",
    "Summary",
    "remembered",
]

#: The default token cap of a summary.
DEFAULT_SUMMARY_TOKENS = 1500
#: The sections of a model summary, in order.
MODEL_SECTIONS: tuple[str, ...] = (
    "Intent",
    "Key decisions",
    "Artifacts",
    "Current state",
    "Next steps",
    "Open questions",
)
_PYDANTIC_AI_EXTRA = 'pip install "tokensieve[pydantic-ai]"'


@dataclass(frozen=True, slots=True)
class Summary:
    """A summary of messages that left the window.

    Attributes:
        text: the summary, ready to be sent (it starts with a line saying what it is).
        tokens: exact tokens of ``text`` in the config's encoding.
        summarizer: ``"extractive"``, or ``"model:<model name>"``.
        fell_back: True when a model summarizer failed and this is the extractive summary.
        error: why it fell back (the exception's type and message), else None.
        messages: messages summarized, those of ``previous`` summaries included.
        omitted: items the token cap left out of the extractive summary (each section
            says how many of its own).
        facts: the extractive facts of the same messages (both summarizers keep them):
            what an incremental update, or a fallback, starts from.

    Example:
        >>> from tokensieve.summarize import ExtractiveSummarizer
        >>> s = ExtractiveSummarizer().summarize([{"role": "user", "content": "Port the CLI to click."}])
        >>> s.messages, s.summarizer, "Port the CLI to click." in s.text
        (1, 'extractive', True)
    """

    text: str
    tokens: int
    summarizer: str
    fell_back: bool = False
    error: str | None = None
    messages: int = 0
    omitted: int = 0
    facts: _core.SummaryFacts | None = field(default=None, repr=False, compare=False)


@runtime_checkable
class Summarizer(Protocol):
    """What the compaction pipeline asks of a summarizer.

    ``summarize(messages, previous=p)`` summarizes ``messages`` (those newly dropped) on
    top of the summary ``p`` of the messages dropped before them; without ``previous``,
    ``messages`` are all there is to summarize. Both methods return a :class:`Summary`
    and raise only for input that cannot be read (``InvalidMessageError``, naming the
    message), never because a model failed.

    Example:
        >>> from tokensieve.summarize import ExtractiveSummarizer, Summarizer
        >>> isinstance(ExtractiveSummarizer(), Summarizer)
        True
    """

    def summarize(
        self, messages: Sequence[Any], *, format: Format | None = None, previous: Summary | None = None
    ) -> Summary: ...

    async def summarize_async(
        self, messages: Sequence[Any], *, format: Format | None = None, previous: Summary | None = None
    ) -> Summary: ...


def _read(messages: Sequence[Any], format: Format | None, *, proven: bool = False) -> _core.SummaryEvents:
    """The events of ``messages``: pydantic-ai's JSON dumps are validated first, as
    ``compact_history`` does. ``proven``: the pipeline's call right after its own read of
    the history (the leading messages that read proved unchanged reuse their events)."""
    fmt = _format_argument(format)
    dumped = _pydantic_ai_dump(messages, fmt)
    if dumped is not None:
        messages, fmt, proven = _load_pydantic_ai(dumped), "pydantic-ai", False
    return _core.read_events(messages, format=fmt, proven=proven)


def _base_facts(previous: Summary | None) -> _core.SummaryFacts | None:
    """The facts an update starts from: those of ``previous``, or, for a summary without
    them whose text is an extractive summary, the task and files read back from its text."""
    if previous is None:
        return None
    if previous.facts is not None:
        return previous.facts
    if previous.text.startswith("[Summary of "):
        return _core.read_events([{"role": "user", "content": previous.text}], format="openai").fold()
    return None


#: The last summaries written, by their text: a summary met again in a history (a later
#: compaction updates it) is continued from its facts, not only from what its text says.
_BY_TEXT: OrderedDict[str, Summary] = OrderedDict()
_BY_TEXT_SIZE = 64
_BY_TEXT_LOCK = threading.Lock()


def _remember(summary: Summary) -> Summary:
    with _BY_TEXT_LOCK:
        _BY_TEXT[summary.text] = summary
        _BY_TEXT.move_to_end(summary.text)
        while len(_BY_TEXT) > _BY_TEXT_SIZE:
            _BY_TEXT.popitem(last=False)
    return summary


def remembered(text: str) -> Summary | None:
    """The :class:`Summary` this process wrote with this exact text, if still remembered
    (the last 64): what a compaction that meets the summary again updates.

    Example:
        >>> from tokensieve.summarize import ExtractiveSummarizer, remembered
        >>> s = ExtractiveSummarizer().summarize([{"role": "user", "content": "Fix the flaky test."}])
        >>> remembered(s.text) is s
        True
    """
    with _BY_TEXT_LOCK:
        return _BY_TEXT.get(text)


class ExtractiveSummarizer:
    """The offline summarizer: facts extracted by the Rust core, no model.

    Args:
        config: a :class:`~tokensieve.config.BudgetConfig`, a preset name or None; its
            ``encoding`` counts the summary's tokens.
        max_tokens: the summary's token cap (None: no cap). The task is never cut: over
            the cap, decisions, then commands, follow-ups, open errors and last the file
            list are shortened, each saying how many items it left out.
        cache_size: summaries and facts remembered (by the content they summarize), so a
            request that summarizes the same messages again pays nothing, and one whose
            dropped prefix grew reads only the new messages into the facts.

    Example:
        >>> from tokensieve.summarize import ExtractiveSummarizer
        >>> summarizer = ExtractiveSummarizer("cerebras", max_tokens=400)
        >>> history = [{"role": "user", "content": "Add a --verbose flag to cli.py"}]
        >>> summarizer.summarize(history) is summarizer.summarize(history)  # cached
        True
    """

    name = "extractive"

    def __init__(
        self,
        config: BudgetConfig | str | None = None,
        *,
        max_tokens: int | None = DEFAULT_SUMMARY_TOKENS,
        cache_size: int = 64,
    ) -> None:
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
            raise ConfigurationError(f"max_tokens must be a positive int or None, got {max_tokens!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError(f"cache_size must be an int >= 0, got {cache_size!r}")
        self.config: BudgetConfig = resolve_config(config, {})
        self.max_tokens = max_tokens
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._facts: OrderedDict[int, _core.SummaryFacts] = OrderedDict()
        self._summaries: OrderedDict[int, Summary] = OrderedDict()

    def __repr__(self) -> str:
        return f"ExtractiveSummarizer(encoding={self.config.encoding!r}, max_tokens={self.max_tokens!r})"

    def summarize(
        self, messages: Sequence[Any], *, format: Format | None = None, previous: Summary | None = None
    ) -> Summary:
        """Summarize ``messages`` (on top of ``previous``, if given).

        Raises:
            InvalidMessageError: a message cannot be read (its index is in the error).
            InputTypeError: ``messages`` is not a list.

        Example:
            >>> from tokensieve.summarize import ExtractiveSummarizer
            >>> s = ExtractiveSummarizer()
            >>> first = s.summarize([{"role": "user", "content": "Write tests for parse()."}])
            >>> later = s.summarize([{"role": "user", "content": "Also cover empty input."}], previous=first)
            >>> later.messages, "Write tests for parse()." in later.text
            (2, True)
        """
        return self._summarize(_read(messages, format), _base_facts(previous))

    async def summarize_async(
        self, messages: Sequence[Any], *, format: Format | None = None, previous: Summary | None = None
    ) -> Summary:
        """:meth:`summarize`, for async callers (it is fast and needs no I/O)."""
        return self.summarize(messages, format=format, previous=previous)

    def _summarize_proven(self, messages: Sequence[Any], format: Format | None, previous: Summary | None) -> Summary:
        """:meth:`summarize` for the pipeline, right after its read of the history: the
        messages that read proved unchanged reuse the events read from them last time."""
        return self._summarize(_read(messages, format, proven=True), _base_facts(previous))

    def facts(
        self, messages: Sequence[Any], *, format: Format | None = None, previous: Summary | None = None
    ) -> _core.SummaryFacts:
        """The extractive facts of ``messages`` on top of ``previous``, through the cache."""
        return self._fold(_read(messages, format), _base_facts(previous))

    def _fold(self, events: _core.SummaryEvents, base: _core.SummaryFacts | None) -> _core.SummaryFacts:
        base_digest = base.digest if base is not None else 0
        with self._lock:
            known = events.longest_known(base_digest, self._facts) if self._facts else -1
            start_facts = self._facts[events.digest(base_digest, known)] if known >= 0 else base
        facts = events.fold(start_facts, max(known, 0))  # the GIL is released while folding
        if self.cache_size:
            with self._lock:
                self._facts[facts.digest] = facts
                self._facts.move_to_end(facts.digest)
                while len(self._facts) > self.cache_size:
                    self._facts.popitem(last=False)
        return facts

    def _summarize(self, events: _core.SummaryEvents, base: _core.SummaryFacts | None) -> Summary:
        digest = events.digest(base.digest if base is not None else 0, len(events))
        with self._lock:
            cached = self._summaries.get(digest)
            if cached is not None:
                self._summaries.move_to_end(digest)
                return cached
        summary = _remember(self._render(self._fold(events, base)))
        if self.cache_size:
            with self._lock:
                self._summaries[digest] = summary
                while len(self._summaries) > self.cache_size:
                    self._summaries.popitem(last=False)
        return summary

    def _render(self, facts: _core.SummaryFacts, *, error: str | None = None) -> Summary:
        text, tokens, omitted = facts.render(self.max_tokens, self.config.encoding)
        return Summary(
            text=text,
            tokens=tokens,
            summarizer=self.name,
            fell_back=error is not None,
            error=error,
            messages=facts.messages,
            omitted=omitted,
            facts=facts,
        )

    def cache_clear(self) -> None:
        """Forget every cached summary and facts."""
        with self._lock:
            self._facts.clear()
            self._summaries.clear()


_INSTRUCTIONS = """\
You summarize the earlier part of a coding agent's conversation, which is about to be \
removed from its context, so that the agent can carry on without it.
Answer with exactly these Markdown sections, in this order:
{sections}
Under "Artifacts", list every file created, modified or deleted with its exact path. Keep \
exact identifiers, paths, commands and error messages; quote the user's original request \
under "Intent". Write "none" under a section with nothing to say. Never invent anything \
that is not in the messages. Be brief."""


class ModelSummarizer:
    """A summary written by a (smaller) model through pydantic-ai, with a fallback.

    Args:
        model: a pydantic-ai model or model name (e.g. ``"groq:llama-3.1-8b-instant"``);
            None takes the config's ``context.summary.model`` (a preset's
            ``summary_model``).
        config: a :class:`~tokensieve.config.BudgetConfig`, a preset name or None; its
            ``encoding`` counts the summary's tokens.
        timeout: seconds the model may take before the extractive summary is used.
        max_tokens: the summary's token cap (the model's ``max_tokens``, and the
            fallback's cap).
        max_item_chars: each message event is shortened to this many characters in
            what the model reads.
        max_prompt_chars: the transcript the model reads is at most this long: beyond
            it, its middle is left out (the extractive facts it is sent with cover it).
        instructions: the model's instructions (the default asks for
            :data:`MODEL_SECTIONS`).
        fallback: the extractive summarizer to fall back to (and whose cache the facts
            go through); a new one by default.

    The model reads the new messages as a plain transcript (any format), the previous
    summary when there is one (it updates it rather than summarizing again), and the
    facts the extractive summarizer found. Whatever it answers, the result keeps the
    user's first request verbatim and every file path: those it left out are added
    under "Exact references". pydantic-ai is imported on the first summary.

    Example:
        >>> from pydantic_ai.models.test import TestModel
        >>> from tokensieve.summarize import ModelSummarizer
        >>> summarizer = ModelSummarizer(TestModel(custom_output_text="## Intent\\nShip it."), timeout=5)
        >>> s = summarizer.summarize([{"role": "user", "content": "Ship the release."}])
        >>> s.summarizer, s.fell_back, "## Next steps" in s.text
        ('model:test', False, True)
    """

    def __init__(
        self,
        model: Any = None,
        config: BudgetConfig | str | None = None,
        *,
        timeout: float = 30.0,
        max_tokens: int | None = DEFAULT_SUMMARY_TOKENS,
        max_item_chars: int = 2000,
        max_prompt_chars: int = 120_000,
        instructions: str | None = None,
        fallback: ExtractiveSummarizer | None = None,
    ) -> None:
        self.config: BudgetConfig = resolve_config(config, {})
        if model is None:
            model = self.config.context.summary.model
        if model is None:
            raise ConfigurationError("ModelSummarizer needs a model (or a config with a summary_model)")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.model = model
        self.timeout = float(timeout)
        self.max_tokens = max_tokens
        self.max_item_chars = max_item_chars
        self.max_prompt_chars = max_prompt_chars
        self.instructions = instructions or _INSTRUCTIONS.format(
            sections="\n".join(f"## {s}" for s in MODEL_SECTIONS)
        )
        self.fallback = fallback or ExtractiveSummarizer(self.config, max_tokens=max_tokens)
        self._agent: Any = None
        self._agent_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_pid = 0

    @property
    def name(self) -> str:
        """``"model:<model name>"``."""
        model = self.model
        name = model if isinstance(model, str) else getattr(model, "model_name", None) or type(model).__name__
        return f"model:{name}"

    def __repr__(self) -> str:
        return f"ModelSummarizer({self.name!r}, timeout={self.timeout})"

    def summarize(
        self, messages: Sequence[Any], *, format: Format | None = None, previous: Summary | None = None
    ) -> Summary:
        """:meth:`summarize_async`, run to completion on this summarizer's own event loop
        (a daemon thread started on first use): callable from synchronous code and from
        inside a running event loop alike, and every sync call shares one loop, so the
        model's HTTP client is not tied to a loop that is gone."""
        loop = self._sync_loop()
        future = asyncio.run_coroutine_threadsafe(
            self.summarize_async(messages, format=format, previous=previous), loop
        )
        return future.result()

    def _sync_loop(self) -> asyncio.AbstractEventLoop:
        with self._agent_lock:
            # A forked child inherits the loop but not its thread: it starts its own.
            if self._loop is None or self._loop_pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="tokensieve-summary", daemon=True).start()
                self._loop, self._loop_pid = loop, os.getpid()
            return self._loop

    async def summarize_async(
        self, messages: Sequence[Any], *, format: Format | None = None, previous: Summary | None = None
    ) -> Summary:
        """Summarize ``messages`` on top of ``previous`` with the model; on any failure,
        the extractive summary (``fell_back=True``).

        Raises:
            InvalidMessageError: a message cannot be read (never a model failure).
        """
        events = _read(messages, format)
        facts = self.fallback._fold(events, _base_facts(previous))
        try:
            prompt = self._prompt(events, facts, previous)
            text = await asyncio.wait_for(self._ask(prompt), self.timeout)
            if not isinstance(text, str) or not text.strip():
                raise ValueError("the model answered with no summary")
        except Exception as error:  # a failed summary must never cost the history
            reason = "timeout" if isinstance(error, (asyncio.TimeoutError, TimeoutError)) else "error"
            detail = f"timed out after {self.timeout:g} s" if reason == "timeout" else _describe(error)
            telemetry.summary_fallback(
                summarizer=self.name, reason=reason, error=detail, messages=len(events), model=self.name[6:]
            )
            return self.fallback._render(facts, error=detail)
        text = _complete(text, facts)
        tokens = _core.count_tokens(text, self.config.encoding)
        return _remember(Summary(text=text, tokens=tokens, summarizer=self.name, messages=facts.messages, facts=facts))

    def _prompt(self, events: _core.SummaryEvents, facts: _core.SummaryFacts, previous: Summary | None) -> str:
        parts = []
        if previous is not None and previous.text:
            parts.append(
                "The summary so far:\n<previous_summary>\n"
                f"{previous.text}\n</previous_summary>\n\n"
                "Update it with the newer messages below: keep what still holds, add what is new, "
                "drop what they made obsolete, and answer with the whole updated summary."
            )
        else:
            parts.append("Summarize these messages.")
        transcript = events.transcript(self.max_item_chars)
        if len(transcript) > self.max_prompt_chars:
            head = self.max_prompt_chars // 4
            tail = self.max_prompt_chars - head
            omitted = len(transcript) - head - tail
            transcript = f"{transcript[:head]}\n[... {omitted} characters omitted ...]\n\n{transcript[-tail:]}"
        parts.append(f"<messages>\n{transcript}</messages>")
        if facts.paths:
            parts.append("Files touched (keep every path exactly):\n" + "\n".join(f"- {p}" for p in facts.paths))
        return "\n\n".join(parts)

    async def _ask(self, prompt: str) -> str:
        agent = self._get_agent()
        settings: dict[str, Any] = {}
        if self.max_tokens is not None:
            settings["max_tokens"] = self.max_tokens
        result = await agent.run(prompt, model_settings=settings or None)
        return result.output

    def _get_agent(self) -> Any:
        with self._agent_lock:
            if self._agent is None:
                try:
                    from pydantic_ai import Agent
                except ImportError:
                    raise ConfigurationError(f"ModelSummarizer needs pydantic-ai: {_PYDANTIC_AI_EXTRA}") from None
                self._agent = Agent(self.model, instructions=self.instructions, output_type=str)
            return self._agent


def _describe(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:
        text = ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _complete(text: str, facts: _core.SummaryFacts) -> str:
    """The model's summary with every section present, and with the original request
    and every path the facts know that the model left out."""
    text = text.strip()
    missing_sections = [s for s in MODEL_SECTIONS if f"## {s}".lower() not in text.lower()]
    for section in missing_sections:
        text += f"\n\n## {section}\nnone stated"
    references = []
    task = facts.task
    if task and task.strip() not in text:
        references.append(f"The user's first request, verbatim:\n{task}")
    missing_paths = [p for p in facts.paths if p not in text]
    if missing_paths:
        references.append("Files touched:\n" + "\n".join(f"- {p}" for p in missing_paths))
    if references:
        text += "\n\n## Exact references\n" + "\n".join(references)
    return f"[Summary of {facts.messages} earlier message{'s' if facts.messages != 1 else ''}, written by a model]\n{text}\n"
