"""Generated coding-agent sessions, with their ground truth, in the four history formats.

A *session* is what an agent sends over one task: a history that grows request by
request (each request is the whole history so far, up to the model's next response).
:func:`generate_session` plays a deterministic, seeded agent working on a small Python
repository: it lists, greps and reads files (and reads them again after editing them),
edits and writes files, runs the tests and commands, fails and retries (an edit whose
old text is not found, arguments that fail validation: pydantic-ai's retried tool returns,
a failing test run fixed and run again), and answers the user's follow-ups and
acknowledgements ("ok", "thanks"). Every session carries its :class:`GroundTruth`: the
original task, every path modified (and when), every error (and when), so a replay can
measure what a compaction policy kept (:mod:`tokensieve.analyze.replay`).

Sessions are written and read as JSON Lines (:func:`write_jsonl`, :func:`read_sessions`):
one session per line, ``{"id", "format", "system", "truth", "messages"}`` (pydantic-ai
messages as pydantic-ai's own JSON). :func:`read_sessions` also reads one session per
file: a ``.json`` file holding a history (a list of messages) or one session object, or a
``.jsonl`` file of one message per line. No real user data is involved anywhere.

Example:
    >>> from tokensieve.analyze.simulate import generate_session
    >>> session = generate_session(seed=7, format="openai", min_requests=30)
    >>> len(session.request_lengths()) >= 30
    True
    >>> session.truth.task in session.messages[1]["content"]
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tokensieve.errors import TokensieveError

__all__ = [
    "FORMATS",
    "GroundTruth",
    "Session",
    "SessionReadError",
    "generate_session",
    "generate_sessions",
    "read_sessions",
    "request_lengths",
    "session_from_json",
    "session_to_json",
    "text_of",
    "write_jsonl",
    "write_session_files",
]

#: The history formats a session can be rendered in (``compact_history``'s ``format=``).
FORMATS: tuple[str, ...] = ("pydantic-ai", "openai", "responses", "anthropic")

#: Every generated message's timestamp starts here (so output is byte-for-byte reproducible).
_EPOCH = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc)


class SessionReadError(TokensieveError, ValueError):
    """A session that cannot be read: the message names the file (and line, or the
    session and request) and what was wrong."""


# --------------------------------------------------------------------------- ground truth


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What a later request of a session needs to still know.

    Attributes:
        task: the original task, verbatim (the first user prompt).
        modified: ``(path, at)`` for every file write or edit: ``at`` is the index of the
            message holding the call, so the fact exists for requests longer than ``at``.
        errors: ``(text, at)`` for every error a tool reported: ``text`` is one distinctive
            line of it, ``at`` the index of the message holding the result.
    """

    task: str
    modified: tuple[tuple[str, int], ...] = ()
    errors: tuple[tuple[str, int], ...] = ()

    def facts_at(self, length: int) -> list[str]:
        """The facts a request of the first ``length`` messages needs: the original task,
        every path modified before it (once each, in order), and the last error before it.

        Example:
            >>> truth = GroundTruth("fix it", (("a.py", 3), ("b.py", 9)), (("E1", 4),))
            >>> truth.facts_at(5)
            ['fix it', 'a.py', 'E1']
        """
        facts = [self.task]
        for path, at in self.modified:
            if at < length and path not in facts:
                facts.append(path)
        last = [text for text, at in self.errors if at < length]
        if last:
            facts.append(last[-1])
        return facts

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "modified": [{"path": p, "at": a} for p, a in self.modified],
            "errors": [{"text": t, "at": a} for t, a in self.errors],
        }

    @classmethod
    def from_json(cls, data: Any) -> GroundTruth:
        if not isinstance(data, dict) or not isinstance(data.get("task"), str):
            raise SessionReadError("truth: expected an object with a string 'task'")
        return cls(
            data["task"],
            tuple((str(m["path"]), int(m["at"])) for m in data.get("modified", ())),
            tuple((str(e["text"]), int(e["at"])) for e in data.get("errors", ())),
        )


