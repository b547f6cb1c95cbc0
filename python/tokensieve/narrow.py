"""The tool output budget: narrow what a tool returned before it enters the history.

A 40,000-line test log, a ``cat`` of a generated file or a JSON API dump is the most
common way an agent blows its context window in one step. :func:`narrow_tool_output`
cuts one output to an exact token limit (markers included) with a mode that fits what
it is:

* ``full``: untouched (an output under its limit always comes back as the same object);
* ``truncated``: the start, cut at a token boundary;
* ``heads_tails``: the first and last lines, cut on line boundaries;
* ``errors_only``: tracebacks with their frames, diagnostics with their locations,
  failed tests and lines matching error patterns, each with a little context;
* ``smart_summary``: per kind of output — test runs and build logs by their failures,
  warnings and summary lines; diffs by file and hunk headers with changed-line counts;
  grep output and listings grouped by file or directory with counts; JSON by its shape.

Which mode and limit apply is a **policy** (``tool_output.json``, overridable per
:class:`~tokensieve.BudgetConfig`): per tool name (shell-style patterns) and per outcome
(a non-zero exit code or an error selects ``errors_only``; a ``read_file`` of an explicit
line range is never cut). With a ``spill_dir`` the full output is saved under a
content-addressed name and the closing marker says how to read any line range of it.

Example:
    >>> from tokensieve import narrow_tool_output
    >>> log = "".join(f"collected test {i} ok\\n" for i in range(5000)) + "FAILED test_x.py::test_y - AssertionError\\n"
    >>> result = narrow_tool_output(log, tool="run_shell_command", exit_code=1, max_tokens=200)
    >>> result.mode, result.tokens_after <= 200
    ('errors_only', True)
    >>> "FAILED test_x.py::test_y" in result.text
    True
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from tokensieve import _core
from tokensieve.errors import ConfigurationError, InputTypeError, _format_argument

__all__ = [
    "MODES",
    "NarrowResult",
    "ToolOutputPolicy",
    "ToolRule",
    "narrow_history",
    "narrow_tool_output",
    "read_spilled_output",
    "tool_output_policy",
]

Mode = Literal["full", "truncated", "heads_tails", "errors_only", "smart_summary"]
MODES: tuple[str, ...] = ("full", "truncated", "heads_tails", "errors_only", "smart_summary")

#: Lines one call of :func:`read_spilled_output` returns at most.
READ_MAX_LINES = 2000
#: Tools whose results are never narrowed (the spill reader: it returns what was asked).
_EXEMPT = ("read_spilled_output",)


def _positive(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
    return value


def _mode(name: str, value: Any) -> str:
    if value not in MODES:
        raise ConfigurationError(f"{name} must be one of {', '.join(MODES)}, got {value!r}")
    return str(value)


@dataclass(frozen=True, slots=True)
class ToolRule:
    """The budget of the tools whose names match one of ``patterns`` (shell-style, e.g.
    ``"grep*"``). Fields left None take the policy's.

    ``line_range_args``: pairs of argument names (``("start_line", "end_line")``) that,
    when the call passes both, mean the model asked for an explicit range of lines: the
    result is then never cut.
    """

    patterns: tuple[str, ...]
    mode: Mode | None = None
    max_tokens: int | None = None
    stderr_max_tokens: int | None = None
    line_range_args: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.patterns, str) or not all(isinstance(p, str) for p in self.patterns):
            raise ConfigurationError(f"tool rule patterns must be a list of strings, got {self.patterns!r}")
        object.__setattr__(self, "patterns", tuple(self.patterns))
        object.__setattr__(self, "line_range_args", tuple(tuple(p) for p in self.line_range_args))
        if self.mode is not None:
            _mode("tool rule mode", self.mode)
        for name in ("max_tokens", "stderr_max_tokens"):
            if getattr(self, name) is not None:
                _positive(f"tool rule {name}", getattr(self, name))

    def matches(self, tool: str) -> bool:
        return any(fnmatch.fnmatchcase(tool, p) for p in self.patterns)


@dataclass(frozen=True, slots=True)
class ToolOutputPolicy:
    """Which mode and token limit apply to a tool's output.

    Attributes:
        max_tokens: the limit of a tool's output (stdout), in tokens, markers included.
        stderr_max_tokens: the limit of what a tool wrote to stderr.
        mode: the mode when no rule says otherwise.
        on_error: the mode of a failed call (non-zero exit code, an error raised by the
            tool): ``errors_only`` unless you choose ``full``.
        head_ratio: heads_tails' share of the budget for the first lines.
        count_all_max_bytes: outputs up to this size are counted whole (the closing
            marker then says the full output's tokens); longer ones only where kept.
        tools: per-tool rules, the first matching wins.

    Example:
        >>> from tokensieve import ToolOutputPolicy
        >>> policy = ToolOutputPolicy.preset("cerebras")
        >>> policy.resolve("grep_files")
        ('smart_summary', 1500)
        >>> policy.resolve("run_shell_command", exit_code=2)
        ('errors_only', 2000)
        >>> policy.resolve("read_file", args={"path": "a.py", "start_line": 1, "end_line": 900})
        ('full', 4000)
    """

    max_tokens: int = 4000
    stderr_max_tokens: int = 2000
    mode: Mode = "heads_tails"
    on_error: Mode = "errors_only"
    head_ratio: float = 0.4
    count_all_max_bytes: int = 4 * 1024 * 1024
    tools: tuple[ToolRule, ...] = ()

    def __post_init__(self) -> None:
        _positive("max_tokens", self.max_tokens)
        _positive("stderr_max_tokens", self.stderr_max_tokens)
        _mode("mode", self.mode)
        _mode("on_error", self.on_error)
        if self.on_error not in ("errors_only", "full"):
            raise ConfigurationError(f"on_error must be 'errors_only' or 'full', got {self.on_error!r}")
        if not isinstance(self.head_ratio, (int, float)) or isinstance(self.head_ratio, bool) or not 0 <= self.head_ratio <= 1:
            raise ConfigurationError(f"head_ratio must be a number in [0, 1], got {self.head_ratio!r}")
        if not isinstance(self.count_all_max_bytes, int) or self.count_all_max_bytes < 0:
            raise ConfigurationError(f"count_all_max_bytes must be an int >= 0, got {self.count_all_max_bytes!r}")
        rules = tuple(r if isinstance(r, ToolRule) else ToolRule(**_rule_fields(r)) for r in self.tools)
        object.__setattr__(self, "tools", rules)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolOutputPolicy:
        """A policy from a mapping shaped like one entry of ``tool_output.json``."""
        fields = {k: v for k, v in data.items() if k != "description"}
        fields["tools"] = tuple(ToolRule(**_rule_fields(r)) for r in fields.get("tools", ()))
        try:
            return cls(**fields)
        except TypeError as e:
            raise ConfigurationError(f"tool output policy: {e}") from None

    @classmethod
    def preset(cls, name: str) -> ToolOutputPolicy:
        """A policy of ``tool_output.json`` by name (``"default"``, ``"cerebras"``)."""
        policies = _policies()
        try:
            return policies[name]
        except KeyError:
            raise ConfigurationError(f"unknown tool output policy {name!r}; policies: {', '.join(sorted(policies))}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ToolOutputPolicy:
        """A policy from a JSON file holding one policy object."""
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def rule_for(self, tool: str | None) -> ToolRule | None:
        """The first rule matching ``tool``, if any."""
        if tool is None:
            return None
        return next((r for r in self.tools if r.matches(tool)), None)

    def resolve(
        self,
        tool: str | None = None,
        *,
        exit_code: int | None = None,
        is_error: bool = False,
        args: Mapping[str, Any] | None = None,
        stream: Literal["stdout", "stderr"] = "stdout",
        max_tokens: int | None = None,
        mode: str | None = None,
    ) -> tuple[str, int]:
        """``(mode, max_tokens)`` for one output: ``mode`` and ``max_tokens`` given here
        win; then a failed call selects ``on_error``; then an explicit line range selects
        ``full``; then the tool's rule; then the policy's defaults. An error is never
        narrowed further than ``errors_only``: only ``full`` overrides it."""
        rule = self.rule_for(tool)
        if max_tokens is None:
            if stream == "stderr":
                max_tokens = (rule and rule.stderr_max_tokens) or self.stderr_max_tokens
            else:
                max_tokens = (rule and rule.max_tokens) or self.max_tokens
        _positive("max_tokens", max_tokens)
        failed = is_error or (exit_code is not None and exit_code != 0)
        chosen: str
        if failed:
            chosen = "full" if mode == "full" else self.on_error
        elif mode is not None:
            chosen = _mode("mode", mode)
        elif tool in _EXEMPT or (rule is not None and args and _asks_range(rule, args)):
            chosen = "full"
        elif stream == "stderr":
            chosen = "errors_only"
        else:
            chosen = (rule and rule.mode) or self.mode
        return chosen, max_tokens


def _rule_fields(rule: Any) -> dict[str, Any]:
    if isinstance(rule, ToolRule):
        return {f.name: getattr(rule, f.name) for f in dataclasses.fields(rule)}
    if not isinstance(rule, Mapping):
        raise ConfigurationError(f"a tool rule must be a mapping, got {type(rule).__name__}")
    fields = dict(rule)
    fields["patterns"] = tuple(fields.get("patterns", ()))
    fields["line_range_args"] = tuple(tuple(p) for p in fields.get("line_range_args", ()))
    return fields


def _asks_range(rule: ToolRule, args: Mapping[str, Any]) -> bool:
    return any(args.get(a) is not None and args.get(b) is not None for a, b in rule.line_range_args)


_POLICIES: dict[str, ToolOutputPolicy] = {}


def _policies() -> dict[str, ToolOutputPolicy]:
    if not _POLICIES:
        with open(os.path.join(os.path.dirname(__file__), "tool_output.json"), encoding="utf-8") as f:
            for name, entry in json.load(f).items():
                _POLICIES[name] = ToolOutputPolicy.from_dict(entry)
    return _POLICIES


def tool_output_policy(config: Any = None) -> tuple[ToolOutputPolicy, str]:
    """The tool output policy and encoding of ``config``: a :class:`BudgetConfig` (its
    ``tool_output`` field, its encoding), a preset name, a :class:`ToolOutputPolicy`, a
    mapping, or None (the ``"default"`` policy, o200k_base).

    Example:
        >>> from tokensieve import BudgetConfig
        >>> from tokensieve.narrow import tool_output_policy
        >>> policy, encoding = tool_output_policy(BudgetConfig.preset("cerebras"))
        >>> policy.max_tokens, encoding
        (2500, 'o200k_base')
    """
    from tokensieve.config import BudgetConfig, resolve_config

    encoding = "o200k_base"
    if isinstance(config, str) and config in _policies() and config not in _preset_names():
        return _policies()[config], encoding
    if isinstance(config, (str, BudgetConfig)):
        budget = resolve_config(config, {})
        encoding = budget.encoding
        config = getattr(budget, "tool_output", None)
    if config is None:
        return _policies()["default"], encoding
    if isinstance(config, ToolOutputPolicy):
        return config, encoding
    if isinstance(config, str):
        return ToolOutputPolicy.preset(config), encoding
    if isinstance(config, Mapping):
        return ToolOutputPolicy.from_dict(config), encoding
    raise InputTypeError(
        f"config: expected a BudgetConfig, a preset name, a ToolOutputPolicy or None, got {type(config).__name__}"
    )


def _preset_names() -> set[str]:
    from tokensieve.config import PRESETS

    return set(PRESETS)


@dataclass(frozen=True, slots=True)
class NarrowResult:
    """What :func:`narrow_tool_output` did.

    Attributes:
        text: the narrowed output (the caller's own string when it was not changed).
        mode: the mode that ran: ``"full"`` when the output was under its limit;
            ``"heads_tails"`` when ``errors_only`` found no error line.
        kind: what the output looked like (``"pytest"``, ``"cargo"``, ``"diff"``,
            ``"json"``, ``"grep"``, ``"listing"``, ``"cjk"``, ``"text"`` ...).
        limit: the token limit applied.
        tokens_before: tokens of the whole output; None when it was too long to count
            whole (over the policy's ``count_all_max_bytes``).
        tokens_after: tokens of ``text`` (exact; never above ``limit`` unless mode is full).
        lines, lines_dropped, bytes, bytes_dropped: how much of the output was left out.
        error_lines, errors_dropped: lines matching failure patterns, and how many of
            them did not fit.
        spilled: the path the full output was saved to, if it was; ``handle`` names it
            for :func:`read_spilled_output`.
    """

    text: str
    mode: str
    kind: str
    limit: int
    tokens_before: int | None
    tokens_after: int
    lines: int
    lines_dropped: int
    bytes: int
    bytes_dropped: int
    error_lines: int = 0
    errors_dropped: int = 0
    spilled: str | None = None
    handle: str | None = None

    @property
    def changed(self) -> bool:
        return self.mode != "full"

    @property
    def tokens_saved(self) -> int | None:
        return None if self.tokens_before is None else self.tokens_before - self.tokens_after

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _result(text: str, raw: tuple, limit: int, spilled: str | None = None, handle: str | None = None) -> NarrowResult:
    out, mode, kind, before, after, lines, lines_dropped, nbytes, bytes_dropped, errors, errors_dropped = raw
    unchanged = out is None
    return NarrowResult(
        text=text if unchanged else out,
        mode=mode,
        kind=kind,
        limit=limit,
        tokens_before=before,
        tokens_after=after,
        lines=lines,
        lines_dropped=lines_dropped,
        bytes=nbytes,
        bytes_dropped=bytes_dropped,
        error_lines=errors,
        errors_dropped=errors_dropped,
        spilled=None if unchanged else spilled,
        handle=None if unchanged else handle,
    )


# ---- spill -------------------------------------------------------------------------------

HANDLE_LENGTH = 16


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode("utf-8") if _has_surrogates(text) else text.encode("utf-8")


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def spill_note(path: str, handle: str, lines: int | None = None) -> str:
    """What the closing marker says about a spilled output."""
    span = f" ({lines} lines)" if lines is not None else ""
    return f'full output saved as {path}{span}; read a line range with read_spilled_output("{handle}", start_line, end_line)'


def _spill_path(spill_dir: str | os.PathLike[str], handle: str) -> str:
    return os.path.join(os.fspath(spill_dir), f"{handle}.txt")


def _spill(data: bytes, spill_dir: str | os.PathLike[str]) -> tuple[str, str]:
    handle = hashlib.sha256(data).hexdigest()[:HANDLE_LENGTH]
    path = _spill_path(spill_dir, handle)
    if not os.path.exists(path):
        os.makedirs(spill_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=spill_dir, prefix=".spill-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return path, handle


def read_spilled_output(handle: str, start_line: int = 1, end_line: int | None = None, *, spill_dir: str | os.PathLike[str]) -> str:
    """Lines ``start_line`` to ``end_line`` (1-based, inclusive) of a spilled output; at
    most :data:`READ_MAX_LINES` lines per call (a marker says when more were asked).

    Example:
        >>> import tempfile
        >>> from tokensieve import narrow_tool_output
        >>> from tokensieve.narrow import read_spilled_output
        >>> d = tempfile.mkdtemp()
        >>> text = "".join(f"line {i}\\n" for i in range(1, 3001))
        >>> r = narrow_tool_output(text, max_tokens=100, spill_dir=d)
        >>> read_spilled_output(r.handle, 1500, 1501, spill_dir=d)
        'line 1500\\nline 1501\\n'
    """
    if not isinstance(handle, str) or len(handle) != HANDLE_LENGTH or any(c not in "0123456789abcdef" for c in handle):
        raise ConfigurationError(f"not a spill handle: {handle!r}")
    if not isinstance(start_line, int) or start_line < 1:
        raise ConfigurationError(f"start_line must be an int >= 1, got {start_line!r}")
    if end_line is None:
        end_line = start_line + READ_MAX_LINES - 1
    if not isinstance(end_line, int) or end_line < start_line:
        raise ConfigurationError(f"end_line must be an int >= start_line, got {end_line!r}")
    last = min(end_line, start_line + READ_MAX_LINES - 1)
    out = []
    with open(_spill_path(spill_dir, handle), encoding="utf-8", errors="replace", newline="") as f:
        for number, line in enumerate(f, 1):
            if number > last:
                break
            if number >= start_line:
                out.append(line)
    if last < end_line:
        out.append(f"[... at most {READ_MAX_LINES} lines per call: ask for lines {last + 1}-{end_line} next ...]\n")
    return "".join(out)


# ---- one output --------------------------------------------------------------------------


def narrow_tool_output(
    text: str,
    *,
    tool: str | None = None,
    exit_code: int | None = None,
    is_error: bool = False,
    max_tokens: int | None = None,
    mode: str | None = None,
    config: Any = None,
    spill_dir: str | os.PathLike[str] | None = None,
    args: Mapping[str, Any] | None = None,
    stream: Literal["stdout", "stderr"] = "stdout",
) -> NarrowResult:
    """Narrow one tool output to its token budget.

    Args:
        text: what the tool returned.
        tool: the tool's name, matched against the policy's rules.
        exit_code: the command's exit code, if it ran one (non-zero selects errors_only).
        is_error: the tool reported an error (selects errors_only).
        max_tokens: the limit for this call (default: the policy's).
        mode: the mode for this call (default: the policy's).
        config: a :class:`BudgetConfig`, a preset name, a :class:`ToolOutputPolicy`, or
            None (see :func:`tool_output_policy`).
        spill_dir: save the full output there (content-addressed) when it is cut.
        args: the tool call's arguments (an explicit line range keeps the output whole).
        stream: ``"stderr"`` applies the stderr limit and errors_only.

    Returns:
        A :class:`NarrowResult`; ``result.text is text`` when nothing was cut.

    Example:
        >>> from tokensieve import narrow_tool_output
        >>> small = "3 files changed\\n"
        >>> narrow_tool_output(small).text is small
        True
        >>> big = "".join(f"./src/module_{i // 10}/file_{i}.py\\n" for i in range(3000))
        >>> r = narrow_tool_output(big, tool="find", max_tokens=300)
        >>> r.mode, r.kind, r.tokens_after <= 300
        ('smart_summary', 'listing', True)
    """
    if not isinstance(text, str):
        raise InputTypeError(f"text: expected str, got {type(text).__name__}")
    policy, encoding = tool_output_policy(config)
    chosen, limit = policy.resolve(
        tool, exit_code=exit_code, is_error=is_error, args=args, stream=stream, max_tokens=max_tokens, mode=mode
    )
    note = path = handle = None
    if spill_dir is not None and chosen != "full":
        data = _utf8(text)
        # The name is known before narrowing (it is the hash of the whole); the file is
        # written only if the output is cut.
        handle = hashlib.sha256(data).hexdigest()[:HANDLE_LENGTH]
        path = _spill_path(spill_dir, handle)
        note = spill_note(path, handle, text.count("\n") + (0 if text.endswith("\n") or not text else 1))
    raw = _core.narrow_text(
        text,
        chosen,
        limit,
        encoding=encoding,
        head_ratio=float(policy.head_ratio),
        count_all_max_bytes=policy.count_all_max_bytes,
        note=note,
    )
    if raw[0] is not None and spill_dir is not None and note is not None:
        _spill(data, spill_dir)
    return _result(text, raw, limit, path, handle)


# ---- a history ---------------------------------------------------------------------------


def _detect_format(messages: Sequence[Any]) -> str:
    for m in messages:
        if hasattr(m, "parts"):
            return "pydantic-ai"
        if not isinstance(m, Mapping):
            continue
        if "type" in m or "call_id" in m:
            return "responses"
        if m.get("tool_calls") or m.get("role") in ("tool", "function") or "function_call" in m:
            return "openai"
        content = m.get("content")
        if isinstance(content, list) and any(
            isinstance(b, Mapping) and b.get("type") in ("tool_use", "tool_result") for b in content
        ):
            return "anthropic"
    return "openai"


def narrow_history(
    messages: Sequence[Any],
    config: Any = None,
    *,
    format: str | None = None,
    max_tokens: int | None = None,
    mode: str | None = None,
    spill_dir: str | os.PathLike[str] | None = None,
) -> list[Any]:
    """The history with every tool result narrowed to its budget (see
    :func:`narrow_tool_output`): a new list, holding the caller's own message objects
    where nothing was cut and new ones (copies with the narrowed content) where
    something was. String contents are narrowed (and, for Anthropic, each text block of
    a ``tool_result``); tool names come from the calls, errors from the format's flags
    (Anthropic ``is_error``, pydantic-ai retry prompts).

    Example:
        >>> from tokensieve import narrow_history
        >>> log = "".join(f"line {i}\\n" for i in range(20000))
        >>> history = [
        ...     {"role": "user", "content": "run the tests"},
        ...     {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
        ...      "function": {"name": "run_shell_command", "arguments": "{}"}}]},
        ...     {"role": "tool", "tool_call_id": "c1", "content": log},
        ... ]
        >>> out = narrow_history(history, max_tokens=500)
        >>> out[0] is history[0], len(out[2]["content"]) < len(log)
        (True, True)
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InputTypeError(f"messages: expected a list of messages, got {type(messages).__name__}")
    fmt = _format_argument(format) or _detect_format(messages)

    def narrow(text: Any, tool: str | None, is_error: bool) -> Any:
        if not isinstance(text, str):
            return text
        r = narrow_tool_output(
            text, tool=tool, is_error=is_error, max_tokens=max_tokens, mode=mode, config=config, spill_dir=spill_dir
        )
        return r.text

    out = list(messages)
    names: dict[str, Any] = {}
    for i, m in enumerate(messages):
        if fmt in ("pydantic-ai", "pydantic_ai"):
            parts = getattr(m, "parts", None)
            if parts is None:
                raise InputTypeError(f"messages[{i}]: expected a pydantic-ai message, got {type(m).__name__}")
            new_parts = []
            for p in parts:
                kind = getattr(p, "part_kind", None)
                if kind in ("tool-return", "retry-prompt") and getattr(p, "tool_name", None):
                    content = narrow(p.content, p.tool_name, kind == "retry-prompt")
                    new_parts.append(p if content is p.content else dataclasses.replace(p, content=content))
                else:
                    new_parts.append(p)
            if any(a is not b for a, b in zip(new_parts, parts)):
                out[i] = dataclasses.replace(m, parts=new_parts)
            continue
        if not isinstance(m, Mapping):
            raise InputTypeError(f"messages[{i}]: expected a dict, got {type(m).__name__}")
        if fmt == "openai":
            for call in m.get("tool_calls") or ():
                if isinstance(call, Mapping):
                    fn = call.get("function") or call.get("custom") or {}
                    names[str(call.get("id"))] = fn.get("name")
            if m.get("role") == "tool":
                content = narrow(m.get("content"), names.get(str(m.get("tool_call_id"))), False)
                if content is not m.get("content"):
                    out[i] = {**m, "content": content}
        elif fmt == "responses":
            kind = str(m.get("type") or "")
            if kind.endswith("_call") and "call_id" in m:
                names[str(m["call_id"])] = m.get("name") or kind
            elif kind.endswith("_call_output"):
                output = narrow(m.get("output"), names.get(str(m.get("call_id"))), False)
                if output is not m.get("output"):
                    out[i] = {**m, "output": output}
        elif fmt == "anthropic":
            content = m.get("content")
            if not isinstance(content, list):
                continue
            blocks = []
            for b in content:
                if isinstance(b, Mapping) and b.get("type") == "tool_use":
                    names[str(b.get("id"))] = b.get("name")
                if isinstance(b, Mapping) and b.get("type") == "tool_result":
                    tool, err = names.get(str(b.get("tool_use_id"))), bool(b.get("is_error"))
                    inner = b.get("content")
                    if isinstance(inner, str):
                        new = narrow(inner, tool, err)
                        b = b if new is inner else {**b, "content": new}
                    elif isinstance(inner, list):
                        new_inner = [
                            {**x, "text": t} if isinstance(x, Mapping) and x.get("type") == "text"
                            and (t := narrow(x.get("text"), tool, err)) is not x.get("text") else x
                            for x in inner
                        ]
                        if any(a is not c for a, c in zip(new_inner, inner)):
                            b = {**b, "content": new_inner}
                blocks.append(b)
            if any(a is not c for a, c in zip(blocks, content)):
                out[i] = {**m, "content": blocks}
        else:
            raise ConfigurationError(f"unknown format {fmt!r}; formats: pydantic-ai, openai, responses, anthropic")
    return out


# ---- the CLI -----------------------------------------------------------------------------

CHUNK = 1 << 20


def _chunks(stream: TextIO) -> Iterable[str]:
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return
        yield chunk


def cli(args: Any) -> int:
    """``tokensieve narrow [FILE|-]``: narrow a file or stdin, streaming, to stdout."""
    policy, encoding = tool_output_policy(args.config)
    chosen, limit = policy.resolve(args.tool, exit_code=args.exit_code, max_tokens=args.max_tokens, mode=args.mode)
    source = sys.stdin if args.file in (None, "-") else open(args.file, encoding="utf-8", errors="replace", newline="")
    if source is sys.stdin:
        source = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", newline="", closefd=False)
    try:
        if chosen == "full":
            for chunk in _chunks(source):
                sys.stdout.write(chunk)
            return 0
        spill = None
        note = None
        if args.spill_dir:
            os.makedirs(args.spill_dir, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=args.spill_dir, prefix=".spill-")
            spill = (os.fdopen(fd, "wb"), tmp, hashlib.sha256())
            # Reserved with a placeholder of the final note's length.
            note = spill_note(_spill_path(args.spill_dir, "0" * HANDLE_LENGTH), "0" * HANDLE_LENGTH)
        narrower = _core.Narrower(
            chosen,
            limit,
            encoding=encoding,
            head_ratio=float(policy.head_ratio),
            count_all_max_bytes=policy.count_all_max_bytes,
            note=note,
        )
        for chunk in _chunks(source):
            narrower.feed(chunk)
            if spill is not None:
                data = chunk.encode("utf-8", "replace")
                spill[0].write(data)
                spill[2].update(data)
        path = handle = None
        final_note = None
        if spill is not None:
            spill[0].close()
            handle = spill[2].hexdigest()[:HANDLE_LENGTH]
            path = _spill_path(args.spill_dir, handle)
            final_note = spill_note(path, handle)
        raw = narrower.finish(final_note)
        if spill is not None:
            if raw[1] == "full":
                os.unlink(spill[1])
                path = handle = None
            elif path is not None:
                os.replace(spill[1], path)
        result = _result(raw[0] or "", raw, limit, path, handle)
        if args.json:
            json.dump(result.to_dict(), sys.stdout, ensure_ascii=False)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(result.text)
        return 0
    finally:
        if source is not sys.stdin:
            source.close()


def add_parser(sub: Any) -> None:
    """The ``narrow`` subcommand's arguments (called by ``tokensieve.__main__``)."""
    p = sub.add_parser("narrow", help="narrow a tool output (a file or stdin) to a token budget, streaming")
    p.add_argument("file", nargs="?", default="-", help="the output to narrow (default: stdin)")
    p.add_argument("--tool", help="the tool's name, for the policy's per-tool rules")
    p.add_argument("--exit-code", type=int, help="the command's exit code (non-zero: errors_only)")
    p.add_argument("--mode", choices=MODES, help="the narrowing mode (default: the policy's choice for the tool)")
    p.add_argument("--max-tokens", type=int, help="the token limit (default: the policy's limit for the tool)")
    p.add_argument("--spill-dir", help="save the full output here when it is cut")
    p.add_argument("--config", help="a budget preset or tool output policy name (default: 'default')")
    p.add_argument("--json", action="store_true", help="print the result and its figures as JSON")
    p.set_defaults(run=cli)
