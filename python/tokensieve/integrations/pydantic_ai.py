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

With a tracker that has routes or a failover chain
(``UsageTracker(routes={"coding": "zai:glm-4.7"}, failover=[...])``) the capability also
picks the model of every request, through pydantic-ai's model selection
(:meth:`TokenBudget.get_model`): the pending task is classified, its route applied, the
failover chain followed when the tracker's state says so, and the primary model taken
back after the cool-down (:meth:`~tokensieve.UsageTracker.select`). The budget follows
the model: a request routed to another model than the agent's is compacted and given
``max_tokens`` with ``BudgetConfig.for_model`` of that model. A model named in the
routes or the chain is passed to pydantic-ai by name, or taken from ``models=``. A model
given to a run explicitly (``agent.run(..., model=...)``) wins: pydantic-ai asks no
selector then, and the request goes where the caller said.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_ai.capabilities import AbstractCapability

from tokensieve._preflight import Preflight, preflight
from tokensieve.classify import classify_task
from tokensieve.compaction import Compactor
from tokensieve.config import BudgetConfig, resolve_config
from tokensieve.integrations.tool_output import ToolOutputBudget as ToolOutputBudget  # re-export

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.capabilities.abstract import ModelSelector
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.models import ModelRequestContext, ModelSelectionContext
    from pydantic_ai.settings import ModelSettings

    from tokensieve.usage import Routing, UsageTracker

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
        tracker: a :class:`~tokensieve.UsageTracker` recording each request's usage;
            with routes or a failover chain it also picks each request's model.
        persist: store the compacted history as the run's history (pydantic-ai's own
            ``ProcessHistory`` does the same), so later requests start from it.
        count_tools: count the tool schemas sent with each request against the budget.
        offload_min_messages: histories of this many messages or more are compacted in a
            worker thread, off the event loop.
        models: the pydantic-ai model (a ``Model`` or a model id) for a model name used
            in the tracker's routes or failover chain; a name missing here is given to
            pydantic-ai as it is (``"groq:llama-3.3-70b-versatile"``).

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
    models: Mapping[str, Any] | None = None
    last: Preflight | None = field(default=None, init=False, repr=False, compare=False)
    _shared: TokenBudget | None = field(default=None, init=False, repr=False, compare=False)
    _runs: OrderedDict[str, Preflight] = field(default_factory=OrderedDict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _primary: str | None = field(default=None, init=False, repr=False, compare=False)
    _routing: Routing | None = field(default=None, init=False, repr=False, compare=False)
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
        if model is not None and (self.config is None or (self._primary is not None and model != self._primary)):
            # A request routed away from the agent's model gets the budget of the model
            # that serves it (window, encoding, output budgets), not the agent's.
            return BudgetConfig.for_model(model)
        return resolve_config(self.config, {})

    def get_model(self) -> ModelSelector[Any] | None:
        """pydantic-ai's model selection hook: a selector choosing each request's model
        when the tracker has routes or a failover chain (None otherwise: no selection).

        The selector classifies the pending task and asks
        :meth:`~tokensieve.UsageTracker.select` (the route of the task, then the agent's
        model; failover, failback), once per request step, in the run's own copy of the
        capability; the copy given to the agent only previews the choice (pydantic-ai
        asks it once before the run, to set the run up), without events or state.
        """
        tracker = self.tracker
        if tracker is None or not tracker.routing_enabled:
            return None
        return self._select_model

    def _select_model(self, ctx: ModelSelectionContext[Any]) -> Any:
        tracker = self.tracker
        assert tracker is not None
        agent_model = getattr(ctx.agent, "model", None)
        default_model = agent_model if agent_model is not None else ctx.model if ctx.run_step == 1 else None
        default = default_model if isinstance(default_model, str) else model_name(default_model)
        default = default or self._primary
        # The task class decides the route; the output budgets of the config do not matter here.
        task = classify_task(ctx.messages, self._config_for(default), format="pydantic-ai").task
        if self._shared is None:
            # pydantic-ai's bootstrap of the run: a preview, no events, no state changes.
            name = tracker.preferred(task, default=default)
            if ctx.model is not None and (name is None or model_name(ctx.model) == name):
                return ctx.model
            return self._model_for(name, default, default_model, ctx)
        self._primary = default
        routing = tracker.select(task, default=default)
        self._routing = routing
        return self._model_for(routing.model, default, default_model, ctx)

    def _model_for(self, name: str | None, default: str | None, default_model: Any, ctx: Any) -> Any:
        """The pydantic-ai model (or model id) for a model name."""
        if name is None:
            return ctx.model
        if self.models is not None and name in self.models:
            return self.models[name]
        if name == default and default_model is not None:
            return default_model
        if ctx.model is not None and model_name(ctx.model) == name:
            return ctx.model
        return name

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
                route=False,  # the model selector chose the model already
                compactor=self._compactor,
            )

        # A large history is read and compacted in a worker thread (the native call releases
        # the GIL), so the event loop keeps serving other runs; a small one costs less inline.
        big = len(messages) >= self.offload_min_messages
        check = await asyncio.to_thread(check_request) if big else check_request()
        routing = self._routing
        if routing is not None and routing.model == model:
            check = dataclasses.replace(check, routing=routing)
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