@dataclass(frozen=True, slots=True)
class Session:
    """One agent session: its final history and what it needs to remember.

    Attributes:
        id: a name for reports (``sim-<seed>-<n>`` for generated sessions: the same in
            every format; else the file and line it was read from).
        format: ``"pydantic-ai"``, ``"openai"``, ``"responses"`` or ``"anthropic"``.
        messages: the final history (pydantic-ai: ``ModelMessage`` objects).
        truth: the ground truth, or None for a recorded session without one.
        system: Anthropic's top-level system prompt (the other formats hold it in
            ``messages``).
        requests: the lengths of the history at each request, if recorded; else
            :func:`request_lengths` derives them.
    """

    id: str
    format: str
    messages: list[Any]
    truth: GroundTruth | None = None
    system: str | None = None
    requests: tuple[int, ...] | None = None

    def request_lengths(self) -> list[int]:
        """How many messages each request sent, in order (see :func:`request_lengths`)."""
        if self.requests is not None:
            return list(self.requests)
        return request_lengths(self.format, self.messages)

    def request_histories(self) -> Iterator[list[Any]]:
        """Each request's history: the first ``n`` messages, for each request length."""
        for n in self.request_lengths():
            yield self.messages[:n]


def text_of(value: Any) -> str:
    """Every string inside ``value`` (dicts, lists, pydantic-ai messages and parts), in
    order, one per line: what retention searches a fact in.

    Example:
        >>> text_of({"role": "tool", "content": ["a.py", {"text": "E: boom"}], "n": 3})
        'tool\\na.py\\nE: boom'
    """
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            stack.extend(reversed([getattr(v, f.name) for f in dataclasses.fields(v)]))
    return "\n".join(out)


def _is_response(fmt: str, message: Any) -> bool:
    if fmt == "pydantic-ai":
        kind = message.get("kind") if isinstance(message, dict) else getattr(message, "kind", None)
        return kind == "response"
    if not isinstance(message, dict):
        return False
    if fmt == "responses":
        kind = message.get("type")
        if kind in (None, "message"):
            return message.get("role") == "assistant"
        kind = str(kind)
        return not (kind.endswith("_call_output") or kind == "compaction")
    return message.get("role") == "assistant"


def request_lengths(fmt: str, messages: Sequence[Any]) -> list[int]:
    """The requests of a recorded history: before each run of model-response messages the
    agent sent everything before it; a history ending with request messages (tool results,
    a prompt) was sent whole once more.

    Example:
        >>> history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        ...            {"role": "user", "content": "thanks"}]
        >>> request_lengths("openai", history)
        [1, 3]
    """
    lengths = []
    previous_is_response = True
    for i, message in enumerate(messages):
        response = _is_response(fmt, message)
        if response and not previous_is_response and i > 0:
            lengths.append(i)
        previous_is_response = response
    if messages and not previous_is_response:
        lengths.append(len(messages))
    return lengths


# --------------------------------------------------------------------------- the repository

_PACKAGE = "src/calc"
_WORDS = (
    "token", "node", "expr", "term", "factor", "group", "number", "ident", "operator", "scope",
    "value", "stack", "frame", "symbol", "buffer", "cursor", "span", "source", "result", "error",
)
_VERBS = ("parse", "eval", "read", "emit", "check", "resolve", "build", "scan", "lower", "format")
_STATEMENTS = (
    "{a} = {b}.{c}({d})",
    "if {a} is None:\n        raise {E}(f\"missing {a} at {{pos}}\")",
    "for {a} in {b}:\n        {c}.append({a})",
    "while pos < len({a}) and {a}[pos].kind in (\"+\", \"-\"):\n        pos += 1",
    "return {a}, pos",
    "{a}: list[{T}] = []",
    "{a} = self._{b}.get({c}, {d})",
    "logger.debug(\"{v} %s -> %s\", {a}, {b})",
    "assert {a} >= 0, \"{v} underflow\"",
    "{a} += {b} * {c}",
    "try:\n        {a} = {b}({c})\n    except KeyError as exc:\n        raise {E}(\"unknown {v}\") from exc",
)
_ERRORS = ("ValueError", "CalcError", "SyntaxError", "TypeError", "KeyError")
_TYPES = ("Token", "Node", "int", "float", "str", "Span")


def _ident(rng: random.Random) -> str:
    return f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}" if rng.random() < 0.5 else rng.choice(_WORDS)


def _function(rng: random.Random, name: str) -> list[str]:
    args = ", ".join(f"{_ident(rng)}: {rng.choice(_TYPES)}" for _ in range(rng.randint(1, 3)))
    lines = [f"def {name}({args}) -> {rng.choice(_TYPES)}:", f'    """{name.replace("_", " ").capitalize()} of the input."""']
    for _ in range(rng.randint(3, 9)):
        statement = rng.choice(_STATEMENTS).format(
            a=_ident(rng), b=_ident(rng), c=_ident(rng), d=_ident(rng), E=rng.choice(_ERRORS), T=rng.choice(_TYPES), v=rng.choice(_VERBS)
        )
        lines.extend("    " + line if not line.startswith("    ") else line for line in statement.split("\n"))
    lines.append("")
    lines.append("")
    return lines


