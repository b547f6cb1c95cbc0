"""Hostile inputs for ``tests/test_hostile_input.py``, and the runner that tries them in a
subprocess (``python -m tests.support.hostile CASE...``).

Each case builds a history (or a whole call) that a careless or malicious caller could
pass: cycles, nesting a million deep, 100 MB strings, objects whose ``__str__``,
``__eq__``, ``__hash__``, ``__getitem__``, ``__iter__`` or ``__len__`` raise or lie, and a
wrong type at every field of every format. The runner calls ``count_history_tokens`` and
``compact_history`` (both dangling-call modes; for cycles and depth the pure-Python
baseline too) and prints one JSON line per case:

    {"case": name, "problems": [...], "outcomes": [...]}

A problem is anything but "returned a valid result" or "raised a TokensieveError subclass
whose message names the message index". A case that kills the process (a signal) or
hangs never prints its line: the parent test sees ``START name`` without an end and
reports the crash against that case.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

FORMATS = ("pydantic-ai", "openai", "responses", "anthropic")
MIB = 1024 * 1024


# ---- Objects that misbehave --------------------------------------------------------------


class Boom(Exception):
    """What the hostile objects raise: never a TokensieveError."""


class RaisingStr:
    def __str__(self) -> str:
        raise Boom("__str__")

    __repr__ = __str__


class WrongStr:
    def __str__(self):
        return 42

    def __repr__(self) -> str:
        return "WrongStr()"


class RaisingEq:
    def __eq__(self, other):
        raise Boom("__eq__")

    def __hash__(self) -> int:
        return 1


class RaisingHash:
    def __hash__(self):
        raise Boom("__hash__")


class WrongHash:
    def __hash__(self):
        return "not an int"


class EvilStr(str):
    """A str whose comparisons and hash raise (a role, an id, a dict key)."""

    def __eq__(self, other):
        raise Boom("EvilStr.__eq__")

    def __hash__(self):
        raise Boom("EvilStr.__hash__")


class RaisingGetitemDict(dict):
    def __getitem__(self, key):
        raise Boom("__getitem__")

    def get(self, key, default=None):
        raise Boom("get")


class RaisingItemsDict(dict):
    def items(self):
        raise Boom("items")

    def keys(self):
        raise Boom("keys")

    def __iter__(self):
        raise Boom("dict.__iter__")


class RaisingIterList(list):
    def __iter__(self):
        raise Boom("__iter__")


class RaisingLenList(list):
    def __len__(self):
        raise Boom("__len__")


class WrongLenList(list):
    def __len__(self):
        return "three"


class LyingLenList(list):
    def __len__(self):
        return 10**6  # far more than it holds


class RaisingGetattr:
    """A message-like object every attribute of which raises."""

    def __getattr__(self, name):
        raise Boom(f"__getattr__({name})")


class RaisingBool:
    def __bool__(self):
        raise Boom("__bool__")


HOSTILE_VALUES: dict[str, Callable[[], Any]] = {
    "str-raises": RaisingStr,
    "str-returns-int": WrongStr,
    "eq-raises": RaisingEq,
    "hash-raises": RaisingHash,
    "hash-returns-str": WrongHash,
    "evil-str": lambda: EvilStr("call_1"),
    "getitem-raises": lambda: RaisingGetitemDict(a=1),
    "items-raise": lambda: RaisingItemsDict(a=1),
    "iter-raises": lambda: RaisingIterList([1, 2]),
    "len-raises": lambda: RaisingLenList([1, 2]),
    "len-returns-str": lambda: WrongLenList([1, 2]),
    "len-lies": lambda: LyingLenList([1, 2]),
    "getattr-raises": RaisingGetattr,
    "bool-raises": RaisingBool,
}

WRONG_TYPES: dict[str, Callable[[], Any]] = {
    "None": lambda: None,
    "int": lambda: 7,
    "float": lambda: float("nan"),
    "bool": lambda: True,
    "str": lambda: "text",
    "bytes": lambda: b"\xff\x00",
    "list": lambda: [1, "x"],
    "dict": lambda: {"k": "v"},
    "tuple": lambda: ("t",),
    "object": object,
    "set": lambda: {1},
}


# ---- Base histories, one per format ------------------------------------------------------


def base_history(fmt: str) -> list:
    """A small valid history with every kind of field of its format."""
    if fmt == "openai":
        return [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "image_url", "image_url": {"url": "data:"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}},
                {"id": "c2", "type": "custom", "custom": {"name": "g", "input": "raw"}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "r1"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "r2"}]},
            {"role": "assistant", "content": "", "function_call": {"name": "legacy", "arguments": "{}"}},
            {"role": "function", "name": "legacy", "content": "lr"},
            {"role": "assistant", "content": "done", "refusal": None},
            {"role": "user", "content": "next"},
        ]
    if fmt == "responses":
        return [
            {"role": "system", "content": "sys"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"a\": 1}"},
            {"type": "custom_tool_call", "call_id": "c2", "name": "g", "input": "raw"},
            {"type": "function_call_output", "call_id": "c1", "output": "r1"},
            {"type": "custom_tool_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "r2"}]},
            {"type": "compaction", "id": "cmp", "encrypted_content": "e"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]},
            {"role": "user", "content": "next"},
        ]
    if fmt == "anthropic":
        return [
            {"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "image", "source": {"type": "url", "url": "u"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": "s"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": [1, {"b": None}]}},
                {"type": "tool_use", "id": "c2", "name": "g", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "r1"},
                {"type": "tool_result", "tool_use_id": "c2", "content": [{"type": "text", "text": "r2"}], "is_error": True},
                {"type": "text", "text": "and"},
            ]},
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": "next"},
        ]
    from pydantic_ai.messages import (
        ModelRequest,
        ModelResponse,
        SystemPromptPart,
        TextPart,
        ThinkingPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )

    return [
        ModelRequest([SystemPromptPart("sys"), UserPromptPart("q")], instructions="be brief"),
        ModelResponse([ThinkingPart("hm"), TextPart("calling"), ToolCallPart("f", {"a": [1, {"b": None}]}, tool_call_id="c1"),
                       ToolCallPart("g", "{\"x\": 2}", tool_call_id="c2")]),
        ModelRequest([ToolReturnPart("f", "r1", tool_call_id="c1"), ToolReturnPart("g", {"k": [1]}, tool_call_id="c2")]),
        ModelResponse([TextPart("done")]),
        ModelRequest([UserPromptPart("next")]),
    ]


# The fields that hold free-form values, per format: (message index, path) where a cycle,
# depth or a huge string goes. A path is a list of keys / attribute names.
VALUE_FIELDS: dict[str, list[tuple[int, tuple]]] = {
    "openai": [(2, ("tool_calls", 0, "function", "arguments")), (3, ("content",)), (1, ("content",))],
    "responses": [(3, ("arguments",)), (5, ("output",)), (1, ("content",))],
    "anthropic": [(1, ("content", 2, "input")), (2, ("content", 0, "content")), (0, ("content",))],
    "pydantic-ai": [(1, ("parts", 2, "args")), (2, ("parts", 1, "content")), (0, ("parts", 1, "content"))],
}


def get_path(obj: Any, path: tuple) -> Any:
    for key in path:
        obj = obj[key] if isinstance(obj, (dict, list, tuple)) else getattr(obj, key)
    return obj


def set_path(obj: Any, path: tuple, value: Any) -> None:
    parent = get_path(obj, path[:-1])
    key = path[-1]
    if isinstance(parent, (dict, list)):
        parent[key] = value
    else:
        object.__setattr__(parent, key, value)


def all_paths(obj: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every field path inside a message: dict keys, list items, dataclass fields."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (*prefix, key)
            yield from all_paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield (*prefix, i)
            yield from all_paths(value, (*prefix, i))
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            if f.name in ("timestamp", "usage", "provider_details", "metadata", "run_id", "conversation_id", "state",
                          "provider_response_id", "finish_reason", "provider_url", "retry", "tool_kind", "id",
                          "provider_name", "model_name", "signature", "outcome", "_kind", "return_kind"):
                continue
            value = getattr(obj, f.name)
            yield (*prefix, f.name)
            yield from all_paths(value, (*prefix, f.name))


# ---- Cases -------------------------------------------------------------------------------


@dataclass
class Case:
    """``build()`` returns ``(messages, fmt, index)``: the history, the format to name
    (None: let tokensieve detect it), and the index of the hostile message (None when the
    whole call is hostile). ``expect``: "either" (a valid result or a clean error),
    "invalid" (must be an InvalidMessageError naming ``index``), "exact" (must return, with
    exact counts: ``check`` verifies them)."""

    name: str
    build: Callable[[], tuple[Any, str | None, int | None]]
    expect: str = "either"
    baseline: bool = False  # run tokensieve.baseline instead of the Rust core
    check: Callable[[Any, Any], list[str]] | None = None
    kwargs: dict | None = None


def _cycle_dict() -> dict:
    d: dict = {"k": 1}
    d["self"] = d
    return d


def _cycle_list() -> list:
    x: list = ["a"]
    x.append(x)
    return x


def _cycle_through_tuple() -> list:
    x: list = []
    x.append(({"t": x},))
    return x


def _deep_list(n: int) -> list:
    x: list = []
    for _ in range(n):
        x = [x]
    return x


def _deep_dict(n: int) -> dict:
    d: dict = {}
    for _ in range(n):
        d = {"k": d}
    return d


def _with(fmt: str, index: int, path: tuple, value_factory: Callable[[], Any]) -> Callable[[], tuple]:
    def build():
        history = base_history(fmt)
        set_path(history[index], path, value_factory())
        return history, fmt, index

    return build


# A text whose pre-tokenizer pieces never cross the copies' boundaries, so its count
# repeated m times is m times its count (checked at a small m before it is trusted).
BLOCK = "The quick brown fox jumps over 13 lazy dogs; naïve café 日本語.\n"


COPIES = 100 * MIB // len(BLOCK.encode())


def _huge_text() -> str:
    return BLOCK * COPIES


def _exact_check(fmt: str, index: int) -> Callable[[Any, Any], list[str]]:
    def check(messages, counts) -> list[str]:
        import tokensieve

        small = BLOCK * 1000
        unit = tokensieve.count_tokens(BLOCK)
        if tokensieve.count_tokens(small) != 1000 * unit:
            return ["the block's count is not additive: the reference is wrong"]
        small_history = base_history(fmt)
        # The same message with the text replaced by a single block: the difference is exact.
        field = [p for i, p in VALUE_FIELDS[fmt] if i == index][0]
        set_path(small_history[index], field, BLOCK)
        one = int(tokensieve.count_history_tokens(small_history, format=fmt)[index])
        expected = one + (COPIES - 1) * unit
        got = int(counts[index])
        return [] if got == expected else [f"message {index} counted {got} tokens, expected {expected}"]

    return check


def cases() -> dict[str, Case]:
    found: dict[str, Case] = {}

    def add(case: Case) -> None:
        found[case.name] = case

    for fmt in FORMATS:
        for index, path in VALUE_FIELDS[fmt]:
            where = f"{fmt}:messages[{index}].{'.'.join(map(str, path))}"
            for target, baseline in (("core", False), ("baseline", True)):
                for label, factory in (("cyclic-dict", _cycle_dict), ("cyclic-list", _cycle_list),
                                       ("cycle-through-a-tuple", _cycle_through_tuple)):
                    add(Case(f"cycle/{target}/{label}/{where}", _with(fmt, index, path, factory), expect="invalid",
                             baseline=baseline))
                # The baseline is pure Python: 10^5 is as far beyond any recursion limit, and quicker to build.
                depth = 10**5 if baseline else 10**6
                add(Case(f"depth/{target}/list-{'1e5' if baseline else '1e6'}/{where}",
                         _with(fmt, index, path, lambda depth=depth: _deep_list(depth)), baseline=baseline))
                add(Case(f"depth/{target}/dict-1e5/{where}", _with(fmt, index, path, lambda: _deep_dict(10**5)),
                         baseline=baseline))
        # A dict key that is part of the cycle's path: the whole argument dict refers back to the message.
        index, path = VALUE_FIELDS[fmt][0]

        def message_cycle(fmt=fmt, index=index, path=path):
            history = base_history(fmt)
            set_path(history[index], path, {"message": history[index]} if fmt != "pydantic-ai" else [history[index]])
            return history, fmt, index

        add(Case(f"cycle/core/back-to-the-message/{fmt}", message_cycle, expect="invalid"))
        add(Case(f"cycle/baseline/back-to-the-message/{fmt}", message_cycle, expect="invalid", baseline=True))
        # 100 MB strings: exact count, no crash, sane memory.
        index, path = VALUE_FIELDS[fmt][1]
        add(Case(f"huge/100MB-string/{fmt}:messages[{index}].{'.'.join(map(str, path))}",
                 _with(fmt, index, path, _huge_text), expect="exact", check=_exact_check(fmt, index)))
        # Misbehaving objects in every value field, and as ids and roles.
        for label, factory in HOSTILE_VALUES.items():
            for index, path in VALUE_FIELDS[fmt]:
                where = f"{fmt}:messages[{index}].{'.'.join(map(str, path))}"
                add(Case(f"hostile/{label}/{where}", _with(fmt, index, path, factory)))
            index, path = VALUE_FIELDS[fmt][0]
            add(Case(f"hostile/{label}-as-a-key/{fmt}", _with(fmt, index, path, lambda f=factory: _as_key(f))))
        for label, factory in HOSTILE_VALUES.items():
            add(Case(f"hostile/{label}-as-a-message/{fmt}", _as_message(fmt, factory)))
        # A wrong type at every field.
        base = base_history(fmt)
        for index, message in enumerate(base):
            for path in all_paths(message):
                for label, factory in WRONG_TYPES.items():
                    where = ".".join(map(str, path))
                    add(Case(f"wrong-type/{fmt}:messages[{index}].{where}={label}", _with(fmt, index, path, factory)))
            for label, factory in WRONG_TYPES.items():
                add(Case(f"wrong-type/{fmt}:messages[{index}]={label}", _as_message(fmt, factory, index)))
    # A message of another format inside a history (issue 8, item 7): an InvalidMessageError
    # naming its index, whether the format is named or detected.
    for fmt in FORMATS:
        for label, factory in FOREIGN[fmt].items():
            for named in (True, False):
                def mixed(fmt=fmt, factory=factory, named=named):
                    history = base_history(fmt)
                    index = len(history) - 1  # before the last message: detection has seen the format
                    history.insert(index, factory())
                    return history, fmt if named else None, index

                add(Case(f"mixed/{fmt}+{label}/{'named' if named else 'detected'}", mixed, expect="invalid"))
    # The call itself.
    for label, factory in {**WRONG_TYPES, "iter-raises": lambda: RaisingIterList([{"role": "user", "content": "q"}]),
                           "len-lies": lambda: LyingLenList([{"role": "user", "content": "q"}]),
                           "generator": lambda: ({"role": "user", "content": "q"} for _ in range(2))}.items():
        add(Case(f"call/messages={label}", lambda f=factory: (f(), None, None)))
    for label in ("int", "None-named-wrong", "unknown-name", "bytes", "evil-str"):
        value = {"int": 5, "None-named-wrong": "none", "unknown-name": "gemini", "bytes": b"openai",
                 "evil-str": EvilStr("openai")}[label]
        add(Case(f"call/format={label}", lambda v=value: (base_history("openai"), v, None)))
    return found


def _pydantic_request():
    from pydantic_ai.messages import ModelRequest, UserPromptPart

    return ModelRequest([UserPromptPart("a pydantic-ai message")])


_ANTHROPIC_RESULT = lambda: {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "r"}]}  # noqa: E731
_ANTHROPIC_CALL = lambda: {"role": "assistant", "content": [{"type": "tool_use", "id": "z", "name": "f", "input": {}}]}  # noqa: E731
_OPENAI_TOOL = lambda: {"role": "tool", "tool_call_id": "c1", "content": "r"}  # noqa: E731
_OPENAI_CALL = lambda: {"role": "assistant", "content": None, "tool_calls": [  # noqa: E731
    {"id": "z", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
_RESPONSES_OUTPUT = lambda: {"type": "function_call_output", "call_id": "c1", "output": "r"}  # noqa: E731
_RESPONSES_CALL = lambda: {"type": "function_call", "call_id": "z", "name": "f", "arguments": "{}"}  # noqa: E731

# Messages that belong to another format than the history they are put in.
FOREIGN: dict[str, dict[str, Callable[[], Any]]] = {
    "openai": {"anthropic-tool_result": _ANTHROPIC_RESULT, "anthropic-tool_use": _ANTHROPIC_CALL,
               "responses-function_call_output": _RESPONSES_OUTPUT, "pydantic-ai-request": _pydantic_request},
    "anthropic": {"openai-tool": _OPENAI_TOOL, "openai-tool_calls": _OPENAI_CALL,
                  "responses-function_call": _RESPONSES_CALL, "pydantic-ai-request": _pydantic_request},
    "responses": {"anthropic-tool_result": _ANTHROPIC_RESULT, "openai-tool": _OPENAI_TOOL,
                  "openai-tool_calls": _OPENAI_CALL, "pydantic-ai-request": _pydantic_request},
    "pydantic-ai": {"openai-tool": _OPENAI_TOOL, "anthropic-tool_result": _ANTHROPIC_RESULT,
                    "responses-function_call": _RESPONSES_CALL},
}


def _as_key(factory: Callable[[], Any]) -> dict:
    try:
        return {factory(): 1, "b": 2}
    except (Boom, TypeError):
        return {"b": 2}  # unhashable by design: the case degenerates to a plain dict


def _as_message(fmt: str, factory: Callable[[], Any], index: int = 1) -> Callable[[], tuple]:
    def build():
        history = base_history(fmt)
        history[index] = factory()
        return history, fmt, index

    return build


# ---- Running them ------------------------------------------------------------------------


def _names_index(message: str, index: int) -> bool:
    return re.search(rf"(messages?\s*\[\s*{index}\s*\]|message {index}\b|index {index}\b)", message) is not None


def _outcome(label: str, fn: Callable[[], Any], case: Case, index: int | None) -> tuple[dict, Any]:
    import tokensieve

    entry: dict = {"call": label}
    try:
        value = fn()
    except BaseException as exc:  # noqa: BLE001 - a PanicException is a BaseException
        if isinstance(exc, KeyboardInterrupt):
            raise
        entry.update(raised=f"{type(exc).__module__}.{type(exc).__name__}", message=str(exc)[:300])
        problems = []
        if not isinstance(exc, tokensieve.TokensieveError):
            tb = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:300]
            problems.append(f"{label}: raised {entry['raised']} (not a TokensieveError): {tb}")
        else:
            if index is not None and not _names_index(str(exc), index):
                problems.append(f"{label}: {entry['raised']} does not name messages[{index}]: {str(exc)[:200]}")
            if case.expect == "invalid" and not isinstance(exc, tokensieve.InvalidMessageError):
                problems.append(f"{label}: raised {entry['raised']} instead of InvalidMessageError")
        if case.expect == "exact":
            problems.append(f"{label}: raised {entry['raised']} on a valid history: {str(exc)[:200]}")
        entry["problems"] = problems
        return entry, None
    entry["returned"] = type(value).__name__
    problems = []
    if case.expect == "invalid":
        problems.append(f"{label}: returned instead of raising InvalidMessageError")
    entry["problems"] = problems
    return entry, value


def run_case(case: Case) -> dict:
    import numpy as np

    import tokensieve
    from tokensieve import baseline

    messages, fmt, index = case.build()
    outcomes: list[dict] = []
    problems: list[str] = []

    def record(label: str, fn: Callable[[], Any]) -> Any:
        entry, value = _outcome(label, fn, case, index)
        outcomes.append(entry)
        problems.extend(entry["problems"])
        return value

    if case.baseline:
        # The pure-Python baseline walks the same structures (with tiktoken): the same rules.
        # (The stub mode reads the messages the same way: one compaction is enough here.)
        record("baseline.count_history_tokens", lambda: baseline.count_history_tokens(messages, format=fmt))
        record("baseline.compact", lambda: baseline.compact(
            messages, format=fmt, max_input_tokens=10**9, target_input_tokens=10**6))
        return {"case": case.name, "problems": problems, "outcomes": outcomes}
    counts = record("count_history_tokens", lambda: tokensieve.count_history_tokens(messages, format=fmt))
    if counts is not None:
        if not isinstance(counts, np.ndarray) or counts.dtype != np.int64:
            problems.append(f"count_history_tokens returned {type(counts).__name__}, not an int64 array")
        elif case.check is not None:
            problems.extend(case.check(messages, counts))
    for mode in ("drop", "stub"):
        out = record(f"compact_history[{mode}]", lambda: tokensieve.compact_history(
            messages, format=fmt, dangling_calls=mode, max_input_tokens=10**9, target_input_tokens=10**6))
        if out is not None:
            if not isinstance(out, list):
                problems.append(f"compact_history[{mode}] returned {type(out).__name__}, not a list")
            elif case.expect == "exact":
                from tests.support.provider_rules import violations

                found = violations(fmt, out, messages)
                if found:
                    problems.append(f"compact_history[{mode}] output breaks provider rules: {found[:3]}")
    return {"case": case.name, "problems": problems, "outcomes": outcomes}


def _child(names: list[str], write_fd: int) -> None:
    """Run ``names`` in order, one START and one RESULT line each, into ``write_fd``."""
    registry = cases()
    with os.fdopen(write_fd, "w", buffering=1) as out:
        for name in names:
            out.write(f"START {name}\n")
            out.flush()
            started = time.perf_counter()
            try:
                report = run_case(registry[name])
            except BaseException as exc:  # noqa: BLE001 - report, do not die
                report = {"case": name, "problems": [f"the case could not run: {exc!r}"], "outcomes": []}
            report["seconds"] = round(time.perf_counter() - started, 3)
            out.write("RESULT " + json.dumps(report) + "\n")
            out.flush()


def supervise(names: list[str], case_seconds: float) -> Iterator[dict]:
    """Run the cases in forked children, a new child after each crash or hang.

    The supervisor imports tokensieve and loads its vocabulary once (so a crash costs a
    fork, not an interpreter start) but never calls it on a hostile input: only the
    children do. A child that dies by a signal or goes ``case_seconds`` without finishing
    a case is reported against the case it had started."""
    import select
    import signal

    import tokensieve
    from tokensieve import baseline

    # Load the vocabularies once, here: a child forked after a crash must not pay for it.
    tokensieve.count_tokens("warm up the vocabulary before forking")
    baseline.count_history_tokens([{"role": "user", "content": "warm up tiktoken"}])
    pending = list(names)
    while pending:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read_fd)
            try:
                _child(pending, write_fd)
            finally:
                os._exit(0)
        os.close(write_fd)
        started: str | None = None
        buffer = b""
        how = ""
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while True:
                ready, _, _ = select.select([pipe], [], [], case_seconds)
                if not ready:
                    os.kill(pid, signal.SIGKILL)
                    how = f"hung: no result after {case_seconds:.0f} s"
                    break
                chunk = pipe.read(65536)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    line = raw.decode()
                    if line.startswith("START "):
                        started = line[6:]
                    elif line.startswith("RESULT "):
                        report = json.loads(line[7:])
                        pending.remove(report["case"])
                        started = None
                        yield report
        _, status = os.waitpid(pid, 0)
        if started is None:
            if pending:  # the child ended without starting the next case
                for name in pending:
                    yield {"case": name, "problems": [f"the runner's child ended early (status {status})"]}
            return
        if not how:
            how = (f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status)
                   else f"exited with status {os.WEXITSTATUS(status)}")
        pending.remove(started)
        yield {"case": started, "problems": [f"the process died on this case ({how})"]}


def main(argv: list[str]) -> int:
    import resource

    # 100 MB strings are fine; tens of GB mean a leak or a runaway copy. No core files.
    resource.setrlimit(resource.RLIMIT_AS, (8 * 1024**3, resource.RLIM_INFINITY))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    case_seconds = float(os.environ.get("HOSTILE_CASE_SECONDS", "60"))
    names = argv or list(cases())
    for report in supervise(names, case_seconds):
        print("RESULT " + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.setrecursionlimit(10_000)
    sys.exit(main(sys.argv[1:]))
