"""Telemetry: the single place tokensieve talks to Pydantic Logfire.

Everything goes through ``logfire-api``, a shim that does nothing unless the real
``logfire`` package is installed (``pip install "tokensieve[logfire]"``) and configured
with ``logfire.configure()``. ``logfire_api`` is imported on the first event, span or
metric, not by ``import tokensieve`` (importing it costs from about 150 ms to most of a
second).

Events (logs), all with ``span_name`` equal to the event name (see docs/observability.md):

============================  =======  ===================================================
event                         level    attributes
============================  =======  ===================================================
``capacity_warning``          warn     limit_name, used, limit, fraction, model
``rate_limit``                warn     consecutive_429s, backoff_seconds, model
``failover``                  warn     from_model, to_model, reason, recent_warnings,
                                       consecutive_429s
``failback``                  info     from_model, to_model, down_seconds
``workload_routing``          info     task, workload, model (UsageTracker.select adds
                                       reason, preferred)
``budget_blocked``            error    tokens_before, tokens_after, limit, model, task
``summary_fallback``          warn     summarizer, reason, error, messages, model
``compaction_ineffective``    warn     attempts, tokens_after, target_input_tokens, model,
                                       suspended
============================  =======  ===================================================

A ``compaction`` span per compaction (tokens_before, tokens_after, tokens_saved,
messages_before, messages_after, messages_dropped, orphans_removed, calls_repaired,
input_defects_repaired, pairs_cut_by_window, action, task, max_output_tokens, model), and three counters: ``tokensieve.compactions``
(compactions that dropped messages), ``tokensieve.tokens_saved`` and
``tokensieve.requests_blocked``.

Telemetry can be switched off entirely with ``configure(enabled=False)`` or the
environment variable ``TOKENSIEVE_TELEMETRY=0`` (also ``false``, ``no``, ``off``); then
nothing is emitted and ``logfire_api`` is never imported.

Example:
    >>> from tokensieve import telemetry
    >>> telemetry.configure(enabled=False)
    >>> telemetry.is_enabled()
    False
    >>> telemetry.rate_limit(consecutive_429s=1, backoff_seconds=60.0, model="cerebras:llama-3.3-70b")
    >>> telemetry.configure(enabled=None)  # back to the default: on unless TOKENSIEVE_TELEMETRY=0
"""

from __future__ import annotations

import operator
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from typing import Any

__all__ = [
    "COUNTERS",
    "CompactionSpan",
    "budget_blocked",
    "capacity_warning",
    "compaction",
    "compaction_span",
    "configure",
    "failback",
    "failover",
    "is_enabled",
    "rate_limit",
    "summary_fallback",
    "workload_routing",
]

#: The metric counters: name -> (unit, description).
COUNTERS: dict[str, tuple[str, str]] = {
    "tokensieve.compactions": ("{compaction}", "Compactions that dropped messages from a history"),
    "tokensieve.tokens_saved": ("{token}", "Input tokens removed from histories by compaction"),
    "tokensieve.requests_blocked": ("{request}", "Requests refused because the history was over the hard limit"),
}

#: The instrumentation scope of everything emitted (``otel_scope_name`` in Logfire).
SCOPE_SUFFIX = "tokensieve"
_ENV = "TOKENSIEVE_TELEMETRY"
_OFF = frozenset({"0", "false", "no", "off"})

_lock = threading.Lock()
_enabled: bool | None = None  # None: follow the environment
_user_instance: Any = None  # a Logfire instance given to configure()
_instance: Any = None  # the instance in use, created on first use
_counters: dict[str, Any] = {}


def configure(*, enabled: bool | None = None, logfire_instance: Any = None) -> None:
    """Switch telemetry on or off, or send it through a particular Logfire instance.

    Args:
        enabled: ``False`` emits nothing (and never imports ``logfire_api``); ``True``
            emits even if ``TOKENSIEVE_TELEMETRY=0``; ``None`` (the default) follows that
            environment variable: on unless it is ``0``, ``false``, ``no`` or ``off``.
        logfire_instance: a ``logfire.Logfire`` instance (for example from
            ``logfire.configure(local=True)``) to emit through; by default the global
            one, with the instrumentation scope ``logfire.tokensieve``.

    Example:
        >>> from tokensieve import telemetry
        >>> telemetry.configure(enabled=False)
        >>> telemetry.is_enabled()
        False
        >>> telemetry.configure()
    """
    global _enabled, _user_instance, _instance
    with _lock:
        _enabled = enabled
        _user_instance = logfire_instance
        _instance = None
        _counters.clear()