class _Repo:
    """A small Python project the simulated agent works on; files change as it edits."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.files: dict[str, list[str]] = {}
        self.functions: dict[str, list[str]] = {}
        modules = ["lexer", "parser", "evaluator", "errors", "cli", "format"]
        for module in modules:
            path = f"{_PACKAGE}/{module}.py"
            names = sorted({f"{rng.choice(_VERBS)}_{rng.choice(_WORDS)}" for _ in range(rng.randint(4, 9))})
            lines = [f'"""The {module} of calc."""', "", "from __future__ import annotations", "", "import logging", "",
                     "logger = logging.getLogger(__name__)", "", ""]
            for name in names:
                lines += _function(rng, name)
            self.files[path] = lines
            self.functions[path] = names
        self.files[f"{_PACKAGE}/__init__.py"] = ['"""calc: a small expression calculator."""', "", "__version__ = \"0.4.1\""]
        for module in ("parser", "evaluator", "lexer"):
            path = f"tests/test_{module}.py"
            names = [f"test_{rng.choice(_VERBS)}_{rng.choice(_WORDS)}_{k}" for k in range(rng.randint(5, 10))]
            lines = ["import pytest", "", f"from calc.{module} import *", "", ""]
            for name in names:
                lines += [f"def {name}():", f"    assert {_ident(rng)}(\"({rng.randint(1, 9)}+{rng.randint(1, 9)})\") == {rng.randint(2, 18)}", "", ""]
            self.files[path] = lines
            self.functions[path] = names
        self.files["pyproject.toml"] = ["[project]", 'name = "calc"', 'version = "0.4.1"', 'requires-python = ">=3.10"',
                                        "", "[tool.pytest.ini_options]", 'testpaths = ["tests"]']
        self.files["README.md"] = ["# calc", "", "A small expression calculator: `calc '(1+2)*3'`.", "",
                                   "Run the tests with `pytest -q`."]

    def sources(self) -> list[str]:
        return [p for p in self.files if p.startswith(_PACKAGE) and not p.endswith("__init__.py")]

    def tests(self) -> list[str]:
        return [p for p in self.files if p.startswith("tests/")]

    def read(self, path: str) -> str:
        lines = self.files[path]
        return "\n".join(f"{k + 1:>5}\t{line}" for k, line in enumerate(lines))

    def grep(self, pattern: str) -> str:
        hits = []
        for path in sorted(self.files):
            for k, line in enumerate(self.files[path]):
                if pattern in line:
                    hits.append(f"{path}:{k + 1}:{line}")
        return "\n".join(hits[:40]) + (f"\n... {len(hits) - 40} more matches" if len(hits) > 40 else "") if hits else "(no matches)"

    def listing(self) -> str:
        return "\n".join(f"{len(self.files[p]):>6} lines  {p}" for p in sorted(self.files))

    def edit(self, path: str) -> tuple[str, str, int]:
        """Change a few lines of ``path``; returns (old text, new text, lines changed)."""
        lines = self.files[path]
        start = self.rng.randrange(max(1, len(lines) - 4))
        count = self.rng.randint(1, 3)
        old = lines[start:start + count]
        new = [f"    {_ident(self.rng)} = {_ident(self.rng)}({_ident(self.rng)})  # {self.rng.choice(_VERBS)} fix"] + old[1:]
        lines[start:start + count] = new
        return "\n".join(old), "\n".join(new), count

    def write(self, path: str) -> str:
        name = f"test_{self.rng.choice(_VERBS)}_{self.rng.choice(_WORDS)}_regression"
        lines = ["import pytest", "", "from calc.parser import parse", "from calc.evaluator import evaluate", "", ""]
        for k in range(self.rng.randint(2, 5)):
            lines += [f"def {name}_{k}():", f"    assert evaluate(parse(\"({k}+({k}*2))\")) == {k * 3}", "", ""]
        self.files[path] = lines
        self.functions[path] = [f"{name}_{k}" for k in range(len(lines))]
        return "\n".join(lines)


# --------------------------------------------------------------------------- the agent's script


@dataclass
class _Call:
    id: str
    name: str
    args: dict[str, Any]


@dataclass
class _Result:
    call: _Call
    content: str
    error: bool = False
    retry: bool = False  # a validation / ModelRetry failure: pydantic-ai's RetryPromptPart
    fact: str | None = None  # the error's distinctive line


@dataclass
class _Event:
    kind: str  # "system", "user", "assistant", "results"
    text: str | None = None
    calls: list[_Call] = field(default_factory=list)
    results: list[_Result] = field(default_factory=list)


SYSTEM_PROMPT = (
    "You are a coding agent working in a Python repository checked out at /workspace/calc. "
    "Use the tools to inspect and change files: list_files, grep, read_file (returns numbered lines), "
    "write_file (creates or replaces a file), edit_file (replaces old_string by new_string; old_string must "
    "match exactly), run_command (runs a shell command and returns its output and exit code). "
    "Read a file before editing it. Keep changes minimal, run the tests after every change, and "
    "report what you changed with exact file paths. Never invent file contents."
)

_TASKS = (
    "Issue #{n}: {fn} in {path} mishandles nested parentheses: `calc '(1+(2*3))'` prints 6 instead of 7. "
    "Fix it and add a regression test in tests/test_regression_{n}.py.",
    "Issue #{n}: unary minus is rejected by {fn} in {path} (`calc '-3+5'` raises). Support it, keep the "
    "error messages as they are, and cover it with tests in tests/test_regression_{n}.py.",
    "Issue #{n}: division by zero crashes with a traceback in {path} ({fn}). Report it as a CalcError with "
    "the position of the operator and add tests in tests/test_regression_{n}.py.",
    "Issue #{n}: {fn} in {path} is slow on long inputs (quadratic string concatenation). Make it linear, "
    "without changing behaviour, and add a test with a 10,000-term input in tests/test_regression_{n}.py.",
)
_FOLLOW_UPS = (
    "Also make {fn} in {path} log the position it fails at.",
    "Can you run the whole test suite once more and fix anything that fails?",
    "Please also update README.md with an example of the new behaviour.",
    "Rename the helper you added in {path} to something clearer.",
    "The CI runs ruff: please run `ruff check src tests` and fix what it reports.",
    "Add a type hint to every function you touched in {path}.",
)
_ACKS = ("ok", "thanks", "ok, go on", "great", "thanks!", "got it", "looks good")
_COMMANDS = ("ruff check src tests", "python -m calc '(1+2)*3'", "git diff --stat", "python -m mypy src")


class _Agent:
    def __init__(self, rng: random.Random, min_requests: int) -> None:
        self.rng = rng
        self.repo = _Repo(rng)
        self.events: list[_Event] = [_Event("system", SYSTEM_PROMPT)]
        self.next_id = 0
        self.requests = 0
        self.min_requests = min_requests
        self.task_path = rng.choice(self.repo.sources())
        self.task_fn = rng.choice(self.repo.functions[self.task_path])
        self.issue = rng.randint(1000, 9999)
        self.test_path = f"tests/test_regression_{self.issue}.py"
        self.task = rng.choice(_TASKS).format(n=self.issue, fn=self.task_fn, path=self.task_path)
        self.read_paths: set[str] = set()
        self.modified: list[tuple[str, _Call]] = []

    def _call(self, name: str, **args: Any) -> _Call:
        self.next_id += 1
        digest = hashlib.sha1(f"{self.issue}-{self.next_id}".encode()).hexdigest()[:20]
        return _Call(f"call_{digest}", name, args)

    def step(self, text: str | None, calls: list[_Call], results: list[_Result]) -> None:
        """One model response (text and calls) and the tool results it led to."""
        self.events.append(_Event("assistant", text, calls=calls))
        self.events.append(_Event("results", results=results))
        self.requests += 1

    def say(self, text: str) -> None:
        """A final answer to the user (no tool calls)."""
        self.events.append(_Event("assistant", text))
        self.requests += 1

    # ---- tools
    def read(self, path: str, why: str | None = None) -> None:
        call = self._call("read_file", path=path)
        self.read_paths.add(path)
        self.step(why, [call], [_Result(call, self.repo.read(path))])

    def read_many(self, paths: list[str]) -> None:
        calls = [self._call("read_file", path=p) for p in paths]
        self.read_paths.update(paths)
        self.step(f"Reading {', '.join(paths)}.", calls, [_Result(c, self.repo.read(c.args["path"])) for c in calls])

    def grep(self, pattern: str) -> None:
        call = self._call("grep", pattern=pattern, path=".")
        self.step(None, [call], [_Result(call, self.repo.grep(pattern))])

    def edit(self, path: str) -> None:
        rng = self.rng
        if path not in self.read_paths or rng.random() < 0.25:
            self.read(path, f"Let me look at {path} first." if rng.random() < 0.5 else None)
        if rng.random() < 0.12:
            # A stale old_string: the tool refuses (ModelRetry), the agent rereads and retries.
            call = self._call("edit_file", path=path, old_string=f"    {_ident(rng)} = None", new_string="    pass")
            fact = f"edit_file: old_string not found in {path} (call {call.id})"
            self.step(None, [call], [_Result(call, f"{fact}. Read the file again and copy the text exactly.", error=True, retry=True, fact=fact)])
            self.read(path, "The file changed; rereading it.")
        if rng.random() < 0.08:
            # Arguments that fail validation: pydantic-ai answers with a RetryPromptPart.
            call = self._call("edit_file", old_string="x", new_string="y")
            fact = f"1 validation error for edit_file (call {call.id}): path Field required"
            self.step(None, [call], [_Result(call, f"{fact} [type=missing, input_value={{'old_string': 'x', 'new_string': 'y'}}]", error=True, retry=True, fact=fact)])
        old, new, count = self.repo.edit(path)
        call = self._call("edit_file", path=path, old_string=old, new_string=new)
        self.modified.append((path, call))
        self.step(f"Editing {path}." if rng.random() < 0.6 else None, [call], [_Result(call, f"Applied edit to {path}: {count} line(s) replaced.")])

    def write(self, path: str) -> None:
        content = self.repo.write(path)
        call = self._call("write_file", path=path, content=content)
        self.modified.append((path, call))
        self.step(f"Creating {path}.", [call], [_Result(call, f"Wrote {len(content.splitlines())} lines to {path}.")])

    def run_tests(self, fail: bool) -> bool:
        rng = self.rng
        tests = self.repo.tests()
        command = "pytest -q" if rng.random() < 0.6 else f"pytest -q {rng.choice(tests)}"
        call = self._call("run_command", command=command)
        total = sum(len(self.repo.functions.get(t, [])) for t in tests) or 12
        if not fail:
            self.step(None, [call], [_Result(call, f"{'.' * min(total, 60)}\n{total} passed in {rng.randint(20, 90) / 100:.2f}s\n[exit code 0]")])
            return True
        test_file = rng.choice(tests)
        test_name = rng.choice(self.repo.functions[test_file])
        where = rng.choice(self.repo.sources())
        line = rng.randint(10, max(11, len(self.repo.files[where])))
        kind = rng.choice(_ERRORS)
        fact = f"FAILED {test_file}::{test_name} - {kind}: unbalanced input at position {rng.randint(2, 99)}"
        fn = rng.choice(self.repo.functions[where])
        output = "\n".join([
            "=" * 29 + " test session starts " + "=" * 30,
            f"collected {total} items", "",
            f"{test_file} {'.' * rng.randint(1, 6)}F{'.' * rng.randint(0, 6)}",
            "", "=" * 35 + " FAILURES " + "=" * 35,
            f"{'_' * 20} {test_name} {'_' * 20}", "",
            f"    def {test_name}():",
            f">       assert evaluate(parse(\"(1+(2*3))\")) == 7", "",
            f"{where}:{line}: in {fn}",
            f"    raise {kind}(f\"unbalanced input at position {{pos}}\")",
            f"E   {fact.split(' - ', 1)[1]}", "",
            "=" * 27 + " short test summary info " + "=" * 28,
            fact,
            f"{'=' * 20} 1 failed, {total - 1} passed in {rng.randint(20, 90) / 100:.2f}s {'=' * 20}",
            "[exit code 1]",
        ])
        self.step("Running the tests.", [call], [_Result(call, output, error=True, fact=fact)])
        return False

    def command(self) -> None:
        rng = self.rng
        command = rng.choice(_COMMANDS)
        call = self._call("run_command", command=command)
        if rng.random() < 0.3:
            path = rng.choice(self.repo.sources())
            fact = f"{path}:{rng.randint(1, 80)}:{rng.randint(1, 40)}: F401 `{_ident(rng)}` imported but unused"
            self.step(None, [call], [_Result(call, f"{fact}\nFound 1 error.\n[exit code 1]", error=True, fact=fact)])
        else:
            self.step(None, [call], [_Result(call, "All checks passed!\n[exit code 0]")])

    # ---- the session
    def work_cycle(self, focus: str) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            self.grep(rng.choice(self.repo.functions[focus]))
        if rng.random() < 0.3:
            call = self._call("list_files", path=".")
            self.step(None, [call], [_Result(call, self.repo.listing())])
        if rng.random() < 0.3:
            others = rng.sample(self.repo.sources(), 2)
            self.read_many(others)
        self.read(focus, f"Reading {focus}." if rng.random() < 0.5 else None)
        for _ in range(rng.randint(1, 3)):
            self.edit(focus if rng.random() < 0.7 else rng.choice(self.repo.sources()))
        if self.test_path not in self.repo.files or rng.random() < 0.2:
            self.write(self.test_path)
        attempts = 0
        while not self.run_tests(fail=attempts < 3 and rng.random() < 0.45):
            attempts += 1
            self.edit(rng.choice(self.repo.sources()))
        if rng.random() < 0.35:
            self.command()

    def run(self) -> None:
        rng = self.rng
        self.events.append(_Event("user", self.task))
        while self.requests < self.min_requests:
            focus = self.task_path if rng.random() < 0.6 else rng.choice(self.repo.sources())
            self.work_cycle(focus)
            touched = sorted({p for p, _ in self.modified[-6:]})
            self.say(
                f"Done: I changed {', '.join(touched)} and the tests pass. "
                f"{rng.choice(['Anything else?', 'Let me know if you want more tests.', 'Ready for review.'])}"
            )
            if rng.random() < 0.45:
                self.events.append(_Event("user", rng.choice(_ACKS)))
                self.say(rng.choice(["Thanks. Continuing with the remaining checks.", "Continuing.", "Great, going on."]))
            path = rng.choice(self.repo.sources())
            self.events.append(_Event("user", rng.choice(_FOLLOW_UPS).format(fn=rng.choice(self.repo.functions[path]), path=path)))


# --------------------------------------------------------------------------- rendering


def _retry_text(result: _Result) -> str:
    return f"{result.content}\n\nFix the errors and try again."


def _render(fmt: str, events: list[_Event]) -> tuple[list[Any], str | None, dict[int, int]]:
    """The messages of ``events`` in ``fmt``, the Anthropic system prompt, and for each
    event the index of its first message."""
    messages: list[Any] = []
    system: str | None = None
    first: dict[int, int] = {}
    if fmt == "pydantic-ai":
        return _render_pydantic_ai(events)
    for k, event in enumerate(events):
        first[k] = len(messages)
        if event.kind == "system":
            if fmt == "anthropic":
                system = event.text
            else:
                messages.append({"role": "system", "content": event.text})
        elif event.kind == "user":
            messages.append({"role": "user", "content": event.text})
        elif event.kind == "assistant":
            if fmt == "openai":
                message: dict[str, Any] = {"role": "assistant", "content": event.text}
                if event.calls:
                    message["tool_calls"] = [
                        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.args)}}
                        for c in event.calls
                    ]
                messages.append(message)
            elif fmt == "responses":
                if event.text is not None:
                    messages.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": event.text}]})
                for c in event.calls:
                    messages.append({"type": "function_call", "call_id": c.id, "name": c.name, "arguments": json.dumps(c.args)})
            else:
                blocks: list[dict[str, Any]] = [{"type": "text", "text": event.text}] if event.text is not None else []
                blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.args} for c in event.calls]
                messages.append({"role": "assistant", "content": blocks})
        else:
            if fmt == "openai":
                for r in event.results:
                    messages.append({"role": "tool", "tool_call_id": r.call.id, "content": _retry_text(r) if r.retry else r.content})
            elif fmt == "responses":
                for r in event.results:
                    messages.append({"type": "function_call_output", "call_id": r.call.id, "output": _retry_text(r) if r.retry else r.content})
            else:
                blocks = []
                for r in event.results:
                    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": r.call.id, "content": r.content}
                    if r.error:
                        block["is_error"] = True
                    blocks.append(block)
                messages.append({"role": "user", "content": blocks})
    return messages, system, first


def _render_pydantic_ai(events: list[_Event]) -> tuple[list[Any], None, dict[int, int]]:
    from pydantic_ai.messages import (
        ModelRequest,
        ModelResponse,
        SystemPromptPart,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )

    messages: list[Any] = []
    first: dict[int, int] = {}
    pending: list[Any] = []
    clock = [0]

    def now() -> datetime:
        clock[0] += 1
        return _EPOCH + timedelta(seconds=7 * clock[0])

    for k, event in enumerate(events):
        # The system prompt and the first user prompt travel in one request, as pydantic-ai sends them.
        first[k] = len(messages)
        if event.kind == "system":
            pending.append(SystemPromptPart(event.text or "", timestamp=now()))
        elif event.kind == "user":
            messages.append(ModelRequest(parts=[*pending, UserPromptPart(event.text or "", timestamp=now())], timestamp=now()))
            pending = []
        elif event.kind == "assistant":
            parts: list[Any] = [TextPart(event.text)] if event.text is not None else []
            parts += [ToolCallPart(c.name, dict(c.args), c.id) for c in event.calls]
            messages.append(ModelResponse(parts=parts, model_name="simulated-coder", timestamp=now()))
        else:
            # A retry is what pydantic-ai 2.x records for ModelRetry and argument validation
            # failures: the call's return with outcome "retried" (RetryPromptPart's successor).
            parts = [
                ToolReturnPart(
                    r.call.name,
                    r.content,  # pydantic-ai appends "Fix the errors and try again." when it sends it
                    r.call.id,
                    timestamp=now(),
                    outcome="retried" if r.retry else "failed" if r.error else "success",
                )
                for r in event.results
            ]
            messages.append(ModelRequest(parts=parts, timestamp=now()))
    return messages, None, first


def generate_session(seed: int = 0, format: str = "openai", *, min_requests: int = 200, index: int = 0) -> Session:
    """One simulated coding session of at least ``min_requests`` requests.

    The same ``(seed, index)`` gives the same session in every format (the same script,
    rendered four ways) and in every run.

    Example:
        >>> from tokensieve.analyze.simulate import generate_session
        >>> a = generate_session(1, "anthropic", min_requests=20)
        >>> b = generate_session(1, "anthropic", min_requests=20)
        >>> a.messages == b.messages and a.system is not None
        True
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    rng = random.Random(f"tokensieve-sim-{seed}-{index}")
    agent = _Agent(rng, min_requests)
    agent.run()
    messages, system, first = _render(format, agent.events)
    event_of_call: dict[str, int] = {}
    for k, event in enumerate(agent.events):
        for c in event.calls:
            event_of_call[c.id] = k
    modified = tuple((path, first[event_of_call[call.id]]) for path, call in agent.modified)
    errors = tuple(
        (r.fact, first[k])
        for k, event in enumerate(agent.events)
        for r in event.results
        if r.fact is not None
    )
    truth = GroundTruth(agent.task, modified, errors)
    return Session(f"sim-{seed}-{index}", format, messages, truth, system)


