"""The ``tokensieve`` command.

    tokensieve count   HISTORY.json            tokens per message
    tokensieve compact HISTORY.json [--preset cerebras] [--max-exchanges N] ...
    tokensieve bench   [--quick]               compact_history against the pure-Python baseline
    tokensieve narrow  [FILE|-] [--tool NAME] [--exit-code N] [--mode M] [--max-tokens N] [--spill-dir D] [--json]

A history file is a JSON list of messages: OpenAI chat-completions, OpenAI Responses or
Anthropic Messages dicts (the format is detected, or named with --format).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import tokensieve


def _summary(message: Any, width: int = 56) -> str:
    """A one-line description of a message dict, for tables."""
    if not isinstance(message, dict):
        return type(message).__name__
    calls = [c.get("function", {}).get("name", "?") for c in message.get("tool_calls") or ()]
    if calls:
        return "calls " + ", ".join(calls)
    if message.get("role") == "tool":
        return f"result of {message.get('tool_call_id')}"
    if message.get("type") in ("function_call", "function_call_output"):
        return f"{message['type']} {message.get('call_id')}"
    content = message.get("content") or ""
    if isinstance(content, list):
        kinds = [b.get("type", "?") for b in content if isinstance(b, dict)]
        return "[" + ", ".join(kinds) + "]"
    text = " ".join(str(content).split())
    return text[: width - 3] + "..." if len(text) > width else text


def _role(message: Any) -> str:
    return str(message.get("role") or message.get("type") or "?") if isinstance(message, dict) else "?"


def _load(path: str) -> list[Any]:
    with open(path, encoding="utf-8") as f:
        messages = json.load(f)
    if not isinstance(messages, list):
        raise tokensieve.InputTypeError(f"{path}: expected a JSON list of messages")
    return messages


def count_command(args: argparse.Namespace) -> int:
    messages = _load(args.history)
    counts = tokensieve.count_history_tokens(messages, encoding=args.encoding, format=args.format)
    print(f"{'#':>3}  {'role':<10} {'tokens':>7}  content")
    for i, (message, n) in enumerate(zip(messages, counts)):
        print(f"{i:>3}  {_role(message):<10} {int(n):>7}  {_summary(message)}")
    print(f"{'':>3}  {'total':<10} {int(counts.sum()):>7}  {len(messages)} messages, {args.encoding}")
    return 0


def compact_command(args: argparse.Namespace) -> int:
    messages = _load(args.history)
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
    config = compactor.config
    print(
        f"budget: {args.preset}: compact above {config.compaction_tokens:,.0f} tokens, target "
        f"{config.target_input_tokens:,}, hard limit {config.hard_limit_tokens:,.0f}, "
        f"at most {config.max_exchanges} exchanges"
    )
    try:
        result = compactor.compact(messages, format=args.format)
    except tokensieve.BudgetExceededError as e:
        print(f"blocked: {e}")
        return 1
    saved = result.tokens_before - result.tokens_after
    share = saved / result.tokens_before if result.tokens_before else 0.0
    print(
        f"{args.history} ({result.format}): {result.messages_before} messages, {result.tokens_before:,} tokens"
        f" -> {result.messages_after} messages, {result.tokens_after:,} tokens ({share:.0%} saved);"
        f" {result.exchanges_kept} exchanges kept, action {result.action!r}"
    )
    if result.dropped:
        print(f"dropped {len(result.dropped)} messages:")
        for i in result.dropped:
            print(f"  #{i:<3} {_role(messages[i]):<10} {int(result.per_message_tokens[i]):>7}  {_summary(messages[i])}")
    if result.orphans_removed or result.calls_repaired:
        print(
            f"repaired: {result.orphans_removed} tool results whose call was cut, "
            f"{result.calls_repaired} tool calls whose result was cut"
        )
    print("sent:")
    kept = {id(m): i for i, m in enumerate(messages)}
    for message in result.messages:
        index = kept.get(id(message))
        label = f"#{index}" if index is not None else "new"
        print(f"  {label:<4} {_role(message):<10} {_summary(message)}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(result.messages, f, indent=2)
    return 0


def bench_command(args: argparse.Namespace) -> int:
    from tokensieve import _bench  # needs the [bench] extra: imported only here

    return _bench.main(quick=args.quick)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokensieve`` command."""
    parser = argparse.ArgumentParser(prog="tokensieve", description="Token counting and history compaction.")
    sub = parser.add_subparsers(dest="command", required=True)
    formats = ["openai", "responses", "anthropic"]

    count = sub.add_parser("count", help="tokens per message of a history (a JSON list of messages)")
    count.add_argument("history")
    count.add_argument("--encoding", default="o200k_base", choices=tokensieve.ENCODINGS)
    count.add_argument("--format", choices=formats)
    count.set_defaults(run=count_command)

    compact = sub.add_parser("compact", help="compact a history and show what was kept and dropped")
    compact.add_argument("history")
    compact.add_argument("--preset", default="cerebras", choices=sorted(tokensieve.PRESETS))
    compact.add_argument("--max-input-tokens", type=int)
    compact.add_argument("--target-input-tokens", type=int)
    compact.add_argument("--max-exchanges", type=int)
    compact.add_argument("--reserved-tokens", type=int)
    compact.add_argument("--encoding", choices=tokensieve.ENCODINGS)
    compact.add_argument("--dangling-calls", choices=["drop", "stub"])
    compact.add_argument("--format", choices=formats)
    compact.add_argument("--output", "-o", help="write the compacted history here (JSON)")
    compact.set_defaults(run=compact_command)

    bench = sub.add_parser("bench", help="compact_history vs the pure-Python baseline (needs tokensieve[bench])")
    bench.add_argument("--quick", action="store_true", help="smaller histories, fewer rounds")
    bench.set_defaults(run=bench_command)

    from tokensieve import narrow  # the `narrow` subcommand lives with its capability

    narrow.add_parser(sub)

    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (OSError, ValueError, tokensieve.TokensieveError) as e:
        print(f"tokensieve: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
