"""The ``tokensieve`` command as a user meets it (issue 9, item 11): help, version, stdin,
errors that name the file, machine-readable and quiet reports, summaries of long lists,
a missing extra, a closed pipe, an unwritable output, progress and rich tables."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import pytest

import tokensieve
from tokensieve import __main__ as cli

SESSION = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "session.json")


def tool_loop(exchanges: int) -> list[dict]:
    """A system prompt, a task and ``exchanges`` tool calls with their results."""
    messages: list[dict] = [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Fix the failing test."},
    ]
    for i in range(exchanges):
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": f"call_{i}", "type": "function", "function": {"name": "read", "arguments": "{}"}}],
            }
        )
        messages.append({"role": "tool", "tool_call_id": f"call_{i}", "content": f"line {i} " * 40})
    return messages


@pytest.fixture(scope="module")
def long_history(tmp_path_factory) -> str:
    """A 10,002-message history on disk."""
    path = tmp_path_factory.mktemp("cli") / "long.json"
    path.write_text(json.dumps(tool_loop(5_000)), encoding="utf-8")
    return str(path)


def run_cli(*args: str, stdin: str | None = None, code: str | None = None, timeout: float = 120):
    """The command in a fresh interpreter (``code`` runs first, e.g. to hide a module)."""
    program = (code or "") + "\nimport sys\nfrom tokensieve.__main__ import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", program, *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


# ------------------------------------------------------------------ help and version


def test_version_prints_the_installed_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tokensieve {tokensieve.__version__}"


def test_python_dash_m_tokensieve_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "tokensieve", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("count", "compact", "bench"):
        assert command in result.stdout


def _parsers(parser):
    yield parser.prog, parser
    for action in parser._actions:
        if action.choices and isinstance(action.choices, dict):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_subcommand_and_option_has_help_text():
    parser = cli.build_parser()
    seen = []
    for prog, p in _parsers(parser):
        for action in p._actions:
            seen.append((prog, action.dest))
            assert action.help and action.help.strip(), f"{prog}: {action.option_strings or action.dest} has no help"
            if action.choices and isinstance(action.choices, dict):
                helped = {a.dest for a in action._choices_actions if a.help}
                assert helped == set(action.choices), f"{prog}: subcommands without help: {set(action.choices) - helped}"
    dests = {d for _, d in seen}
    # The walk did reach the subcommands' own options.
    assert {"json", "quiet", "verbose", "output", "preset", "quick", "history"} <= dests


# ------------------------------------------------------------------ input


def test_a_dash_reads_the_history_from_stdin(monkeypatch, capsys):
    with open(SESSION, encoding="utf-8") as f:
        text = f.read()
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert cli.main(["count", "-", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = tokensieve.count_history_tokens(json.loads(text))
    assert report["file"] == "<stdin>"
    assert report["per_message"] == [int(n) for n in expected]


def test_a_json_syntax_error_names_the_file_line_and_column(tmp_path, capsys):
    path = tmp_path / "session.json"
    path.write_text('[\n  {"role": "user",\n    "content": }\n]\n', encoding="utf-8")
    assert cli.main(["compact", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"tokensieve: {path}: line 3 column 16: Expecting value"


def test_utf16_and_byte_order_marks_are_read(tmp_path, capsys):
    messages = [{"role": "user", "content": "Grüße, 世界"}]
    expected = int(tokensieve.count_history_tokens(messages).sum())
    for encoding in ("utf-8-sig", "utf-16"):
        path = tmp_path / f"{encoding}.json"
        path.write_text(json.dumps(messages, ensure_ascii=False), encoding=encoding)
        assert cli.main(["count", str(path), "--quiet"]) == 0
        assert capsys.readouterr().out == f"{expected}\n"


def test_a_missing_file_and_a_non_list_are_one_line_errors_naming_the_file(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert cli.main(["count", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"tokensieve: {missing}: No such file or directory"
    obj = tmp_path / "obj.json"
    obj.write_text('{"role": "user"}', encoding="utf-8")
    assert cli.main(["count", str(obj)]) == 2
    assert capsys.readouterr().err.strip() == f"tokensieve: {obj}: expected a JSON list of messages, found a JSON dict"


def test_an_invalid_message_error_names_the_file_and_the_message(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"role": "user", "content": "hi"}, {"content": 3}]), encoding="utf-8")
    assert cli.main(["compact", str(path), "--format", "openai"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"tokensieve: {path}: messages[1]: message without a role"
    assert "Traceback" not in err


# ------------------------------------------------------------------ reports


def test_json_report_of_compact_holds_the_counts_and_the_dropped_ranges(capsys):
    assert cli.main(["compact", SESSION, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    with open(SESSION, encoding="utf-8") as f:
        messages = json.load(f)
    result = tokensieve.Compactor("cerebras").compact(messages)
    assert report["blocked"] is False
    assert report["tokens_before"] == result.tokens_before and report["tokens_after"] == result.tokens_after
    assert report["messages_after"] == len(report["sent"]) == result.messages_after
    # The ranges are lossless: expanding them gives the dropped indices back.
    expanded = [i for a, b in report["dropped_ranges"] for i in range(a, b + 1)]
    assert expanded == list(result.dropped)
    assert report["dropped_count"] == len(result.dropped)
    assert report["budget"]["preset"] == "cerebras"
    # Item 10's split of the repairs is reported when this build has it, else null.
    for field in ("pairs_cut_by_window", "input_defects_repaired"):
        assert report[field] == getattr(result, field, None)


def test_json_report_of_count_has_every_message_and_the_total(capsys):
    assert cli.main(["count", SESSION, "--json", "--encoding", "cl100k_base"]) == 0
    report = json.loads(capsys.readouterr().out)
    with open(SESSION, encoding="utf-8") as f:
        counts = tokensieve.count_history_tokens(json.load(f), encoding="cl100k_base")
    assert report["per_message"] == [int(n) for n in counts]
    assert report["total_tokens"] == int(counts.sum())
    assert sum(row["tokens"] for row in report["by_role"].values()) == report["total_tokens"]


def test_quiet_prints_nothing_for_compact_and_only_the_total_for_count(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert cli.main(["compact", SESSION, "--quiet", "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(out.read_text(encoding="utf-8"))
    assert cli.main(["count", SESSION, "-q"]) == 0
    with open(SESSION, encoding="utf-8") as f:
        total = int(tokensieve.count_history_tokens(json.load(f)).sum())
    assert capsys.readouterr().out == f"{total}\n"


def test_json_and_quiet_together_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["count", SESSION, "--json", "--quiet"])
    assert exit_.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_dropped_messages_are_summarized_as_ranges_not_listed(long_history, capsys):
    assert cli.main(["compact", long_history]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) < 25, out
    dropped = next(line for line in lines if line.startswith("dropped "))
    assert dropped.startswith("dropped 9,99") and "#2-#99" in dropped and "assistant" in dropped and "tool" in dropped


def test_count_of_a_long_history_is_summarized_by_role_and_largest_messages(long_history, capsys):
    assert cli.main(["count", long_history]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 25, out
    assert "5,000 messages" in out and "--verbose" in out and "total: " in out


def test_verbose_lists_every_dropped_message(long_history, capsys):
    assert cli.main(["compact", long_history, "--verbose"]) == 0
    out = capsys.readouterr().out
    assert cli.main(["compact", long_history, "--json"]) == 0
    dropped = json.loads(capsys.readouterr().out)["dropped_count"]
    listed = [line for line in out.splitlines() if line.startswith("  #") and ("tool" in line or "assistant" in line)]
    assert len(listed) >= dropped > 9_000


def test_the_cli_module_examples_pass():
    import doctest

    outcome = doctest.testmod(cli, optionflags=doctest.ELLIPSIS)
    assert outcome.attempted >= 4 and outcome.failed == 0


def test_ranges_are_consecutive_runs_and_long_lists_are_cut():
    assert cli.index_ranges([]) == []
    assert cli.index_ranges([0, 1, 2, 5, 7, 8]) == [(0, 2), (5, 5), (7, 8)]
    text = cli.format_ranges([(i * 3, i * 3 + 1) for i in range(20)], limit=3)
    assert text == "#0-#1, #3-#4, #6-#7, ... and 17 more ranges"


def test_a_blocked_history_exits_1_with_the_counts(tmp_path, capsys):
    path = tmp_path / "huge.json"
    path.write_text(json.dumps([{"role": "user", "content": "x " * 40_000}]), encoding="utf-8")
    assert cli.main(["compact", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["blocked"] is True and report["tokens_after"] > report["limit"] == 25_000
    assert cli.main(["compact", str(path)]) == 1
    assert capsys.readouterr().err.startswith(f"blocked: {path}: ")


# ------------------------------------------------------------------ output file


def test_output_into_a_missing_folder_fails_before_printing_anything(tmp_path, capsys):
    target = tmp_path / "no" / "such" / "out.json"
    assert cli.main(["compact", SESSION, "-o", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"tokensieve: cannot write {target}: the folder {target.parent} does not exist"
    assert not target.parent.exists()


def test_output_onto_a_folder_fails_before_printing_anything(tmp_path, capsys):
    assert cli.main(["compact", SESSION, "-o", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "is a folder" in captured.err


def test_output_file_holds_the_compacted_history(tmp_path, capsys):
    target = tmp_path / "out.json"
    assert cli.main(["compact", SESSION, "-o", str(target)]) == 0
    assert f"wrote {target}" in capsys.readouterr().out
    with open(SESSION, encoding="utf-8") as f:
        expected = tokensieve.compact_history(json.load(f), "cerebras")
    assert json.loads(target.read_text(encoding="utf-8")) == expected


def test_output_dash_writes_the_history_to_stdout_and_the_report_to_stderr(capsys):
    assert cli.main(["compact", SESSION, "-o", "-", "--json"]) == 0
    captured = capsys.readouterr()
    with open(SESSION, encoding="utf-8") as f:
        expected = tokensieve.compact_history(json.load(f), "cerebras")
    assert json.loads(captured.out) == expected
    assert json.loads(captured.err)["messages_after"] == len(expected)


# ------------------------------------------------------------------ failures without tracebacks


def test_bench_without_the_extra_is_one_line_naming_the_install_command():
    # tiktoken hidden: importing it raises ImportError, as when it is not installed.
    result = run_cli("bench", "--quick", code="import sys; sys.modules['tiktoken'] = None")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (
        'tokensieve: tokensieve bench needs the bench extra: pip install "tokensieve[bench]" (missing: tiktoken)'
    )


def test_bench_first_count_needs_no_extra_and_names_the_peers_it_did_not_find():
    hide = "import sys\nfor name in ('tiktoken', 'fastokens', 'toktok', 'pydantic_ai'):\n    sys.modules[name] = None\n"
    result = run_cli("bench", "--first-count", "--quick", code=hide)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if "tokensieve" in line.split()[1:2]]
    assert [row[0] for row in rows] == list(tokensieve.ENCODINGS)
    assert all(row[3] == "ms" and row[-1] == "MB" for row in rows)
    assert "not installed" in result.stdout and "tiktoken, fastokens, toktok-rs" in result.stdout


def test_bench_counting_alone_reports_both_modes_of_both_encodings_exactly():
    hide = "import sys\nfor name in ('tiktoken', 'fastokens', 'toktok', 'pydantic_ai'):\n    sys.modules[name] = None\n"
    result = run_cli("bench", "--counting", "--quick", code=hide, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] in (["o200k_base"], ["cl100k_base"])]
    assert [(r[0], r[-2]) for r in rows] == [("o200k_base", "tokensieve")] * 2 + [("cl100k_base", "tokensieve")] * 2
    assert "not exact" not in result.stdout and "not installed" in result.stdout


def test_piping_into_head_ends_quietly_without_a_traceback(long_history):
    process = subprocess.Popen(
        [sys.executable, "-m", "tokensieve", "count", long_history, "--verbose"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()  # what `head -1` reads, then it exits
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == cli.EXIT_BROKEN_PIPE
    assert first.split() == [b"#", b"role", b"tokens", b"content"]
    assert stderr == ""


# ------------------------------------------------------------------ terminal output


def test_piped_output_is_plain_and_does_not_import_rich():
    code = (
        "import sys\n"
        "from tokensieve.__main__ import main\n"
        f"status = main(['compact', {SESSION!r}])\n"
        "assert 'rich' not in sys.modules, 'rich imported for a piped report'\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("budget: cerebras:") and "┃" not in result.stdout


def test_a_terminal_report_is_a_rich_table():
    from rich.console import Console

    stream = io.StringIO()
    args = cli.build_parser().parse_args(["compact", SESSION])
    out = cli.Output(args, stream=stream)
    out.console = Console(file=stream, force_terminal=True, color_system=None, width=120)
    with open(SESSION, encoding="utf-8") as f:
        messages = json.load(f)
    compactor = tokensieve.Compactor("cerebras")
    result = compactor.compact(messages)
    report = cli.compact_report("session.json", messages, result, cli._budget(compactor.config, "cerebras"), False)
    cli._render_compact_rich(report, out)
    text = stream.getvalue()
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    assert "messages" in header and "tokens" in header
    assert f"│ before  │ {result.messages_before:>8} │" in text
    assert f"{result.tokens_before:,}" in text and "sent" in text


def test_progress_appears_only_after_the_delay():
    from rich.console import Console

    fast = io.StringIO()
    with cli.progress("reading a small file", console=Console(file=fast, force_terminal=True), delay=5.0):
        pass
    assert fast.getvalue() == ""
    slow = io.StringIO()
    with cli.progress("reading a large file", console=Console(file=slow, force_terminal=True), delay=0.01):
        time.sleep(0.5)
    assert "reading a large file" in slow.getvalue()


def test_progress_is_off_when_stderr_is_not_a_terminal(capsys):
    with cli.progress("compacting", delay=0.0):
        time.sleep(0.2)
    assert capsys.readouterr().err == ""
