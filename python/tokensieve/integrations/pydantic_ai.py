"""tokensieve as a pydantic-ai capability: one line to keep an agent inside its budget.

    from pydantic_ai import Agent
    from tokensieve.integrations.pydantic_ai import TokenBudget

    agent = Agent("cerebras:llama-3.3-70b", capabilities=[TokenBudget("cerebras")])

Before every model request the capability runs :func:`tokensieve.preflight`: the
history is compacted (and the compacted history stored as the run's history, so the
next request starts from it), the task is classified and ``max_tokens`` is set for that
request; a request over the hard limit raises :class:`~tokensieve.BudgetExceededError`
instead of being sent. After the request the usage is recorded in the
:class:`~tokensieve.UsageTracker`, if one is given; an HTTP 429 counts as a rate limit.

``max_tokens`` is pydantic-ai's own setting (pydantic-ai maps it to each provider's name:
``max_completion_tokens`` for OpenAI chat completions, ``max_output_tokens`` for the
Responses API). A ``max_tokens`` the user set (in the model's, the agent's, the run's or
a request's ``model_settings``) is a ceiling: the request gets the smaller of it and the
task's budget.

The tool schemas the agent sends with every request count against the budget, as
:func:`tokensieve.count_request_tokens` counts them; the content cache makes counting
the same schemas again a lookup.

Each agent run gets its own copy of the capability (pydantic-ai's ``for_run``), so
concurrent runs never share state; :meth:`TokenBudget.last_for` gives a run's latest
pre-flight by its ``run_id``. A history of ``offload_min_messages`` messages or more is
compacted in a worker thread (``asyncio.to_thread``) so the event loop keeps serving
other runs; smaller ones are compacted inline, which costs less than the hand-off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_ai.capabilities import AbstractCapability

from tokensieve._preflight import Preflight, preflight
from tokensieve.compaction import Compactor
from tokensieve.config import BudgetConfig, resolve_config
from tokensieve.integrations.tool_output import ToolOutputBudget as ToolOutputBudget  # re-export

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.models import ModelRequestContext
    from pydantic_ai.settings import ModelSettings

    from tokensieve.usage import UsageTracker

__all__ = ["TokenBudget", "model_name"]

#: How many runs' latest pre-flights :meth:`TokenBudget.last_for` remembers.
RUNS_REMEMBERED = 256


def model_name(model: Any) -> str | None:
    """The name of a pydantic-ai model for presets and telemetry: ``"system:model_name"``,
    or the model's own name when it already starts with its system, equals it, or
    belongs to a test model (``FunctionModel``, ``TestModel``).

    Example:
        >>> from pydantic_ai.models.test import TestModel
        >>> from tokensieve.integrations.pydantic_ai import model_name
        >>> model_name(TestModel())
        'test'
    """
    if model is None:
        return None
    name = getattr(model, "model_name", None)
    if name is None:
        return None
    name, system = str(name), getattr(model, "system", None)
    if not system or system in ("function", "test") or name == system or name.startswith(f"{system}:"):
        return name
    return f"{system}:{name}"


def _model_name(request_context: Any) -> str | None:
    return model_name(getattr(request_context, "model", None))


@dataclass
class TokenBudget(AbstractCapability[Any]):
    """Compact the history, set ``max_tokens`` and enforce the hard limit before every
    model request.

    Args:
        config: a :class:`~tokensieve.BudgetConfig`, a preset name (``"cerebras"``), or
            None for the preset of the model the request goes to
            (:meth:`BudgetConfig.for_model`).
        tracker: a :class:`~tokensieve.UsageTracker` recording each request's usage.
        persist: store the compacted history as the run's history (pydantic-ai's own
            ``ProcessHistory`` does the same), so later requests start from it.
        count_tools: count the tool schemas sent with each request against the budget.
        offload_min_messages: histories of this many messages or more are compacted in a
            worker thread, off the event loop.

    Attributes:
        last: the latest :class:`~tokensieve.Preflight`. On the capability given to the
            agent: of the latest request of any run (meaningful when one run at a time
            uses it); on a run's own copy: of that run. With concurrent runs use
            :meth:`last_for`.

    Example:
        >>> from pydantic_ai import Agent
        >>> from pydantic_ai.models.test import TestModel
        >>> from tokensieve.integrations.pydantic_ai import TokenBudget
        >>> budget = TokenBudget("cerebras")
        >>> result = Agent(TestModel(), capabilities=[budget]).run_sync("Why does the parser drop empty lines?")
        >>> result.output
        'success (no tool calls)'
        >>> budget.last_for(result.run_id).decision
        'ok'
    """

    config: BudgetConfig | str | None = None
    tracker: UsageTracker | None = None
    persist: bool = True
    count_tools: bool = True
    offload_min_messages: int = 400
    last: Preflight | None = field(default=None, init=False, repr=False, compare=False)
    _shared: TokenBudget | None = field(default=None, init=False, repr=False, compare=False)
    _runs: OrderedDict[str, Preflight] = field(default_factory=OrderedDict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _compactor: Compactor = field(default_factory=Compactor, init=False, repr=False, compare=False)

    async def for_run(self, ctx: RunContext[Any]) -> TokenBudget:
        """A copy of this capability for one run: its state (``last``, the compaction
        pipeline's ineffective-compaction guard) is the run's own."""
        run = dataclasses.replace(self)
        run._shared = self._shared or self
        run._compactor = Compactor()
        return run

    def last_for(self, run_id: str) -> Preflight | None:
        """The latest pre-flight of the run ``run_id`` (``result.run_id``), or None.

        The latest :data:`RUNS_REMEMBERED` runs are remembered.
        """
        shared = self._shared or self
        with shared._lock:
            return shared._runs.get(run_id)

    def _remember(self, run_id: str | None, check: Preflight) -> None:
        self.last = check
        shared = self._shared
        if shared is None:
            return
        with shared._lock:
            shared.last = check
            if run_id is not None:
                shared._runs[run_id] = check
                shared._runs.move_to_end(run_id)
                while len(shared._runs) > RUNS_REMEMBERED:
                    shared._runs.popitem(last=False)

    def _config_for(self, model: str | None) -> BudgetConfig:
        if self.config is None and model is not None:
            return BudgetConfig.for_model(model)
        return resolve_config(self.config, {})

    async def before_model_request(
        self, ctx: RunContext[Any], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        model = _model_name(request_context)
        config = self._config_for(model)
        tools: list[Any] = []
        if self.count_tools:
            params = getattr(request_context, "model_request_parameters", None)
            tools = [*getattr(params, "function_tools", ()), *getattr(params, "output_tools", ())]
        messages = request_context.messages

        self._compactor.model = model or config.model

        def check_request() -> Preflight:
            return preflight(
                messages,
                config,
                format="pydantic-ai",
                tracker=self.tracker,
                model=model or config.model,
                tools=tools,
                api="pydantic-ai",
                compactor=self._compactor,
            )

        # A large history is read and compacted in a worker thread (the native call releases
        # the GIL), so the event loop keeps serving other runs; a small one costs less inline.
        big = len(messages) >= self.offload_min_messages
        check = await asyncio.to_thread(check_request) if big else check_request()
        self._remember(getattr(ctx, "run_id", None), check)
        check.raise_if_blocked()
        request_context.messages = list(check.messages)
        if self.persist and check.decision == "compact":
            ctx.messages[:] = check.messages
        # The user's own max_tokens (model, agent, run or request settings) is a ceiling.
        settings: ModelSettings = {**(request_context.model_settings or {})}
        ceiling = settings.get("max_tokens")
        budget = check.max_output_tokens
        settings["max_tokens"] = budget if ceiling is None else min(ceiling, budget)
        request_context.model_settings = settings
        return request_context

    async def after_model_request(
        self, ctx: RunContext[Any], *, request_context: ModelRequestContext, response: ModelResponse
    ) -> ModelResponse:
        if self.tracker is not None:
            self.tracker.record(response.usage, model=_model_name(request_context))
        return response

    async def on_model_request_error(
        self, ctx: RunContext[Any], *, request_context: ModelRequestContext, error: Exception
    ) -> ModelResponse:
        if self.tracker is not None and getattr(error, "status_code", None) == 429:
            self.tracker.record_rate_limit(model=_model_name(request_context))
        raise error
