"""``preflight``: everything to decide before a model request, in one call.

It compacts the history to the budget, classifies the task to pick ``max_tokens`` for
the request, and says whether the request may go: ``"ok"`` (within budget as is),
``"compact"`` (send the compacted history) or ``"block"`` (over the hard limit even
compacted). Approaching a limit issues a :class:`~tokensieve.BudgetWarning` and a
``capacity_warning`` event; a compaction is recorded as a ``compaction`` span and a block
as ``budget_blocked`` (see ``docs/observability.md``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tokensieve import telemetry
from tokensieve.classify import TaskClassification, TaskType, classify_task
from tokensieve.compaction import (
    _API_OF_FORMAT,
    APIS,
    REPLY_PRIMING_TOKENS,
    Api,
    CompactionResult,
    Compactor,
    Format,
    _detect_format,
    count_tools_tokens,
)
from tokensieve.config import BudgetConfig, BudgetOverrides, resolve_config
from tokensieve.errors import BudgetExceededError, BudgetWarning, ConfigurationError, _format_argument

if TYPE_CHECKING:
    import sys

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

    from tokensieve.usage import Routing, UsageTracker

__all__ = ["Preflight", "preflight"]

#: A request whose input reaches this share of the hard limit is warned about.
WARN_AT = 0.8

#: OpenAI's reasoning models (o1, o3, o4-mini, the gpt-5 family): their chat-completions
#: requests take ``max_completion_tokens`` (``max_tokens`` is refused).
_REASONING_MODEL = re.compile(r"^(o[1-9][0-9]*(-|$)|gpt-5)")


def max_tokens_key(api: Api, model: str | None = None) -> str:
    """The name of the output limit in a request to ``api`` (for ``model``).

    ``"max_output_tokens"`` for the OpenAI Responses API; ``"max_completion_tokens"`` for
    chat completions with an OpenAI reasoning model (o1, o3, o4, gpt-5 families);
    ``"max_tokens"`` otherwise: chat completions, Anthropic Messages, and pydantic-ai's
    ``ModelSettings`` (which pydantic-ai maps to each provider's own name).

    Example:
        >>> from tokensieve._preflight import max_tokens_key
        >>> max_tokens_key("chat", "openai:o3-mini"), max_tokens_key("responses"), max_tokens_key("anthropic")
        ('max_completion_tokens', 'max_output_tokens', 'max_tokens')
    """
    if api not in APIS:
        raise ConfigurationError(f"api must be one of {', '.join(APIS)}, got {api!r}")
    if api == "responses":
        return "max_output_tokens"
    if api == "chat" and model is not None:
        name = model.lower().rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        if _REASONING_MODEL.match(name):
            return "max_completion_tokens"
    return "max_tokens"


@dataclass(frozen=True, slots=True)
class Preflight:
    """The outcome of :func:`preflight`.

    Attributes:
        messages: the history to send (compacted when ``decision == "compact"``; the
            input, repaired if it had broken pairs, when ``"ok"``; the input when
            ``"block"``).
        input_tokens: tokens of the request: ``messages``, the reply priming
            (:data:`~tokensieve.compaction.REPLY_PRIMING_TOKENS`), the ``tools`` and
            ``reserved_tokens`` (for a block: with the most compacted history allowed).
        fraction: ``input_tokens / max_input_tokens``.
        decision: ``"ok"``, ``"compact"`` or ``"block"``.
        task: the task class of the next request.
        classification: the classifier's full answer (confidence, reasons).
        max_output_tokens: the output budget for the next request.
        warnings: human-readable warnings about limits being approached.
        compaction: what compaction did (None when blocked).
        error: the :class:`~tokensieve.BudgetExceededError` when blocked.
        api: the API the request goes to (given, or the one of the history's format):
            decides the key :meth:`model_settings` uses.
        model: the model the request goes to, if known: with a routing tracker, the
            model :meth:`~tokensieve.UsageTracker.select` chose (send the request there).
        routing: the routing decision and its reason (a :class:`~tokensieve.usage.Routing`:
            ``"route"``, ``"default"``, ``"failover"`` or ``"probe"``), when the tracker
            has routes or a failover chain; None otherwise.
    """

    messages: list[Any]
    input_tokens: int
    fraction: float
    decision: Literal["ok", "compact", "block"]
    task: TaskType
    classification: TaskClassification
    max_output_tokens: int
    warnings: tuple[str, ...]
    compaction: CompactionResult | None
    error: BudgetExceededError | None = None
    api: Api = "chat"
    model: str | None = None
    routing: Routing | None = None

    def model_settings(self, api: Api | None = None, *, model: str | None = None) -> dict[str, int]:
        """What to pass to the model call for this request: the output limit, under the
        name ``api`` gives it (see :func:`~tokensieve._preflight.max_tokens_key`):
        ``max_tokens`` (chat completions, Anthropic, pydantic-ai), ``max_output_tokens``
        (Responses API), ``max_completion_tokens`` (chat completions with an OpenAI
        reasoning model).

        Args:
            api: ``"chat"``, ``"responses"``, ``"anthropic"`` or ``"pydantic-ai"``; by
                default :attr:`api` (from ``preflight(api=...)`` or the history's format).
            model: the model, for reasoning models; by default :attr:`model`.

        Example:
            >>> from tokensieve import preflight
            >>> check = preflight([{"role": "user", "content": "Why does the parser drop empty lines?"}])
            >>> check.model_settings()
            {'max_tokens': 1800}
            >>> check.model_settings("responses")
            {'max_output_tokens': 1800}
            >>> check.model_settings(model="openai:o4-mini")
            {'max_completion_tokens': 1800}
        """
        key = max_tokens_key(api or self.api, model or self.model)
        return {key: self.max_output_tokens}

    def raise_if_blocked(self) -> None:
        """Raise the :class:`~tokensieve.BudgetExceededError` if the request is blocked."""
        if self.error is not None:
            raise self.error


def preflight(
    messages: Sequence[Any],
    config: BudgetConfig | str | None = None,
    *,
    format: Format | None = None,
    tracker: UsageTracker | None = None,
    model: str | None = None,
    tools: Sequence[Any] | None = None,
    api: Api | None = None,
    route: bool = True,
    compactor: Compactor | None = None,
    **overrides: Unpack[BudgetOverrides],
) -> Preflight:
    """Prepare the next model request: compact, classify, check the limits.

    Args:
        messages: the history, in any supported format (never modified).
        config: a :class:`BudgetConfig`, a preset name, or None (``BudgetConfig.for_model(model)``
            when ``model`` is given, else the defaults).
        format: the history format, if not to be detected.
        tracker: a :class:`~tokensieve.UsageTracker` whose per-minute and per-day state
            adds its capacity warnings. With routes or a failover chain it also picks the
            model (:meth:`~tokensieve.UsageTracker.select`: the task's route, failover,
            failback): ``check.model`` is where to send the request, ``check.routing``
            why, and the budget is that model's (``BudgetConfig.for_model``, when it is
            not the model ``config`` / ``model`` are for). Record the outcome with
            ``tracker.record(usage, model=check.model)``.
        model: the model the request goes to (for presets, telemetry and
            :meth:`Preflight.model_settings`); with a routing tracker, the caller's own
            model, used when no route matches.
        tools: the tool definitions sent with the request; counted against the budget as
            :func:`~tokensieve.count_request_tokens` counts them.
        api: the API the request goes to (``"chat"``, ``"responses"``, ``"anthropic"``,
            ``"pydantic-ai"``); by default the one of the history's format.
        route: False: ``model`` is chosen already (the pydantic-ai capability's model
            selector did it), the tracker only adds its warnings.
        compactor: a :class:`~tokensieve.Compactor` kept across the requests of one
            conversation, so its ineffective-compaction guard sees them all (the budget
            used is still ``config``); by default a fresh one.
        **overrides: single :class:`BudgetConfig` fields to change.

    Example:
        >>> from tokensieve import preflight
        >>> check = preflight([{"role": "user", "content": "Write a function that parses ISO dates."}])
        >>> check.decision, check.task.value, check.max_output_tokens
        ('ok', 'CODE_GENERATION', 3000)
    """
    if config is None and model is not None:
        resolved = BudgetConfig.for_model(model, **overrides)
    else:
        resolved = resolve_config(config, overrides)
    model = model or resolved.model
    format = _format_argument(format)  # type: ignore[assignment]
    if api is not None and api not in APIS:
        raise ConfigurationError(f"api must be one of {', '.join(APIS)}, got {api!r}")
    if api is None and format is not None:
        api = _API_OF_FORMAT.get(format, "chat")
    if api is None and tools:
        api = _API_OF_FORMAT[_detect_format(messages)]  # the tools' shape depends on it
    # The request carries more than the history: the reply priming and the tool schemas.
    tools_tokens = count_tools_tokens(tools, api=api or "chat", encoding=resolved.encoding) if tools else 0
    overhead = REPLY_PRIMING_TOKENS + tools_tokens
    resolved = resolved.replace(reserved_tokens=resolved.reserved_tokens + overhead)
    classification = classify_task(messages, resolved, format=format)
    routing: Routing | None = None
    if (
        route
        and tracker is not None
        and tracker.routing_enabled
        and tracker.preferred(classification.task, default=model) is not None
    ):
        routing = tracker.select(classification.task, default=model)
        if routing.model != model:
            # The budget follows the model that serves the request: its window, encoding and
            # output budgets (a preset registered for its name customizes them).
            model = routing.model
            resolved = BudgetConfig.for_model(model)
            tools_tokens = count_tools_tokens(tools, api=api or "chat", encoding=resolved.encoding) if tools else 0
            overhead = REPLY_PRIMING_TOKENS + tools_tokens
            resolved = resolved.replace(reserved_tokens=resolved.reserved_tokens + overhead)
            classification = classify_task(messages, resolved, format=format)
    max_output = classification.max_output_tokens
    notes: list[str] = []

    try:
        with telemetry.compaction_span(task=classification.task, max_output_tokens=max_output, model=model) as span:
            if compactor is None:
                compactor = Compactor(resolved)
            result = compactor.compact(messages, format=format, config=resolved)
            span.record(result)
    except BudgetExceededError as error:
        telemetry.budget_blocked(error, model=model, task=classification.task)
        return Preflight(
            messages=list(messages),
            input_tokens=error.tokens_after,
            fraction=error.tokens_after / resolved.max_input_tokens,
            decision="block",
            task=classification.task,
            classification=classification,
            max_output_tokens=max_output,
            warnings=(str(error),),
            compaction=None,
            error=error,
            api=api or _API_OF_FORMAT[_detect_format(messages)],
            model=model,
            routing=routing,
        )

    used = result.tokens_after
    limit = resolved.hard_limit_tokens
    if used >= WARN_AT * limit:
        note = f"context window: {used:,} input tokens are {used / limit:.0%} of the hard limit ({limit:,.0f})"
        notes.append(note)
        telemetry.capacity_warning("context_window", used=used, limit=limit, model=model)
    if tracker is not None:
        notes.extend(str(w) for w in tracker.warnings)
    for note in notes:
        warnings.warn(BudgetWarning(note), stacklevel=2)
    return Preflight(
        messages=result.messages,
        input_tokens=used,
        fraction=used / resolved.max_input_tokens,
        decision="compact" if result.action == "compacted" else "ok",
        task=classification.task,
        classification=classification,
        max_output_tokens=max_output,
        warnings=tuple(notes),
        compaction=result,
        api=api or _API_OF_FORMAT.get(result.format, "chat"),
        model=model,
        routing=routing,
    )
