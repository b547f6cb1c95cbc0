"""Hypothesis strategies: coding-agent sessions with known facts, in the four formats.

A session is a task (the first user prompt), then turns: the assistant's text and tool
calls (reads, writes, edits, creates, deletes, moves, patches in the `apply_patch` and
unified-diff forms, shell commands that change files or only read them, test runs that
pass or fail) answered by results (some of them errors), and user follow-ups. Each tool
step knows the paths it changes, so a session carries its ground truth:
``modified_paths`` (every path created, modified, written, deleted or moved, sources and
destinations) and ``decoys`` (paths only read, or named in a here-document's body, which
no summary should list as changed).

:func:`coding_sessions` draws the abstract session; :func:`render` writes it as
pydantic-ai message objects, OpenAI chat dicts, Responses items or Anthropic dicts;
:func:`coding_histories` draws both at once.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

FORMATS = ("pydantic-ai", "openai", "responses", "anthropic")

_DIRS = ("src", "tests", "docs", "src/pkg/sub", "lib", "app/ünïcode", "scripts", ".github/workflows")
_STEMS = ("main", "utils", "config", "test_api", "README", "parser", "naïve", "data-set", "v1.2", "__init__")
_EXTS = (".py", ".md", ".toml", ".rs", ".json", ".yml", "", ".tar.gz")

paths = st.one_of(
    st.builds(lambda d, s, e: f"{d}/{s}{e}", st.sampled_from(_DIRS), st.sampled_from(_STEMS), st.sampled_from(_EXTS)),
    st.builds(lambda s, e: f"{s}{e}", st.sampled_from(_STEMS), st.sampled_from(_EXTS)),
    st.sampled_from(["docs/read me.md", "/abs/path/to/file.txt", "./rel/file.c", "src/日本語.py"]),
)

#: Task prompts: any text a user might type (no lone surrogates: they have no UTF-8 form
#: and are replaced when read), never blank and never shaped like a summary.
tasks = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200
).filter(lambda t: t.strip() and not t.startswith("[Summary of "))
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=3, max_size=40).filter(str.strip)


@dataclass
class Call:
    id: str
    name: str
    #: A dict (JSON arguments) or a str (a raw input, as custom tools take).
    args: Any
    result: str
    is_error: bool = False
    #: The Responses item type it is written as (``function_call`` by default).
    responses_type: str = "function_call"


@dataclass
class Turn:
    kind: str  # "user", "assistant"
    text: str | None = None
    calls: list[Call] = field(default_factory=list)


@dataclass
class CodingSession:
    system: str
    task: str
    turns: list[Turn]
    modified_paths: set[str]
    decoys: set[str]
    decisions: list[str]


def _q(path: str) -> str:
    return shlex.quote(path)


@st.composite
def tool_steps(draw, ids) -> tuple[Call, set[str], set[str]]:
    """One tool call with its result: (call, paths it changes, paths it only reads)."""
    kind = draw(
        st.sampled_from(
            [
                "write", "edit", "edit_cc", "str_replace", "create", "delete", "move", "patch_codex",
                "patch_unified", "patch_responses", "rm", "mv", "touch", "sed", "redirect", "heredoc", "tee",
                "read", "cat", "pytest", "grep",
            ]
        )
    )
    p, q = draw(paths), draw(paths)
    call_id = f"call_{next(ids)}"
    failed = draw(st.integers(0, 9)) == 0
    ok, err = "ok", "Error: permission denied"

    def call(name: str, args: Any, changed: set[str], read: set[str] = frozenset(), **kw: Any):
        return Call(call_id, name, args, err if failed else ok, failed, **kw), set(changed), set(read)

    def shell(cmd: str, changed: set[str], read: set[str] = frozenset(), code: int | None = None):
        code = (1 if failed else 0) if code is None else code
        out = f"output\nexit code: {code}" if code == 0 else f"FAILED something\nexit code: {code}"
        name = draw(st.sampled_from(["bash", "shell", "run_terminal_cmd"]))
        local = draw(st.booleans())
        if local:
            return Call(call_id, "local_shell", {"type": "exec", "command": ["bash", "-lc", cmd]}, out, False,
                        "local_shell_call"), set(changed), set(read)
        return Call(call_id, name, {"command": cmd}, out, False), set(changed), set(read)

    if kind == "write":
        return call("write_file", {"path": p, "content": "print('hi')\n"}, {p})
    if kind == "edit":
        return call("edit_file", {"path": p, "old_str": "a = 1", "new_str": "a = 2"}, {p})
    if kind == "edit_cc":
        return call("Edit", {"file_path": p, "old_string": "x", "new_string": "y"}, {p})
    if kind == "str_replace":
        command = draw(st.sampled_from(["str_replace", "create", "insert"]))
        return call("str_replace_based_edit_tool", {"command": command, "path": p, "new_str": "z"}, {p})
    if kind == "create":
        return call("create_file", {"file_path": p, "content": ""}, {p})
    if kind == "delete":
        return call("delete_file", {"path": p}, {p})
    if kind == "move":
        return call("move_file", {"source": p, "destination": q}, {p, q})
    if kind == "patch_codex":
        patch = f"*** Begin Patch\n*** Update File: {p}\n@@\n-old\n+new\n*** Add File: {q}\n+x\n*** End Patch"
        if draw(st.booleans()):
            return call("apply_patch", patch, {p, q}, responses_type="custom_tool_call")
        return call("apply_patch", {"input": patch}, {p, q})
    if kind == "patch_unified":
        diff = f"diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n@@ -1 +1 @@\n-a\n+b\n"
        return call("apply_diff", {"patch": diff}, {p})
    if kind == "patch_responses":
        return call("apply_patch", {"type": "update_file", "path": p, "diff": "@@\n-a\n+b\n"}, {p},
                    responses_type="apply_patch_call")
    if kind == "rm":
        return shell(f"rm -f {_q(p)}", {p})
    if kind == "mv":
        return shell(f"mkdir -p out && mv {_q(p)} {_q(q)}", {"out", p, q})
    if kind == "touch":
        return shell(f"touch {_q(p)}", {p})
    if kind == "sed":
        return shell(f"sed -i 's/foo/bar/g' {_q(p)}", {p})
    if kind == "redirect":
        return shell(f"echo 'x = 1' >> {_q(p)} 2>&1", {p})
    if kind == "heredoc":
        return shell(f"cat > {_q(p)} <<'EOF'\nrm decoy_in_heredoc.txt\nEOF", {p}, {"decoy_in_heredoc.txt"})
    if kind == "tee":
        return shell(f"printf 'a\\n' | tee {_q(p)} > /dev/null", {p})
    if kind == "read":
        return call("read_file", {"path": p}, set(), {p})
    if kind == "cat":
        return shell(f"cat {_q(p)} | head -n 20", set(), {p})
    if kind == "pytest":
        return shell("pytest -q tests", set(), code=draw(st.sampled_from([0, 1, 2])))
    return shell(f"grep -rn TODO {_q(p)}", set(), {p})


@st.composite
def coding_sessions(draw, max_turns: int = 12) -> CodingSession:
    """An abstract coding session with its ground truth."""
    import itertools

    ids = itertools.count(1)
    task = draw(tasks)
    turns: list[Turn] = []
    modified: set[str] = set()
    read_only: set[str] = set()
    decisions: list[str] = []
    for _ in range(draw(st.integers(1, max_turns))):
        if draw(st.integers(0, 5)) == 0:
            turns.append(Turn("user", draw(words)))
            continue
        text = None
        if draw(st.booleans()):
            choice = draw(words).strip()
            text = f"I'll use {choice} for this." if draw(st.booleans()) else f"Now the {choice}."
            if text.startswith("I'll"):
                decisions.append(text)
        steps = draw(st.lists(tool_steps(ids), min_size=0 if text else 1, max_size=3))
        calls = []
        for call, changed, read in steps:
            calls.append(call)
            modified |= changed
            read_only |= read
        turns.append(Turn("assistant", text, calls))
    return CodingSession(
        system="You are a careful coding agent.",
        task=task,
        turns=turns,
        modified_paths=modified,
        decoys=read_only - modified,
        decisions=decisions,
    )


def render(session: CodingSession, fmt: str) -> list:
    """``session`` as a history in format ``fmt``."""
    return _RENDERERS[fmt](session)


@st.composite
def coding_histories(draw, fmt: str | None = None) -> tuple[CodingSession, str, list]:
    """(session, format, history)."""
    session = draw(coding_sessions())
    fmt = fmt or draw(st.sampled_from(FORMATS))
    return session, fmt, render(session, fmt)


def _args_json(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)


def _openai(s: CodingSession) -> list:
    out: list = [{"role": "system", "content": s.system}, {"role": "user", "content": s.task}]
    for t in s.turns:
        if t.kind == "user":
            out.append({"role": "user", "content": t.text})
            continue
        message: dict = {"role": "assistant", "content": t.text}
        if t.calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "custom", "custom": {"name": c.name, "input": c.args}}
                if isinstance(c.args, str)
                else {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _args_json(c.args)}}
                for c in t.calls
            ]
        out.append(message)
        out += [{"role": "tool", "tool_call_id": c.id, "content": c.result} for c in t.calls]
    return out


def _responses(s: CodingSession) -> list:
    out: list = [{"role": "developer", "content": s.system}, {"role": "user", "content": s.task}]
    for t in s.turns:
        if t.kind == "user":
            out.append({"role": "user", "content": [{"type": "input_text", "text": t.text}]})
            continue
        if t.text is not None:
            out.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": t.text}]})
        for c in t.calls:
            if c.responses_type == "local_shell_call":
                out.append({"type": "local_shell_call", "call_id": c.id, "action": c.args, "status": "completed"})
            elif c.responses_type == "apply_patch_call":
                out.append({"type": "apply_patch_call", "call_id": c.id, "operation": c.args, "status": "completed"})
            elif isinstance(c.args, str):
                out.append({"type": "custom_tool_call", "call_id": c.id, "name": c.name, "input": c.args})
            else:
                out.append({"type": "function_call", "call_id": c.id, "name": c.name, "arguments": _args_json(c.args)})
        for c in t.calls:
            kind = {
                "local_shell_call": "local_shell_call_output",
                "apply_patch_call": "apply_patch_call_output",
            }.get(c.responses_type, "custom_tool_call_output" if isinstance(c.args, str) else "function_call_output")
            out.append({"type": kind, "call_id": c.id, "output": c.result})
    return out


def _anthropic(s: CodingSession) -> list:
    out: list = [{"role": "user", "content": s.task}]
    pending_text: str | None = None
    for t in s.turns:
        if t.kind == "user":
            if out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append({"type": "text", "text": t.text})
            else:
                out.append({"role": "user", "content": t.text})
            continue
        blocks: list = []
        if t.text is not None:
            blocks.append({"type": "text", "text": t.text})
        blocks += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.args if isinstance(c.args, dict) else {"input": c.args}}
            for c in t.calls
        ]
        out.append({"role": "assistant", "content": blocks})
        if t.calls:
            out.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": c.id, "content": c.result, "is_error": c.is_error}
                        for c in t.calls
                    ],
                }
            )
    del pending_text
    return out


def _pydantic_ai(s: CodingSession) -> list:
    from pydantic_ai.messages import (
        ModelRequest,
        ModelResponse,
        SystemPromptPart,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )

    out: list = [ModelRequest([SystemPromptPart(s.system), UserPromptPart(s.task)])]
    for t in s.turns:
        if t.kind == "user":
            out.append(ModelRequest([UserPromptPart(t.text)]))
            continue
        parts: list = []
        if t.text is not None:
            parts.append(TextPart(t.text))
        parts += [ToolCallPart(c.name, c.args, tool_call_id=c.id) for c in t.calls]
        out.append(ModelResponse(parts))
        if t.calls:
            out.append(
                ModelRequest(
                    [
                        ToolReturnPart(c.name, c.result, tool_call_id=c.id, outcome="failed" if c.is_error else "success")
                        for c in t.calls
                    ]
                )
            )
    return out


_RENDERERS = {"pydantic-ai": _pydantic_ai, "openai": _openai, "responses": _responses, "anthropic": _anthropic}