def generate_sessions(n: int, seed: int = 0, format: str = "openai", *, min_requests: int = 200) -> Iterator[Session]:
    """``n`` sessions (``index`` 0 to n-1 of ``seed``), generated one at a time."""
    for index in range(n):
        yield generate_session(seed, format, min_requests=min_requests, index=index)


# --------------------------------------------------------------------------- JSON Lines


def _messages_to_json(fmt: str, messages: list[Any]) -> list[Any]:
    if fmt == "pydantic-ai" and messages and not isinstance(messages[0], dict):
        from pydantic_ai.messages import ModelMessagesTypeAdapter

        return ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    return messages


def session_to_json(session: Session) -> dict[str, Any]:
    """The session as one JSON object (the line :func:`write_jsonl` writes)."""
    data: dict[str, Any] = {"id": session.id, "format": session.format}
    if session.system is not None:
        data["system"] = session.system
    if session.truth is not None:
        data["truth"] = session.truth.to_json()
    if session.requests is not None:
        data["requests"] = list(session.requests)
    data["messages"] = _messages_to_json(session.format, session.messages)
    return data


def _detect(messages: list[Any]) -> str:
    from tokensieve.compaction import _detect_format  # the core's rule, as compaction applies it

    return _detect_format(messages)


def session_from_json(data: Any, *, id: str, format: str | None = None, objects: bool = True) -> Session:
    """A session from its JSON: a session object, or a bare history (a list of messages).

    pydantic-ai messages become ``ModelMessage`` objects when ``objects`` (pydantic-ai must
    be installed), else stay pydantic-ai's JSON dicts (which ``compact_history`` reads too).
    """
    if isinstance(data, list):
        data = {"messages": data}
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise SessionReadError(f"{id}: expected a session object with a 'messages' list, or a list of messages")
    messages = data["messages"]
    fmt = format or data.get("format") or _detect(messages)
    if fmt not in FORMATS:
        raise SessionReadError(f"{id}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "pydantic-ai" and objects and messages and isinstance(messages[0], dict):
        from pydantic_ai.messages import ModelMessagesTypeAdapter

        try:
            messages = ModelMessagesTypeAdapter.validate_python(messages)
        except ValueError as e:  # pydantic's ValidationError
            raise SessionReadError(f"{id}: not pydantic-ai messages: {str(e).splitlines()[0]}") from None
    try:
        truth = GroundTruth.from_json(data["truth"]) if data.get("truth") is not None else None
        requests = tuple(int(n) for n in data["requests"]) if data.get("requests") is not None else None
    except (KeyError, TypeError, ValueError) as e:
        raise SessionReadError(f"{id}: a bad 'truth' or 'requests': {e}") from None
    system = data.get("system")
    return Session(str(data.get("id") or id), fmt, list(messages), truth, system if isinstance(system, str) else None, requests)


def write_jsonl(sessions: Iterable[Session], path: str | os.PathLike[str]) -> int:
    """Write ``sessions`` to ``path``, one JSON object per line; returns how many."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for session in sessions:
            f.write(json.dumps(session_to_json(session), ensure_ascii=False, separators=(",", ":")))
            f.write("\n")
            n += 1
    return n


def write_session_files(sessions: Iterable[Session], folder: str | os.PathLike[str]) -> list[str]:
    """Write each session to its own ``<id>.<format>.json`` file in ``folder`` (the id made
    safe for a file name, numbered if two sessions share it); returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths: list[str] = []
    for session in sessions:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", session.id) + f".{session.format}"
        path = os.path.join(os.fspath(folder), f"{stem}.json")
        n = 1
        while path in paths:
            n += 1
            path = os.path.join(os.fspath(folder), f"{stem}-{n}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(session_to_json(session), f, ensure_ascii=False, separators=(",", ":"))
        paths.append(path)
    return paths


@dataclass(frozen=True, slots=True)
class SessionSource:
    """Where one session is, before it is read: a line of a JSON Lines file (its text), or a
    whole file. Cheap to pickle, so the replay engines send these to their workers."""

    key: tuple[str, int]  # (file, line number; 0 for a whole file): the order of reports
    path: str
    text: str | None = None  # the line, for one-session-per-line files

    def load(self, format: str | None = None, objects: bool = True) -> Session:
        name = f"{self.path}:{self.key[1]}" if self.key[1] else self.path
        if self.text is not None:
            return session_from_json(_json(self.text, name), id=name, format=format, objects=objects)
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise SessionReadError(f"{self.path}: {e.strerror or e}") from None
        if self.path.endswith(".jsonl"):
            messages = [_json(line, f"{name}:{k}") for k, line in enumerate(raw.splitlines(), 1) if line.strip()]
            return session_from_json(messages, id=name, format=format, objects=objects)
        return session_from_json(_json(raw, name), id=name, format=format, objects=objects)


def _json(text: str | bytes, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SessionReadError(f"{name}: invalid JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    except UnicodeDecodeError as e:
        raise SessionReadError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _is_session_line(value: Any) -> bool:
    return isinstance(value, list) or (isinstance(value, dict) and isinstance(value.get("messages"), list))


def iter_sources(paths: Iterable[str | os.PathLike[str]]) -> Iterator[SessionSource]:
    """The sessions in ``paths``, streamed (a file is read line by line, never whole):
    folders are searched for ``*.json`` / ``*.jsonl`` files (sorted). A ``.jsonl`` file
    whose first line is a session (an object with ``messages``, or a list) holds one
    session per line; one whose first line is a message is one session, a message a line."""
    for raw in paths:
        path = os.fspath(raw)
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith((".json", ".jsonl")))
            yield from iter_sources(os.path.join(path, n) for n in names)
            continue
        if not path.endswith(".jsonl"):
            yield SessionSource((path, 0), path)
            continue
        with open(path, encoding="utf-8") as f:
            per_line: bool | None = None
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if per_line is None:
                    per_line = _is_session_line(_json(line, f"{path}:{number}"))
                    if not per_line:
                        break
                yield SessionSource((path, number), path, line)
            if per_line is False:
                yield SessionSource((path, 0), path)


def read_sessions(paths: Iterable[str | os.PathLike[str]], *, format: str | None = None) -> Iterator[Session]:
    """Every session of ``paths`` (files or folders), read one at a time.

    Example:
        >>> import tempfile, os
        >>> from tokensieve.analyze.simulate import generate_sessions, read_sessions, write_jsonl
        >>> folder = tempfile.mkdtemp()
        >>> write_jsonl(generate_sessions(2, format="responses", min_requests=10), os.path.join(folder, "s.jsonl"))
        2
        >>> [s.id for s in read_sessions([folder])]
        ['sim-0-0', 'sim-0-1']
    """
    for source in iter_sources(paths):
        yield source.load(format)
