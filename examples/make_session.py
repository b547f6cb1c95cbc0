"""Regenerate session.json: a coding agent's tool loop, as OpenAI chat-completions dicts.

About 21K tokens: above the "cerebras" preset's 15K compaction threshold, so
`tokensieve compact examples/session.json` has something to do.
"""

import json
import random
from pathlib import Path

random.seed(7)


def source(name: str, functions: int) -> str:
    lines = [f'"""{name}: part of the mdlist package."""', "from __future__ import annotations", ""]
    for i in range(functions):
        lines += [
            f"def {name}_helper_{i}(items: list[str], depth: int = 0) -> list[str]:",
            f'    """Normalise list items at nesting level {i}."""',
            "    out = []",
            "    for item in items:",
            "        stripped = item.strip()",
            "        if not stripped:",
            "            continue",
            "        out.append(' ' * depth + stripped.replace('\\t', '    '))",
            "    return out",
            "",
        ]
    return "\n".join(lines)


def pytest_output(failed: int) -> str:
    body = "".join(f"tests/test_{m}.py {'.' * random.randint(5, 30)}\n" for m in ["parser", "render", "cli", "lists"])
    failures = "".join(
        f"___ test_case_{k} ___\n\n    def test_case_{k}():\n        doc = parse(SAMPLE_{k})\n"
        f">       assert render(doc) == EXPECTED_{k}\nE       AssertionError: assert '- a\\n  - b' == '- a\\n    - b'\n\n"
        f"tests/test_render.py:{100 + k}: AssertionError\n"
        for k in range(failed)
    )
    return f"===== test session starts =====\ncollected 120 items\n\n{body}\n===== FAILURES =====\n{failures}===== {failed} failed, {120 - failed} passed in 1.92s ====="


messages: list[dict] = [
    {
        "role": "system",
        "content": "You are a careful coding agent working in the mdlist repository. Use the tools to read, search and "
        "edit files and to run the tests. Run the tests after every change. Keep edits minimal and explain what you "
        "changed and why.",
    },
    {
        "role": "user",
        "content": "The render tests fail after the nesting refactor. Find out why and fix it without breaking the parser tests.",
    },
]
calls = 0


def call(name: str, args: dict, result: str, text: str | None = None) -> None:
    global calls
    calls += 1
    call_id = f"call_{calls:03d}"
    tool_call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
    messages.append({"role": "assistant", "content": text, "tool_calls": [tool_call]})
    messages.append({"role": "tool", "tool_call_id": call_id, "content": result})


call("run_tests", {"path": "tests/"}, pytest_output(6))
for module, functions in [("parser", 50), ("render", 70), ("nesting", 50), ("cli", 40)]:
    call("read_file", {"path": f"mdlist/{module}.py"}, source(module, functions), text=f"Reading mdlist/{module}.py.")
call("grep", {"pattern": "depth", "path": "mdlist/"}, "\n".join(f"mdlist/render.py:{10 + i * 7}:        out.append(' ' * depth + stripped)" for i in range(60)))
call(
    "edit_file",
    {"path": "mdlist/render.py", "old": "' ' * depth", "new": "'  ' * depth"},
    "Edited mdlist/render.py (18 replacements).",
    text="render indents by one space per level; the tests expect two. Fixing.",
)
call("run_tests", {"path": "tests/"}, pytest_output(2))
call("read_file", {"path": "tests/test_render.py"}, source("test_render", 30))
call(
    "edit_file",
    {"path": "mdlist/nesting.py", "old": "depth + 1", "new": "depth + 2"},
    "Edited mdlist/nesting.py (3 replacements).",
    text="The two remaining cases nest through nesting.py, which still steps by one.",
)
call("run_tests", {"path": "tests/"}, pytest_output(0))
messages.append(
    {
        "role": "assistant",
        "content": "All 120 tests pass. render.py indented nested items by one space per level while the tests expect "
        "two; nesting.py had the same off-by-one step. Both now use two spaces per level.",
    }
)
messages.append({"role": "user", "content": "Good. Now add a regression test for three levels of nesting and update the changelog."})

Path(__file__).with_name("session.json").write_text(json.dumps(messages, indent=2) + "\n")