def is_enabled() -> bool:
    """Whether events, spans and metrics are emitted (see :func:`configure`).

    Example:
        >>> from tokensieve import telemetry
        >>> isinstance(telemetry.is_enabled(), bool)
        True
    """
    if _enabled is not None:
        return _enabled
    return os.environ.get(_ENV, "1").strip().lower() not in _OFF


def _logfire() -> Any:
    """The Logfire instance to emit through, or None when telemetry is off."""
    global _instance
    if not is_enabled():
        return None
    instance = _instance
    if instance is None:
        with _lock:
            instance = _instance
            if instance is None:
                if _user_instance is not None:
                    instance = _user_instance
                else:
                    try:
                        import logfire_api
                    except ImportError:  # logfire-api missing: behave as the no-op shim would
                        return None
                    instance = logfire_api.DEFAULT_LOGFIRE_INSTANCE.with_settings(custom_scope_suffix=SCOPE_SUFFIX)
                _instance = instance
    if instance is not _user_instance and not _configured(instance):
        return None
    return instance


def _configured(instance: Any) -> bool:
    """Whether the global Logfire was configured (``logfire.configure()``).

    Unconfigured, logfire records nothing and warns (``LogfireNotConfiguredWarning``) on
    the first span; tokensieve stays silent instead, as pydantic-ai's own instrumentation
    does (it emits through OpenTelemetry's global providers, no-ops until configured). The
    ``logfire-api`` shim alone has no configuration: it is a no-op, used as is. Checked on
    every event (an attribute read), so configuring logfire later takes effect at once.
    """
    config = getattr(instance, "config", None)
    return bool(getattr(config, "_initialized", True))


def _counter(instance: Any, name: str) -> Any:
    counter = _counters.get(name)
    if counter is None:
        with _lock:
            counter = _counters.get(name)
            if counter is None:
                unit, description = COUNTERS[name]
                counter = instance.metric_counter(name, unit=unit, description=description)
                _counters[name] = counter
    return counter


def _value(value: Any) -> Any:
    """An attribute value Logfire can store: enum members by their value, numbers (numpy's
    too) as Python numbers, strings as plain strings, anything else as its ``str()``."""
    if isinstance(value, Enum):
        value = value.value
    if type(value) in (bool, int, float, str):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value)
    try:
        return operator.index(value)  # int subclasses, numpy integers
    except TypeError:
        pass
    if hasattr(value, "__float__") and not hasattr(value, "__len__"):
        return float(value)
    return str(value)


def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _value(v) for k, v in values.items() if v is not None}


def _metric_attributes(model: Any) -> dict[str, Any]:
    return {"model": _value(model)} if model is not None else {}


def _log(level: str, name: str, message: str, values: Mapping[str, Any]) -> None:
    instance = _logfire()
    if instance is None:
        return
    attributes = _attributes(values)
    # `logfire.msg` sets the human-readable message while the span name stays the event
    # name (the documented way to set the `message` column).
    attributes["logfire.msg"] = message
    instance.log(level, name, attributes)


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _for(model: Any) -> str:
    return f" for {_value(model)}" if model is not None else ""


def capacity_warning(
    limit_name: str,
    *,
    used: float,
    limit: float,
    fraction: float | None = None,
    model: str | None = None,
    **attributes: Any,
) -> None:
    """Emit ``capacity_warning`` (level warn): a limit is at ``fraction`` (>= 80% by default).

    Args:
        limit_name: which limit: ``"context_window"``, ``"tokens_per_minute"``,
            ``"tokens_per_day"`` or ``"requests_per_minute"``.
        used: how much of it is used (tokens or requests).
        limit: the limit itself.
        fraction: ``used / limit`` (computed when not given).
        model: the model the limit belongs to.
        **attributes: more attributes to attach.

    Example:
        >>> from tokensieve import telemetry
        >>> telemetry.capacity_warning("tokens_per_minute", used=41_000, limit=50_000, model="groq:llama-3.1-8b")
    """
    if fraction is None:
        fraction = used / limit if limit else 0.0
    message = f"capacity_warning: {limit_name} at {fraction:.0%} ({_fmt(used)} of {_fmt(limit)}){_for(model)}"
    _log(
        "warn",
        "capacity_warning",
        message,
        {**attributes, "limit_name": limit_name, "used": used, "limit": limit, "fraction": fraction, "model": model},
    )


