"""How far tokensieve's request counts are from what a Llama 3 server bills, reproduced
offline: Meta's own ``ChatFormat.encode_dialog_prompt`` (the prompt a Llama 3 server
tokenizes; its length is the ``prompt_tokens`` it reports) against
``count_request_tokens(history, encoding="llama3")``.

    pip download --no-deps llama-models==0.3.0 && unzip llama_models-0.3.0-*.whl -d /tmp/lm
    python benches/measure_templates.py /tmp/lm

The result is recorded in docs/encodings.md.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tokensieve  # noqa: E402


DIALOGS = [
    [("system", "You are a careful coding assistant."), ("user", "Fix the failing test in parser.py, please.")],
    [
        ("system", "You are terse."),
        ("user", "What is 12345 * 678?"),
        ("assistant", "8369910"),
        ("user", "And in hex?"),
    ],
    [
        ("user", "Summarize:\n\n" + "The quick brown fox jumps over the lazy dog. " * 30),
        ("assistant", "A fox jumps over a dog, thirty times."),
        ("user", "東京の天気は？  Answer in one line.\n"),
    ],
    [("user", "  leading and trailing spaces  "), ("assistant", "\nnewline first"), ("user", "ok")],
]


def main(llama_models_root: str) -> None:
    sys.path.insert(0, llama_models_root)
    pil = types.ModuleType("PIL")
    pil.Image = types.ModuleType("PIL.Image")  # type: ignore[attr-defined]  # text only: no image is read
    pil.Image.Image = type("Image", (), {})  # type: ignore[attr-defined]
    sys.modules.setdefault("PIL", pil)
    sys.modules.setdefault("PIL.Image", pil.Image)  # type: ignore[attr-defined]
    from llama_models.datatypes import RawMessage
    from llama_models.llama3.chat_format import ChatFormat
    from llama_models.llama3.tokenizer import Tokenizer

    fmt = ChatFormat(Tokenizer(Path(llama_models_root) / "llama_models" / "llama3" / "tokenizer.model"))
    data = (Path(llama_models_root) / "llama_models" / "llama3" / "tokenizer.model").read_bytes()
    tokensieve.load_encoding(data, name="llama3", pattern="llama3")
    print("| dialog | messages | Meta's prompt tokens | tokensieve | difference |")
    print("|---|---|---|---|---|")
    for i, dialog in enumerate(DIALOGS):
        raw = [RawMessage(role=role, content=content) for role, content in dialog]
        billed = len(fmt.encode_dialog_prompt(raw).tokens)
        history = [{"role": role, "content": content} for role, content in dialog]
        counted = tokensieve.count_request_tokens(history, encoding="llama3")
        print(f"| {i + 1} | {len(dialog)} | {billed} | {counted} | {counted - billed:+d} |")


if __name__ == "__main__":
    main(sys.argv[1])
