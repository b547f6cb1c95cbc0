"""The ``tokensieve`` command.

    tokensieve count   HISTORY.json            tokens per message
    tokensieve compact HISTORY.json [--preset cerebras] [--max-exchanges N] [-o OUT.json]
    tokensieve bench   [--quick] [--first-count] [--counting]   compact_history vs the pure-Python baseline; first count, counting vs the peers
    tokensieve narrow  [FILE|-] [--tool NAME] [--exit-code N] [--mode M] [--max-tokens N] [--spill-dir D] [--json]
    tokensieve replay  SESSIONS... [--policy P]... [--json] [--engine local|ray] [--price USD]
    tokensieve simulate --sessions N --format F -o DIR
    tokensieve analyze SOURCE... [--json] [--html F] [--preset P] [--format F] [--columns MAP]

A history file is a JSON list of messages: OpenAI chat-completions, OpenAI Responses or
Anthropic Messages dicts, or pydantic-ai's own JSON (``ModelMessagesTypeAdapter`` dumps,
read through pydantic-ai); the format is detected, or named with --format. ``-`` reads
standard input.

On a terminal the reports are rich tables; piped, or with ``--json``, they are plain text
or one JSON object. Long lists (the messages a 10,000-message history drops) are
summarized as ranges and counts; ``--verbose`` lists every message.

Exit status: 0 done, 1 the history is over the hard limit even compacted (``compact``),
2 bad input or usage (a missing file, invalid JSON or messages, a missing extra).

``rich`` is imported only here and only when a table or a spinner is shown, so
``import tokensieve`` stays light.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, get_args

import tokensieve
from tokensieve.compaction import Format

__all__ = ["build_parser", "main"]

#: Exit statuses of the command. A closed pipe (``| head``) ends it with 141, the
#: status of a process stopped by SIGPIPE, as ``yes | head`` reports.
EXIT_OK, EXIT_BLOCKED, EXIT_ERROR, EXIT_BROKEN_PIPE = 0, 1, 2, 141

#: A report lists at most this many messages one per line unless ``--verbose``.
LIST_LIMIT = 30
#: Ranges shown in a summary of dropped messages before "... and N more".
RANGE_LIMIT = 8
#: Seconds an operation runs before a spinner appears (on a terminal only).
PROGRESS_DELAY = 1.0

STDIN = "-"


class CliError(Exception):
    """A failure reported as one line on stderr, with exit status 2 (no traceback)."""


# --------------------------------------------------------------------------- reading


def _display_name(path: str) -> str:
    return "<stdin>" if path == STDIN else path


def load_history(path: str) -> list[Any]:
    """The JSON list of messages in ``path`` (``-``: standard input).

    Errors name the file, and for invalid JSON the line and column:

    >>> load_history("no-such-session.json")
    Traceback (most recent call last):
    ...
    tokensieve.__main__.CliError: no-such-session.json: No such file or directory
    """
    name = _display_name(path)
    try:
        # Bytes, not text: json detects UTF-8, -16 or -32 and skips a byte-order mark,
        # whatever the locale (PowerShell's `>` writes UTF-16 with a BOM).
        if path == STDIN:
            stream = getattr(sys.stdin, "buffer", sys.stdin)
            messages = json.loads(stream.read())
        else:
            with open(path, "rb") as f:
                messages = json.loads(f.read())
    except json.JSONDecodeError as e:
        raise CliError(f"{name}: line {e.lineno} column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise CliError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise CliError(f"{name}: {e.strerror or e}") from None
    if not isinstance(messages, list):
        raise CliError(f"{name}: expected a JSON list of messages, found a JSON {type(messages).__name__}")
    return messages


def check_output_path(path: str | None) -> None:
    """Fail before any work or output if ``-o`` cannot be written: a missing folder, or
    a folder where the file should be."""
    if path is None or path == STDIN:
        return
    if os.path.isdir(path):
        raise CliError(f"cannot write {path}: it is a folder")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"cannot write {path}: the folder {os.path.dirname(path) or folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CliError(f"cannot write {path}: the folder {os.path.dirname(path) or folder} is not writable")


def _jsonable(messages: list[Any]) -> Any:
    """The compacted history as JSON values (dicts stay dicts; pydantic-ai messages are
    dumped by pydantic-ai's own adapter)."""
    if all(isinstance(m, dict) for m in messages):
        return messages
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    return ModelMessagesTypeAdapter.dump_python(messages, mode="json")


# --------------------------------------------------------------------------- describing


def _role(message: Any) -> str:
    if isinstance(message, dict):
        return str(message.get("role") or message.get("type") or message.get("kind") or "?")
    return str(getattr(message, "kind", None) or type(message).__name__)


def _summary(message: Any, width: int = 56) -> str:
    """A one-line description of a message, for tables."""
    if not isinstance(message, dict):
        parts = getattr(message, "parts", None)
        if parts is not None:
            return "[" + ", ".join(str(getattr(p, "part_kind", type(p).__name__)) for p in parts) + "]"
        return type(message).__name__
    calls = [c.get("function", {}).get("name", "?") for c in message.get("tool_calls") or () if isinstance(c, dict)]
    if calls:
        return "calls " + ", ".join(calls)
    if message.get("role") == "tool":
        return f"result of {message.get('tool_call_id')}"
    if message.get("type") in ("function_call", "function_call_output"):
        return f"{message['type']} {message.get('call_id')}"
    content = message.get("content") or ""
    if isinstance(content, list):
        kinds = [str(b.get("type", "?")) for b in content if isinstance(b, dict)]
        return "[" + ", ".join(kinds) + "]"
    text = " ".join(str(content).split())
    return text[: width - 3] + "..." if len(text) > width else text


def index_ranges(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted indices, as ``(first, last)`` pairs.

    >>> index_ranges([1, 2, 3, 7, 9, 10])
    [(1, 3), (7, 7), (9, 10)]
    """
    ranges: list[tuple[int, int]] = []
    for i in indices:
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], i)
        else:
            ranges.append((i, i))
    return ranges


def format_ranges(ranges: Sequence[tuple[int, int]], limit: int = RANGE_LIMIT) -> str:
    """``#1-#17, #20, ... and 3 more ranges``: at most ``limit`` ranges, in words.

    >>> format_ranges([(1, 17), (20, 20), (22, 30)], limit=2)
    '#1-#17, #20, ... and 1 more ranges'
    """
    shown = [f"#{a}" if a == b else f"#{a}-#{b}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        shown.append(f"... and {len(ranges) - limit:,} more ranges")
    return ", ".join(shown)


def _role_counts(messages: Sequence[Any], indices: Sequence[int]) -> dict[str, int]:
    return dict(Counter(_role(messages[i]) for i in indices).most_common())


def _in_words(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {role}" for role, n in counts.items())


# --------------------------------------------------------------------------- output


class Output:
    """Where and how a report is shown: a rich console on a terminal, plain lines when
    piped, or nothing but the essentials with ``--quiet``."""

    def __init__(self, args: argparse.Namespace, *, stream: Any = None) -> None:
        self.json: bool = getattr(args, "json", False)
        self.quiet: bool = getattr(args, "quiet", False)
        self.verbose: bool = getattr(args, "verbose", False)
        self.stream = stream if stream is not None else sys.stdout
        self.console: Any = None
        if not (self.json or self.quiet) and _isatty(self.stream):
            from rich.console import Console

            self.console = Console(file=self.stream, highlight=False)

    def line(self, text: str = "") -> None:
        if self.console is not None:
            self.console.print(text, markup=False)
        else:
            print(text, file=self.stream)

    def emit_json(self, report: dict[str, Any]) -> None:
        json.dump(report, self.stream, indent=2)
        self.stream.write("\n")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress(description: str, *, enabled: bool = True, delay: float = PROGRESS_DELAY, console: Any = None) -> Iterator[None]:
    """A transient spinner on stderr for work that takes longer than ``delay`` seconds.

    Shown only on a terminal (or on ``console``, for tests); nothing is imported or
    drawn for work that finishes sooner. The long steps release the GIL (compaction) or
    give it up periodically (JSON parsing), so the spinner keeps turning.
    """
    if not enabled or (console is None and not _isatty(sys.stderr)):
        yield
        return
    live: list[Any] = []
    lock = threading.Lock()
    done = False

    def start() -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.spinner import Spinner

        with lock:
            if done:
                return
            target = console if console is not None else Console(stderr=True)
            spinner = Live(
                Spinner("dots", text=description),
                console=target,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            spinner.start()
            live.append(spinner)

    timer = threading.Timer(delay, start)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            done = True
            timer.cancel()
            for spinner in live:
                spinner.stop()


# --------------------------------------------------------------------------- count


def count_report(name: str, messages: list[Any], counts: Any, encoding: str) -> dict[str, Any]:
    per_message = [int(n) for n in counts]
    by_role: dict[str, dict[str, int]] = {}
    for message, n in zip(messages, per_message):
        row = by_role.setdefault(_role(message), {"messages": 0, "tokens": 0})
        row["messages"] += 1
        row["tokens"] += n
    return {
        "file": name,
        "encoding": encoding,
        "messages": len(messages),
        "total_tokens": sum(per_message),
        "by_role": by_role,
        "per_message": per_message,
    }


def count_command(args: argparse.Namespace) -> int:
    out = Output(args)
    name = _display_name(args.history)
    with progress(f"reading {name}", enabled=not (out.json or out.quiet)):
        messages = load_history(args.history)
    with progress(f"counting {len(messages):,} messages", enabled=not (out.json or out.quiet)):
        try:
            counts = tokensieve.count_history_tokens(messages, encoding=args.encoding, format=args.format)
        except (tokensieve.InvalidMessageError, tokensieve.InputTypeError) as e:
            raise CliError(f"{name}: {e}") from None
    report = count_report(name, messages, counts, args.encoding)
    if out.json:
        out.emit_json(report)
    elif out.quiet:
        print(report["total_tokens"], file=out.stream)
    elif out.console is not None:
        _render_count_rich(report, messages, out)
    else:
        _render_count_plain(report, messages, out)
    return EXIT_OK


def _listed(n: int, out: Output) -> bool:
    return out.verbose or n <= LIST_LIMIT


def _largest(per_message: list[int], k: int = 10) -> list[int]:
    return sorted(range(len(per_message)), key=lambda i: (-per_message[i], i))[:k]


def _render_count_plain(report: dict[str, Any], messages: list[Any], out: Output) -> None:
    per_message = report["per_message"]
    n = len(messages)
    if _listed(n, out):
        out.line(f"{'#':>5}  {'role':<10} {'tokens':>8}  content")
        for i, (message, tokens) in enumerate(zip(messages, per_message)):
            out.line(f"{i:>5}  {_role(message):<10} {tokens:>8,}  {_summary(message)}")
    else:
        out.line(f"{n:,} messages by role:")
        for role, row in report["by_role"].items():
            out.line(f"  {role:<10} {row['messages']:>7,} messages {row['tokens']:>10,} tokens")
        out.line("largest messages (--verbose lists every message):")
        for i in _largest(per_message):
            out.line(f"  #{i:<6} {_role(messages[i]):<10} {per_message[i]:>8,}  {_summary(messages[i])}")
    out.line(f"total: {report['total_tokens']:,} tokens in {n:,} messages ({report['file']}, {report['encoding']})")


def _render_count_rich(report: dict[str, Any], messages: list[Any], out: Output) -> None:
    from rich.table import Table

    per_message = report["per_message"]
    n = len(messages)
    caption = f"{report['total_tokens']:,} tokens in {n:,} messages ({report['encoding']})"
    if _listed(n, out):
        table = Table(title=report["file"], caption=caption)
        table.add_column("#", justify="right")
        table.add_column("role")
        table.add_column("tokens", justify="right")
        table.add_column("content", overflow="ellipsis", no_wrap=True)
        for i, (message, tokens) in enumerate(zip(messages, per_message)):
            table.add_row(str(i), _role(message), f"{tokens:,}", _summary(message))
        out.console.print(table)
        return
    roles = Table(title=f"{report['file']}: by role", caption=caption)
    roles.add_column("role")
    roles.add_column("messages", justify="right")
    roles.add_column("tokens", justify="right")
    for role, row in report["by_role"].items():
        roles.add_row(role, f"{row['messages']:,}", f"{row['tokens']:,}")
    out.console.print(roles)
    largest = Table(title="largest messages", caption="--verbose lists every message")
    largest.add_column("#", justify="right")
    largest.add_column("role")
    largest.add_column("tokens", justify="right")
    largest.add_column("content", overflow="ellipsis", no_wrap=True)
    for i in _largest(per_message):
        largest.add_row(str(i), _role(messages[i]), f"{per_message[i]:,}", _summary(messages[i]))
    out.console.print(largest)


# --------------------------------------------------------------------------- compact


def _budget(config: Any, preset: str) -> dict[str, Any]:
    return {
        "preset": preset,
        "max_input_tokens": config.max_input_tokens,
        "compaction_tokens": int(config.compaction_tokens),
        "target_input_tokens": config.target_input_tokens,
        "hard_limit_tokens": int(config.hard_limit_tokens),
        "max_exchanges": config.max_exchanges,
        "reserved_tokens": config.reserved_tokens,
        "encoding": config.encoding,
    }


def compact_report(name: str, messages: list[Any], result: Any, budget: dict[str, Any], verbose: bool) -> dict[str, Any]:
    per_message = [int(n) for n in result.per_message_tokens]
    dropped = list(result.dropped)
    report: dict[str, Any] = {
        "file": name,
        "format": result.format,
        "budget": budget,
        "blocked": False,
        "action": result.action,
        "messages_before": result.messages_before,
        "messages_after": result.messages_after,
        "tokens_before": result.tokens_before,
        "tokens_after": result.tokens_after,
        "tokens_saved": result.tokens_before - result.tokens_after,
        "exchanges_kept": result.exchanges_kept,
        "dropped_count": len(dropped),
        "dropped_tokens": sum(per_message[i] for i in dropped),
        "dropped_ranges": [list(r) for r in index_ranges(dropped)],
        "dropped_by_role": _role_counts(messages, dropped),
        "orphans_removed": result.orphans_removed,
        "calls_repaired": result.calls_repaired,
        "pairs_cut_by_window": result.pairs_cut_by_window,
        "input_defects_repaired": result.input_defects_repaired,
    }
    kept = {id(m): i for i, m in enumerate(messages)}
    sent = []
    for message in result.messages:
        index = kept.get(id(message))
        sent.append(
            {
                "index": index,
                "role": _role(message),
                "tokens": per_message[index] if index is not None else None,
                "summary": _summary(message),
            }
        )
    report["sent"] = sent
    if verbose:
        report["dropped_messages"] = [
            {"index": i, "role": _role(messages[i]), "tokens": per_message[i], "summary": _summary(messages[i])}
            for i in dropped
        ]
    return report


def _repairs_line(report: dict[str, Any]) -> str | None:
    cut, defects = report["pairs_cut_by_window"], report["input_defects_repaired"]
    if not (cut or defects):
        return None
    return f"tool-call pairs cut by the window: {cut:,}; defects repaired in the input: {defects:,}"


def _budget_line(budget: dict[str, Any]) -> str:
    return (
        f"budget: {budget['preset']}: compact above {budget['compaction_tokens']:,} tokens, target "
        f"{budget['target_input_tokens']:,}, hard limit {budget['hard_limit_tokens']:,}"
        + (
            f", at most {budget['max_exchanges']} exchanges"
            if budget["max_exchanges"] is not None
            else ", as many exchanges as fit"
        )
    )


def _dropped_line(report: dict[str, Any]) -> str:
    ranges = [tuple(r) for r in report["dropped_ranges"]]
    return (
        f"dropped {report['dropped_count']:,} messages, {report['dropped_tokens']:,} tokens: "
        f"{format_ranges(ranges)} ({_in_words(report['dropped_by_role'])})"
    )


def _label(index: int | None) -> str:
    return "new" if index is None else f"#{index}"


def _render_compact_plain(report: dict[str, Any], out: Output) -> None:
    out.line(_budget_line(report["budget"]))
    saved = report["tokens_saved"] / report["tokens_before"] if report["tokens_before"] else 0.0
    out.line(
        f"{report['file']} ({report['format']}): {report['messages_before']:,} messages, "
        f"{report['tokens_before']:,} tokens -> {report['messages_after']:,} messages, "
        f"{report['tokens_after']:,} tokens ({saved:.0%} saved); {report['exchanges_kept']} exchanges kept, "
        f"action {report['action']!r}"
    )
    if report["dropped_count"]:
        if out.verbose:
            out.line(f"dropped {report['dropped_count']:,} messages, {report['dropped_tokens']:,} tokens:")
            for row in report["dropped_messages"]:
                out.line(f"  #{row['index']:<5} {row['role']:<10} {row['tokens']:>8,}  {row['summary']}")
        else:
            out.line(_dropped_line(report))
    repairs = _repairs_line(report)
    if repairs:
        out.line(repairs)
    sent = report["sent"]
    if not sent:
        out.line("sent: no messages")
    elif _listed(len(sent), out):
        out.line("sent:")
        for row in sent:
            out.line(f"  {_label(row['index']):<6} {row['role']:<10} {row['summary']}")
    else:
        kept = [row["index"] for row in sent if row["index"] is not None]
        new = len(sent) - len(kept)
        out.line(
            f"sent {len(sent):,} messages: {format_ranges(index_ranges(sorted(kept)))}"
            + (f", {new:,} new" if new else "")
            + " (--verbose lists every message)"
        )
    if report.get("output"):
        out.line(f"wrote {report['output']}")


def _render_compact_rich(report: dict[str, Any], out: Output) -> None:
    from rich.table import Table

    console = out.console
    budget = report["budget"]
    console.print(_budget_line(budget), markup=False, style="dim")
    summary = Table(title=f"{report['file']} ({report['format']})")
    summary.add_column("")
    summary.add_column("messages", justify="right")
    summary.add_column("tokens", justify="right")
    summary.add_row("before", f"{report['messages_before']:,}", f"{report['tokens_before']:,}")
    summary.add_row("sent", f"{report['messages_after']:,}", f"{report['tokens_after']:,}")
    saved = report["tokens_saved"] / report["tokens_before"] if report["tokens_before"] else 0.0
    summary.add_row("dropped", f"{report['dropped_count']:,}", f"{report['tokens_saved']:,} ({saved:.0%})")
    console.print(summary)
    console.print(f"{report['exchanges_kept']} exchanges kept, action {report['action']!r}", markup=False)
    if report["dropped_count"]:
        if out.verbose:
            dropped = Table(title="dropped")
            for column, justify in (("#", "right"), ("role", "left"), ("tokens", "right"), ("content", "left")):
                dropped.add_column(column, justify=justify)  # type: ignore[arg-type]
            for row in report["dropped_messages"]:
                dropped.add_row(f"#{row['index']}", row["role"], f"{row['tokens']:,}", row["summary"])
            console.print(dropped)
        else:
            console.print(_dropped_line(report), markup=False)
    repairs = _repairs_line(report)
    if repairs:
        console.print(repairs, markup=False)
    sent = report["sent"]
    if _listed(len(sent), out):
        table = Table(title="sent")
        table.add_column("#", justify="right")
        table.add_column("role")
        table.add_column("tokens", justify="right")
        table.add_column("content", overflow="ellipsis", no_wrap=True)
        for row in sent:
            tokens = "" if row["tokens"] is None else f"{row['tokens']:,}"
            table.add_row(_label(row["index"]), row["role"], tokens, row["summary"])
        console.print(table)
    else:
        kept = [row["index"] for row in sent if row["index"] is not None]
        console.print(
            f"sent {len(sent):,} messages: {format_ranges(index_ranges(sorted(kept)))} (--verbose lists every message)",
            markup=False,
        )
    if report.get("output"):
        console.print(f"wrote {report['output']}", markup=False)


def compact_command(args: argparse.Namespace) -> int:
    check_output_path(args.output)
    # With `-o -` the history goes to stdout, so the report goes to stderr.
    out = Output(args, stream=sys.stderr if args.output == STDIN else None)
    overrides = {
        name: value
        for name, value in {
            "max_input_tokens": args.max_input_tokens,
            "target_input_tokens": args.target_input_tokens,
            "max_exchanges": args.max_exchanges,
            "reserved_tokens": args.reserved_tokens,
            "encoding": args.encoding,
            "dangling_calls": args.dangling_calls,
        }.items()
        if value is not None
    }
    compactor = tokensieve.Compactor(args.preset, **overrides)
    budget = _budget(compactor.config, args.preset)
    name = _display_name(args.history)
    show = not (out.json or out.quiet)
    with progress(f"reading {name}", enabled=show):
        messages = load_history(args.history)
    try:
        with progress(f"compacting {len(messages):,} messages", enabled=show):
            result = compactor.compact(messages, format=args.format)
    except tokensieve.BudgetExceededError as e:
        if out.json:
            out.emit_json(
                {
                    "file": name,
                    "budget": budget,
                    "blocked": True,
                    "error": str(e),
                    "tokens_before": e.tokens_before,
                    "tokens_after": e.tokens_after,
                    "limit": e.limit,
                }
            )
        else:
            print(f"blocked: {name}: {e}", file=sys.stderr)
        return EXIT_BLOCKED
    except (tokensieve.InvalidMessageError, tokensieve.InputTypeError) as e:
        raise CliError(f"{name}: {e}") from None
    report = compact_report(name, messages, result, budget, verbose=out.verbose)
    if args.output is not None:
        history = _jsonable(result.messages)
        if args.output == STDIN:
            json.dump(history, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            with open(args.output, "w", encoding="utf-8") as f:
                json.dump(history, f, indent=2)
            report["output"] = args.output
    if out.json:
        out.emit_json(report)
    elif out.quiet:
        pass
    elif out.console is not None:
        _render_compact_rich(report, out)
    else:
        _render_compact_plain(report, out)
    return EXIT_OK


# --------------------------------------------------------------------------- bench


def bench_command(args: argparse.Namespace) -> int:
    from tokensieve import _bench

    if args.first_count or args.counting:  # tokensieve alone suffices; the peers are measured when installed
        if args.first_count:
            _bench.first_count(args.quick)
        if args.counting:
            _bench.counting(args.quick)
        return 0
    missing = _bench.missing_extras()
    if missing:
        raise CliError(
            f'tokensieve bench needs the bench extra: pip install "tokensieve[bench]" (missing: {", ".join(missing)})'
        )
    print("tokensieve bench: rows appear as they are measured; the whole run takes minutes", file=sys.stderr)
    return _bench.main(quick=args.quick)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tokensieve`` command (every option has help).

    >>> args = build_parser().parse_args(["compact", "-", "--json", "--max-exchanges", "2"])
    >>> (args.history, args.json, args.max_exchanges, args.preset)
    ('-', True, 2, 'cerebras')
    """
    parser = argparse.ArgumentParser(
        prog="tokensieve",
        description="Exact token counting and history compaction for LLM agents.",
        epilog="Exit status: 0 done, 1 over the hard limit even compacted, 2 bad input or usage.",
    )
    parser.add_argument("--version", action="version", version=f"tokensieve {tokensieve.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do (COMMAND --help for its options)")
    formats = list(get_args(Format))

    report = argparse.ArgumentParser(add_help=False)
    style = report.add_mutually_exclusive_group()
    style.add_argument("--json", action="store_true", help="print the report as one JSON object (machine-readable)")
    style.add_argument("--quiet", "-q", action="store_true", help="print no report (count: only the total)")
    report.add_argument(
        "--verbose", "-v", action="store_true", help="list every message instead of ranges and counts"
    )

    history = argparse.ArgumentParser(add_help=False)
    history.add_argument("history", metavar="HISTORY", help="a JSON file holding a list of messages; - reads stdin")
    history.add_argument("--format", choices=formats, help="the history's format (default: detected)")

    count = sub.add_parser(
        "count",
        parents=[history, report],
        help="tokens per message of a history",
        description="Count the tokens of each message of a history, as compaction counts them.",
    )
    count.add_argument(
        "--encoding", default="o200k_base", choices=tokensieve.ENCODINGS, help="the tokenizer (default: o200k_base)"
    )
    count.set_defaults(run=count_command)

    compact = sub.add_parser(
        "compact",
        parents=[history, report],
        help="compact a history and show what was kept and dropped",
        description="Compact a history to a budget (a preset, with single fields overridden) and report "
        "what was kept, dropped and repaired.",
    )
    compact.add_argument(
        "--preset", default="cerebras", choices=sorted(tokensieve.PRESETS), help="the budget preset (default: cerebras)"
    )
    compact.add_argument("--max-input-tokens", type=int, metavar="N", help="the model's input window")
    compact.add_argument("--target-input-tokens", type=int, metavar="N", help="compact down toward this many tokens")
    compact.add_argument("--max-exchanges", type=int, metavar="N", help="keep at most this many exchanges")
    compact.add_argument(
        "--reserved-tokens", type=int, metavar="N", help="tokens every request carries besides the history"
    )
    compact.add_argument("--encoding", choices=tokensieve.ENCODINGS, help="the tokenizer (default: the preset's)")
    compact.add_argument(
        "--dangling-calls",
        choices=["drop", "stub"],
        help="a tool call whose result was cut: drop it, or answer it with a short stub",
    )
    compact.add_argument(
        "--output", "-o", metavar="OUT", help="write the compacted history here as JSON (- writes it to stdout)"
    )
    compact.set_defaults(run=compact_command)

    bench = sub.add_parser(
        "bench",
        help="compact_history against the pure-Python baseline; first count and counting against the peers "
        "(needs tokensieve[bench])",
        description="Time compact_history against tokensieve.baseline in one run, then the first count of a fresh "
        "process and uncached counting against tiktoken, fastokens and toktok-rs (those installed), and print the "
        "tables.",
    )
    bench.add_argument("--quick", action="store_true", help="smaller histories, fewer rounds")
    bench.add_argument(
        "--first-count", action="store_true",
        help="only the first count of a fresh process against the peers (seconds; no extra needed)",
    )
    bench.add_argument(
        "--counting", action="store_true",
        help="only uncached counting throughput against the peers (seconds; no extra needed)",
    )
    bench.set_defaults(run=bench_command)

    from tokensieve import narrow  # the `narrow` subcommand lives with its capability

    narrow.add_parser(sub)

    from tokensieve.analyze import replay  # `replay` and `simulate` live with their capability

    replay.add_parsers(sub)

    from tokensieve.analyze import command as analyze  # `analyze`: figures of request logs

    analyze.add_parser(sub)
    return parser


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = int(args.run(args))
    except (CliError, tokensieve.TokensieveError, OSError) as e:
        if isinstance(e, BrokenPipeError):
            raise
        print(f"tokensieve: {e}", file=sys.stderr)
        return EXIT_ERROR
    sys.stdout.flush()  # a closed pipe shows here, inside the handler below
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokensieve`` command; returns the exit status.

    Example:
        ``main(["compact", "session.json", "--json"])`` does what
        ``tokensieve compact session.json --json`` does in a shell.
    """
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader went away (`tokensieve count big.json | head`): stop quietly. As
        # the Python docs advise, point stdout at devnull so the flush at exit does not
        # raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("tokensieve: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