def rate_limit(*, consecutive_429s: int, backoff_seconds: float, model: str | None = None, **attributes: Any) -> None:
    """Emit ``rate_limit`` (level warn): the provider answered HTTP 429 ``consecutive_429s``
    times in a row; wait ``backoff_seconds`` before the next request.

    Example:
        >>> from tokensieve import telemetry
        >>> telemetry.rate_limit(consecutive_429s=2, backoff_seconds=120.0, model="cerebras:llama-3.3-70b")
    """
    message = f"rate_limit: {consecutive_429s} consecutive 429s{_for(model)}, back off {_fmt(backoff_seconds)} s"
    _log(
        "warn",
        "rate_limit",
        message,
        {**attributes, "consecutive_429s": consecutive_429s, "backoff_seconds": backoff_seconds, "model": model},
    )


def failover(
    *,
    from_model: str | None,
    to_model: str,
    reason: str,
    recent_warnings: int = 0,
    consecutive_429s: int = 0,
    **attributes: Any,
) -> None:
    """Emit ``failover`` (level warn): requests move from ``from_model`` to ``to_model``
    because capacity warnings accumulated (``reason="capacity_warnings"``) or the provider
    kept answering 429 (``reason="rate_limits"``).

    Example:
        >>> from tokensieve import telemetry
        >>> telemetry.failover(from_model="cerebras:llama-3.3-70b", to_model="groq:llama-3.3-70b",
        ...                    reason="capacity_warnings", recent_warnings=3)
    """
    message = f"failover: {_value(from_model)} -> {_value(to_model)} ({reason})"
    _log(
        "warn",
        "failover",
        message,
        {
            **attributes,
            "from_model": from_model,
            "to_model": to_model,
            "reason": reason,
            "recent_warnings": recent_warnings,
            "consecutive_429s": consecutive_429s,
        },
    )


def failback(*, from_model: str | None, to_model: str, down_seconds: float | None = None, **attributes: Any) -> None:
    """Emit ``failback`` (level info): requests return from ``from_model`` (the failover
    target) to ``to_model`` (the model failed over from), after ``down_seconds`` away.

    Example:
        >>> from tokensieve import telemetry
        >>> telemetry.failback(from_model="groq:llama-3.3-70b", to_model="cerebras:llama-3.3-70b", down_seconds=900.0)
    """
    message = f"failback: {_value(from_model)} -> {_value(to_model)}"
    if down_seconds is not None:
        message += f" after {_fmt(round(down_seconds))} s"
    _log(
        "info",
        "failback",
        message,
        {**attributes, "from_model": from_model, "to_model": to_model, "down_seconds": down_seconds},
    )


def compaction_ineffective(
    *,
    attempts: int,
    tokens_after: int,
    target_input_tokens: int,
    model: str | None = None,
    suspended: tuple[str, ...] = ("summary",),
    **attributes: Any,
) -> None:
    """Emit ``compaction_ineffective`` (level warn): ``attempts`` compactions in a row left
    the history over its target, so the costly steps (``suspended``: the model summary)
    are not retried until a compaction gets under the target again (no compaction loop).

    Example:
        >>> from tokensieve import telemetry
        >>> telemetry.compaction_ineffective(attempts=2, tokens_after=16_000, target_input_tokens=15_000)
    """
    message = (
        f"compaction_ineffective: {attempts} compactions in a row left {_fmt(tokens_after)} tokens, over the target "
        f"{_fmt(target_input_tokens)}{_for(model)}; not retrying {', '.join(suspended) or 'nothing'}"
    )
    _log(
        "warn",
        "compaction_ineffective",
        message,
        {
            **attributes,
            "attempts": attempts,
            "tokens_after": tokens_after,
            "target_input_tokens": target_input_tokens,
            "model": model,
            "suspended": list(suspended),
        },
    )


def workload_routing(*, task: Any, model: str, workload: str | None = None, **attributes: Any) -> None:
    """Emit ``workload_routing`` (level info): requests of ``task`` (a task class such as
    ``"CODE_GENERATION"`` or an enum member) and ``workload`` (e.g. ``"coding"``) go to
    ``model``.

    Example:
        >>> from tokensieve import telemetry
        >>> telemetry.workload_routing(task="CODE_GENERATION", workload="coding", model="zai:glm-4.7")
    """
    label = f"{_value(task)} ({workload})" if workload is not None else f"{_value(task)}"
    message = f"workload_routing: {label} -> {_value(model)}"
    reason = attributes.get("reason")
    if reason is not None and reason not in ("route", "default"):
        message += f" ({_value(reason)})"
    _log("info", "workload_routing", message, {**attributes, "task": task, "workload": workload, "model": model})


