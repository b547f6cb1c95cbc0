"""The ``tokensieve`` command: ``tokensieve count HISTORY.json`` prints the tokens of
each message of a chat history and the total.

Example:
    $ tokensieve count examples/session.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import tokensieve


def _message_text(message: dict[str, Any]) -> str:
    """The text of an OpenAI chat-completions message that the model reads."""
    parts: list[str] = [str(message.get("role", ""))]
    content = message.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    for call in message.get("tool_calls") or ():
        function = call.get("function", {})
        parts += [str(call.get("id", "")), str(function.get("name", "")), str(function.get("arguments", ""))]
    if "tool_call_id" in message:
        parts.append(str(message["tool_call_id"]))
    return "\n".join(parts)


def _summary(message: dict[str, Any]) -> str:
    calls = [c.get("function", {}).get("name", "?") for c in message.get("tool_calls") or ()]
    if calls:
        return "calls " + ", ".join(calls)
    if message.get("role") == "tool":
        return f"result of {message.get('tool_call_id')}"
    text = message.get("content") or ""
    text = text if isinstance(text, str) else "[parts]"
    text = " ".join(text.split())
    return text[:57] + "..." if len(text) > 60 else text


def count_command(path: str, encoding: str) -> int:
    with open(path, encoding="utf-8") as f:
        messages = json.load(f)
    counts = tokensieve.count_tokens_batch([_message_text(m) for m in messages], encoding=encoding)
    print(f"{'#':>3}  {'role':<9} {'tokens':>7}  content")
    for i, (message, n) in enumerate(zip(messages, counts)):
        print(f"{i:>3}  {message.get('role', '?'):<9} {int(n):>7}  {_summary(message)}")
    print(f"{'':>3}  {'total':<9} {int(counts.sum()):>7}  {len(messages)} messages, {encoding}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokensieve`` command."""
    parser = argparse.ArgumentParser(prog="tokensieve", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    count = sub.add_parser("count", help="tokens per message of a chat history (JSON list of messages)")
    count.add_argument("history", help="path to a JSON file holding a list of chat messages")
    count.add_argument("--encoding", default="o200k_base", choices=tokensieve.ENCODINGS)
    args = parser.parse_args(argv)
    try:
        return count_command(args.history, args.encoding)
    except (OSError, ValueError, tokensieve.TokensieveError) as e:
        print(f"tokensieve: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
