"""The README's Python snippets, run as a user runs them (issue 9: "README snippets are
executed by the test suite").

Every ```python block of README.md is executed in order, in one namespace, in a fresh
interpreter: a name one block imports is there for the next, and a module imported by
an earlier block (``tokensieve.integrations.pydantic_ai`` imports ``tokensieve.preflight``)
is imported for the later ones too, as in a user's session. That is how
``from tokensieve import preflight`` returning the submodule went unnoticed (item 2).

Blocks are never edited out. What needs the outside world gets a stand-in: ``client`` is
a fake OpenAI client whose ``chat.completions.create`` checks its arguments and returns
a usage, and the Cerebras provider gets a placeholder API key (constructing an
``Agent`` sends nothing). Shell blocks (``pip install``, ``make``) are not run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")

FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)


def readme_blocks() -> list[tuple[int, str, str]]:
    """Every fenced block of the README: (line of its first code line, language, code)."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start("code")) + 1
        blocks.append((line, match.group("lang").lower(), match.group("code")))
    return blocks


def python_blocks() -> list[tuple[int, str]]:
    return [(line, code) for line, lang, code in readme_blocks() if lang in ("python", "py")]


# Runs in the fresh interpreter: the stand-ins, then each block with README line numbers
# in its tracebacks, then one JSON line saying how far it got.
RUNNER = textwrap.dedent(
    '''
    import json, sys, traceback, types

    calls = []

    class _Completions:
        def create(self, *, model, messages, **settings):
            assert isinstance(messages, list) and messages, "messages must be a non-empty list"
            assert not (set(settings) - {"max_tokens", "max_completion_tokens", "temperature"}), settings
            calls.append({"messages": messages, "settings": settings})
            usage = types.SimpleNamespace(prompt_tokens=1_200, completion_tokens=300, total_tokens=1_500)
            message = types.SimpleNamespace(role="assistant", content="Done.", tool_calls=None)
            choice = types.SimpleNamespace(message=message, finish_reason="stop", index=0)
            return types.SimpleNamespace(usage=usage, choices=[choice], model=model)

    client = types.SimpleNamespace(chat=types.SimpleNamespace(completions=_Completions()))
    namespace = {"__name__": "__main__", "client": client}
    blocks = json.loads(sys.stdin.read())
    report = {"ran": [], "failed": None}
    for line, code in blocks:
        try:
            exec(compile("\\n" * (line - 1) + code, "README.md", "exec"), namespace)
        except BaseException as error:
            import tokensieve
            report["failed"] = {
                "line": line,
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
            }
            break
        report["ran"].append(line)
    report["client_calls"] = len(calls)
    if calls and "check" in namespace:
        report["sent_what_preflight_returned"] = calls[-1]["messages"] is namespace["check"].messages
    print("README-REPORT " + json.dumps(report))
    '''
)


def run_readme(tmp_path) -> dict:
    env = {
        **os.environ,
        # A placeholder: pydantic-ai's Cerebras provider wants a key to construct the
        # model; no request is ever made.
        "CEREBRAS_API_KEY": "placeholder-key-for-readme-test",
    }
    result = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(python_blocks()),
        capture_output=True,
        text=True,
        cwd=tmp_path,  # usage.sqlite and anything else a snippet writes lands here
        env=env,
        timeout=300,
    )
    line = next((l for l in result.stdout.splitlines() if l.startswith("README-REPORT ")), None)
    assert line is not None, f"the runner crashed:\n{result.stdout}\n{result.stderr}"
    return json.loads(line.removeprefix("README-REPORT "))


def test_the_readme_has_python_snippets_to_run():
    blocks = python_blocks()
    assert len(blocks) >= 4
    codes = "\n".join(code for _, code in blocks)
    for name in ("compact_history", "preflight", "TokenBudget", "count_tokens"):
        assert name in codes


def test_every_readme_python_snippet_runs_in_order_in_one_session(tmp_path):
    report = run_readme(tmp_path)
    failed = report["failed"]
    if failed is not None:
        pytest.fail(f"README.md snippet at line {failed['line']} failed: {failed['error']}\n{failed['traceback']}")
    assert report["ran"] == [line for line, _ in python_blocks()]
    # The preflight snippet did call the (fake) client, with the messages preflight chose.
    assert report["client_calls"] == 1
    assert report["sent_what_preflight_returned"] is True