def summary_fallback(
    *,
    summarizer: str,
    reason: str,
    error: str,
    messages: int = 0,
    model: str | None = None,
    **attributes: Any,
) -> None:
    """Emit ``summary_fallback`` (level warn): a model summarizer failed (``reason="error"``)
    or timed out (``reason="timeout"``), and the extractive summary of ``messages``
    messages was used instead.

    Example:
        >>> from tokensieve import telemetry
        >>> telemetry.summary_fallback(summarizer="model:groq:llama-3.1-8b-instant", reason="timeout",
        ...                            error="timed out after 30 s", messages=120)
    """
    message = f"summary_fallback: {summarizer} {reason} ({error}), extractive summary of {messages} messages used"
    _log(
        "warn",
        "summary_fallback",
        message,
        {
            **attributes,
            "summarizer": summarizer,
            "reason": reason,
            "error": error,
            "messages": messages,
            "model": model,
        },
    )


def budget_blocked(
    error: Any = None,
    *,
    tokens_before: int | None = None,
    tokens_after: int | None = None,
    limit: float | None = None,
    model: str | None = None,
    task: Any = None,
    **attributes: Any,
) -> None:
    """Emit ``budget_blocked`` (level error) and count it in ``tokensieve.requests_blocked``:
    a request was refused because even the most compacted history is over the hard limit.

    Args:
        error: a :class:`~tokensieve.BudgetExceededError` to take ``tokens_before``,
            ``tokens_after`` and ``limit`` from (keywords given explicitly win).
        tokens_before, tokens_after, limit: the history's tokens before and after
            compaction, and the hard limit.
        model, task: the model and task class of the refused request.

    Example:
        >>> from tokensieve import telemetry
        >>> telemetry.budget_blocked(tokens_before=40_000, tokens_after=31_000, limit=25_000, model="cerebras:llama-3.3-70b")
    """
    instance = _logfire()
    if instance is None:
        return
    if error is not None:
        tokens_before = getattr(error, "tokens_before", None) if tokens_before is None else tokens_before
        tokens_after = getattr(error, "tokens_after", None) if tokens_after is None else tokens_after
        limit = getattr(error, "limit", None) if limit is None else limit
    message = (
        f"budget_blocked: {_fmt(tokens_after)} tokens after compaction (from {_fmt(tokens_before)}), "
        f"over the limit of {_fmt(limit)}{_for(model)}"
    )
    _log(
        "error",
        "budget_blocked",
        message,
        {
            **attributes,
            "tokens_before": tokens_before,
            "tokens_after": tokens_after,
            "limit": limit,
            "model": model,
            "task": task,
        },
    )
    _counter(instance, "tokensieve.requests_blocked").add(1, _metric_attributes(model))


_RESULT_FIELDS = (
    "action",
    "tokens_before",
    "tokens_after",
    "messages_before",
    "messages_after",
    "orphans_removed",
    "calls_repaired",
    "input_defects_repaired",
    "pairs_cut_by_window",
)


def _from_result(result: Any) -> dict[str, Any]:
    """The span attributes of a :class:`~tokensieve.CompactionResult` (or a mapping of them)."""
    if result is None:
        return {}
    def get(name: str) -> Any:
        if isinstance(result, Mapping):
            return result.get(name)
        return getattr(result, name, None)

    values = {name: get(name) for name in _RESULT_FIELDS}
    dropped = get("messages_dropped")
    if dropped is None:
        indices = get("dropped")
        if indices is not None:
            dropped = len(indices)
        elif values["messages_before"] is not None and values["messages_after"] is not None:
            dropped = values["messages_before"] - values["messages_after"]
    values["messages_dropped"] = dropped
    return {k: v for k, v in values.items() if v is not None}


