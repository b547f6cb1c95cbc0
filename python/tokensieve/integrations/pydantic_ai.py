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

The tool schemas the agent sends with every request count against the budget (as
``reserved_tokens``); the content cache makes counting the same schemas again a lookup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_ai.capabilities import AbstractCapability

import tokensieve
from tokensieve.config import BudgetConfig, resolve_config
from tokensieve.integrations.tool_output import ToolOutputBudget as ToolOutputBudget  # re-export
from tokensieve.preflight import Preflight, preflight

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.models import ModelRequestContext
    from pydantic_ai.settings import ModelSettings

    from tokensieve.usage import UsageTracker

__all__ = ["TokenBudget"]


def _model_name(request_context: Any) -> str | None:
    model = getattr(request_context, "model", None)
    if model is None:
        return None
    system, name = getattr(model, "system", None), getattr(model, "model_name", None)
    if name is None:
        return None
    return f"{system}:{name}" if system else str(name)


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

    Example:
        >>> from pydantic_ai import Agent
        >>> from pydantic_ai.models.test import TestModel
        >>> from tokensieve.integrations.pydantic_ai import TokenBudget
        >>> agent = Agent(TestModel(), capabilities=[TokenBudget("cerebras")])
        >>> agent.run_sync("Why does the parser drop empty lines?").output
        'success (no tool calls)'
    """

    config: BudgetConfig | str | None = None
    tracker: UsageTracker | None = None
    persist: bool = True
    count_tools: bool = True
    last: Preflight | None = field(default=None, init=False, repr=False)

    def _config_for(self, model: str | None) -> BudgetConfig:
        if self.config is None and model is not None:
            return BudgetConfig.for_model(model)
        return resolve_config(self.config, {})

    def _tools_tokens(self, request_context: Any) -> int:
        params = getattr(request_context, "model_request_parameters", None)
        tools = [*getattr(params, "function_tools", ()), *getattr(params, "output_tools", ())]
        if not tools:
            return 0
        schema = json.dumps(
            [{"name": t.name, "description": t.description, "parameters": t.parameters_json_schema} for t in tools],
            sort_keys=True,
            default=str,
        )
        return tokensieve.count_tokens(schema)  # the content cache makes repeats a lookup

    async def before_model_request(
        self, ctx: RunContext[Any], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        model = _model_name(request_context)
        config = self._config_for(model)
        if self.count_tools:
            config = config.replace(reserved_tokens=config.reserved_tokens + self._tools_tokens(request_context))
        check = preflight(
            request_context.messages, config, format="pydantic-ai", tracker=self.tracker, model=model or config.model
        )
        self.last = check
        check.raise_if_blocked()
        request_context.messages = list(check.messages)
        if self.persist and check.decision == "compact":
            ctx.messages[:] = check.messages
        settings: ModelSettings = {**(request_context.model_settings or {}), "max_tokens": check.max_output_tokens}
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
