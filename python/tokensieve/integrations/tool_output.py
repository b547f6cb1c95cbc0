"""The tool output budget as a pydantic-ai capability: every tool result is narrowed to
its budget after the tool runs, before it enters the history.

    from pydantic_ai import Agent
    from tokensieve.integrations.pydantic_ai import TokenBudget, ToolOutputBudget

    agent = Agent(
        "cerebras:llama-3.3-70b",
        capabilities=[TokenBudget("cerebras"), ToolOutputBudget("cerebras", spill_dir=".tool-outputs")],
    )

The mode and limit of each result come from the policy (:func:`tokensieve.narrow.tool_output_policy`):
per tool name, and per outcome: a result shaped like a command's (a mapping with
``exit_code`` / ``returncode`` and ``stdout`` / ``stderr``) with a non-zero exit code is
narrowed with ``errors_only``, its stderr with the stderr limit; an error the tool raises
for the model (``ModelRetry``) is never narrowed further than ``errors_only``; a
``read_file``-like call with an explicit line range is returned whole.

With ``spill_dir`` the full output of every cut result is saved there (content-addressed
names) and the agent gets a ``read_spilled_output(handle, start_line, end_line)`` tool to
read any part of it: narrowing never destroys what the agent may need.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import ToolRetryError
from pydantic_ai.toolsets import FunctionToolset

from tokensieve.narrow import NarrowResult, narrow_tool_output, read_spilled_output

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.messages import ToolCallPart
    from pydantic_ai.tools import ToolDefinition

__all__ = ["ToolOutputBudget"]

_EXIT_KEYS = ("exit_code", "returncode", "exit_status", "status_code")


def _exit_code(result: Mapping[str, Any]) -> int | None:
    for key in _EXIT_KEYS:
        value = result.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


@dataclass
class ToolOutputBudget(AbstractCapability[Any]):
    """Narrow every tool result to its token budget after the tool runs.

    Args:
        config: a :class:`~tokensieve.BudgetConfig`, a preset or policy name
            (``"cerebras"``), a :class:`~tokensieve.ToolOutputPolicy`, or None for the
            ``"default"`` policy.
        spill_dir: save the full output of every cut result there and give the agent a
            ``read_spilled_output`` tool to read it by line range.

    Attributes:
        results: the :class:`~tokensieve.NarrowResult` of every result that was cut, in order.

    Example:
        >>> from pydantic_ai import Agent
        >>> from pydantic_ai.models.test import TestModel
        >>> from tokensieve.integrations.pydantic_ai import ToolOutputBudget
        >>> budget = ToolOutputBudget(max_tokens=200)
        >>> agent = Agent(TestModel(), capabilities=[budget])
        >>> @agent.tool_plain
        ... def run_tests() -> str:
        ...     return "".join(f"test_{i} PASSED\\n" for i in range(5000))
        >>> _ = agent.run_sync("run the tests")
        >>> budget.results[0].tokens_after <= 200
        True
    """

    config: Any = None
    spill_dir: str | os.PathLike[str] | None = None
    max_tokens: int | None = None
    results: list[NarrowResult] = field(default_factory=list, init=False, repr=False)

    def _narrow(self, text: str, tool: str, **kwargs: Any) -> str:
        r = narrow_tool_output(
            text, tool=tool, config=self.config, spill_dir=self.spill_dir, max_tokens=self.max_tokens, **kwargs
        )
        if r.changed:
            self.results.append(r)
        return r.text

    def get_toolset(self) -> Any:
        if self.spill_dir is None:
            return None
        spill_dir = self.spill_dir

        def read_spilled_output_tool(handle: str, start_line: int, end_line: int) -> str:
            """Read lines start_line..end_line (1-based, inclusive) of a tool output that was
            shortened: its marker names the handle. At most 2000 lines per call."""
            return read_spilled_output(handle, start_line, end_line, spill_dir=spill_dir)

        read_spilled_output_tool.__name__ = "read_spilled_output"
        toolset: FunctionToolset[Any] = FunctionToolset()
        toolset.add_function(read_spilled_output_tool, name="read_spilled_output")
        return toolset

    async def after_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: Any,
        result: Any,
    ) -> Any:
        tool = call.tool_name
        call_args = args if isinstance(args, Mapping) else None
        if isinstance(result, str):
            return self._narrow(result, tool, args=call_args)
        if isinstance(result, Mapping) and any(isinstance(result.get(k), str) for k in ("stdout", "stderr", "output")):
            code = _exit_code(result)
            changed = dict(result)
            for key, stream in (("stdout", "stdout"), ("output", "stdout"), ("stderr", "stderr")):
                value = result.get(key)
                if isinstance(value, str):
                    changed[key] = self._narrow(value, tool, exit_code=code, stream=stream, args=call_args)
            if any(changed[k] is not result[k] for k in result):
                return changed
        return result

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: Any,
        handler: Any,
    ) -> Any:
        try:
            return await handler(args)
        except ToolRetryError as e:
            part = e.tool_retry
            content = getattr(part, "content", None)
            if isinstance(content, str):
                narrowed = self._narrow(content, call.tool_name, is_error=True)
                if narrowed is not content:
                    raise ToolRetryError(dataclasses.replace(part, content=narrowed)) from e
            raise