class CompactionSpan:
    """The handle :func:`compaction_span` yields: :meth:`record` what the compaction did.

    Example:
        >>> from tokensieve import telemetry
        >>> with telemetry.compaction_span(task="TOOL_CALL") as span:
        ...     span.record(tokens_before=20_000, tokens_after=9_000, action="compacted")
        >>> span.attributes["tokens_saved"]
        11000
    """

    __slots__ = ("attributes",)

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes

    def record(self, result: Any = None, **attributes: Any) -> None:
        """Attach a compaction's outcome: a :class:`~tokensieve.CompactionResult` (or a
        mapping with its fields) and/or attributes by keyword (keywords win)."""
        self.attributes.update(_attributes(_from_result(result)))
        self.attributes.update(_attributes(attributes))
        before, after = self.attributes.get("tokens_before"), self.attributes.get("tokens_after")
        if isinstance(before, int) and isinstance(after, int):
            self.attributes["tokens_saved"] = before - after


_MISSING = object()


def _compaction_message(attributes: Mapping[str, Any]) -> str:
    parts = [f"compaction {attributes.get('action', '')}".rstrip()]
    if "tokens_before" in attributes and "tokens_after" in attributes:
        parts.append(f": {_fmt(attributes['tokens_before'])} -> {_fmt(attributes['tokens_after'])} tokens")
    if attributes.get("messages_dropped"):
        parts.append(f", {attributes['messages_dropped']} messages dropped")
    if "task" in attributes:
        parts.append(f" ({_value(attributes['task'])}")
        if "max_output_tokens" in attributes:
            parts.append(f", max_tokens {attributes['max_output_tokens']}")
        parts.append(")")
    return "".join(parts)


@contextmanager
def compaction_span(
    *,
    task: Any = None,
    max_output_tokens: int | None = None,
    model: str | None = None,
    **attributes: Any,
) -> Iterator[CompactionSpan]:
    """A ``compaction`` span around a compaction; ``record()`` its result on the handle.

    The span starts with what is known before the work (task, max_output_tokens, model
    and any keyword attributes) as attributes and in its message, so exporters that show
    spans as they start have them; on exit it gets the outcome (tokens_before,
    tokens_after, tokens_saved, messages_before, messages_after, messages_dropped,
    orphans_removed, calls_repaired, input_defects_repaired,
    pairs_cut_by_window, action) and the full message, and the counters
    ``tokensieve.compactions`` (when ``action == "compacted"``) and
    ``tokensieve.tokens_saved`` are incremented.

    Example:
        >>> import tokensieve
        >>> from tokensieve import telemetry
        >>> history = [{"role": "user", "content": "hi"}]
        >>> with telemetry.compaction_span(task="EXPLANATION", max_output_tokens=1800, model="cerebras:x") as span:
        ...     span.record(tokensieve.Compactor().compact(history))
        >>> span.attributes["action"], span.attributes["messages_dropped"]
        ('none', 0)
    """
    handle = CompactionSpan(
        _attributes({**attributes, "task": task, "max_output_tokens": max_output_tokens, "model": model})
    )
    instance = _logfire()
    if instance is None:
        yield handle
        return
    # What is known at the start goes into the span call itself, so an exporter that shows
    # spans as they start (the console) has the message and the attributes too.
    start = dict(handle.attributes)
    template = _compaction_message(start).replace("{", "{{").replace("}", "}}")
    with instance.span(template, _span_name="compaction", **start) as span:
        try:
            yield handle
        finally:
            values = _attributes(handle.attributes)
            for key, value in values.items():
                if start.get(key, _MISSING) != value:
                    span.set_attribute(key, value)
            span.message = _compaction_message(values)
    if handle.attributes.get("action") == "compacted":
        _counter(instance, "tokensieve.compactions").add(1, _metric_attributes(model))
    saved = handle.attributes.get("tokens_saved")
    if isinstance(saved, int) and saved > 0:
        _counter(instance, "tokensieve.tokens_saved").add(saved, _metric_attributes(model))


def compaction(
    result: Any = None,
    *,
    task: Any = None,
    max_output_tokens: int | None = None,
    model: str | None = None,
    **attributes: Any,
) -> None:
    """Record a finished compaction as a ``compaction`` span (and its counters).

    ``result`` is a :class:`~tokensieve.CompactionResult` (or a mapping of its fields);
    keyword attributes are added (and win). See :func:`compaction_span` for what is
    recorded.

    Example:
        >>> import tokensieve
        >>> from tokensieve import telemetry
        >>> result = tokensieve.Compactor().compact([{"role": "user", "content": "hi"}])
        >>> telemetry.compaction(result, task="CODE_GENERATION", max_output_tokens=3000, model="cerebras:x")
    """
    with compaction_span(task=task, max_output_tokens=max_output_tokens, model=model) as span:
        span.record(result, **attributes)
