"""Uncached counting throughput for ``tokensieve bench``: tokensieve against tiktoken and
the exact peers installed (fastokens, toktok-rs), on the same texts, in the same run.

The texts are generated (seeded, nothing read or downloaded): code and log lines, prose
in several scripts, emoji, numbers and whitespace runs, in messages of 200 B to 20 KB.
The content cache is off while tokensieve is timed, so every text is tokenized. Each
library's total is compared with tiktoken's (the reference): a peer that disagrees is
shown as not exact. ``benches/test_bench_counting.py`` measures the same on the test
corpus with statistics.
"""

from __future__ import annotations

import importlib
import itertools
import os
import random
import tempfile
import time
from collections.abc import Callable

import tokensieve
from tokensieve import _first_count

_KEYWORDS = "def return self if else for while try except raise with import from class None True False".split()
_SYLLABLES = "ka ri to mo na de lu pe si ba ro ve qu ex in al on er ch th st pr tr fl gr".split()
#: Letters of each script, for prose-like words: Latin with diacritics, Cyrillic, Greek,
#: CJK, kana, Arabic, Devanagari.
_SCRIPTS = (
    "abcdefghijklmnopqrstuvwxyzäöüßéèàç",
    "абвгдеёжзийклмнопрстуфхцчшщыьэюя",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
    "あいうえおかきくけこさしすせそたちつてとなにぬねのアイウエオカキクケコ",
    "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "कखगघचछजझटठडढणतथदधनपफबभमयरलवशसह",
)
#: Each script's "language": 2,000 words, drawn with Zipf-like frequencies as in real text
#: (random letters would make every piece new, which no language does).
_VOCABULARIES = tuple(
    ["".join(r.choice(letters) for _ in range(r.randint(1, 8))) for _ in range(2_000)]
    for r, letters in ((random.Random(i), letters) for i, letters in enumerate(_SCRIPTS))
)
_ZIPF = list(itertools.accumulate(1 / rank for rank in range(1, 2_001)))
_EMOJI = "🚀✅👍🏽🔥💡📦🧪⚠️🎉"


def _identifier(rng: random.Random) -> str:
    words = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 3))]
    return rng.choice(("_".join(words), words[0] + "".join(w.title() for w in words[1:])))


def _line(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:  # code
        return "    " * rng.randint(0, 3) + " ".join(
            rng.choice(_KEYWORDS) if rng.random() < 0.3 else _identifier(rng) + rng.choice(("", "()", ".", ",", ":", " ="))
            for _ in range(rng.randint(3, 10)))
    if kind < 0.75:  # prose in one script, its words drawn from that script's vocabulary
        words = rng.choice(_VOCABULARIES)
        return " ".join(rng.choices(words, cum_weights=_ZIPF, k=rng.randint(4, 16))) + "."
    if kind < 0.85:  # numbers, hashes, paths
        return " ".join(rng.choice((str(rng.randint(0, 10**9)), f"{rng.getrandbits(64):016x}",
                                    "/".join(_identifier(rng) for _ in range(3)) + ".py")) for _ in range(rng.randint(2, 6)))
    if kind < 0.92:  # emoji
        return " ".join(rng.choice(_EMOJI) * rng.randint(1, 4) for _ in range(rng.randint(1, 6)))
    return " " * rng.randint(1, 40) + rng.choice("-=*#") * rng.randint(1, 60)


def texts(total_bytes: int, seed: int = 12) -> list[str]:
    """Messages of mixed text, about ``total_bytes`` of UTF-8 in all.

    Example:
        >>> sum(len(t.encode()) for t in texts(10_000)) >= 10_000
        True
    """
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < total_bytes:
        target = min(20_000, int(200 * 100 ** (rng.random() ** 2)))
        lines: list[str] = []
        length = 0
        while length < target:
            line = _line(rng)
            lines.append(line)
            length += len(line.encode()) + 1
        text = "\n".join(lines)
        out.append(text)
        size += len(text.encode())
    return out


def _counters(encoding: str, files: dict[str, str], batch: bool) -> dict[str, Callable[[list[str]], int]]:
    """``texts -> total`` for each library installed, one thread or a batch on every core."""
    threads = os.cpu_count() or 1
    enc = tokensieve.get_encoding(encoding)
    counters: dict[str, Callable[[list[str]], int]] = {
        "tokensieve": (lambda ts: int(tokensieve.count_tokens_batch(ts, encoding=encoding).sum())) if batch
        else (lambda ts: sum(map(enc.count, ts))),
    }
    path = files[_first_count.RANK_FILES[encoding]]
    pattern = _first_count.PATTERNS[encoding]
    if _first_count.installed("tiktoken"):
        import tiktoken
        import tiktoken.load

        tk = tiktoken.Encoding(encoding, pat_str=pattern, mergeable_ranks=tiktoken.load.load_tiktoken_bpe(path),
                               special_tokens={})
        counters["tiktoken"] = (lambda ts: sum(map(len, tk.encode_ordinary_batch(ts, num_threads=threads)))) if batch \
            else (lambda ts: sum(len(tk.encode_ordinary(t)) for t in ts))
    if _first_count.installed("fastokens"):
        fastokens = importlib.import_module("fastokens")  # untyped: through importlib, as Any
        ft = fastokens.Tokenizer.from_tiktoken(path, pattern=pattern, special_tokens={})
        counters["fastokens"] = (lambda ts: sum(map(len, ft.encode_batch(ts)))) if batch \
            else (lambda ts: sum(len(ft.encode_ordinary(t)) for t in ts))
    if _first_count.installed("toktok-rs") and _first_count.supports("toktok-rs", encoding):
        tt = importlib.import_module("toktok")._encoding(encoding)
        counters["toktok-rs"] = lambda ts: sum(tt.count_batch(ts, 0 if batch else 1, False))
    return counters


def _best(rounds: int, count: Callable[[list[str]], int], ts: list[str]) -> tuple[float, int]:
    total = count(ts)  # warm-up: loads the vocabulary, fills a peer's caches as a long run would
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        count(ts)
        best = min(best, time.perf_counter() - start)
    return best, total


def table(encodings: list[str], total_bytes: int = 4_000_000, rounds: int = 3) -> list[str]:
    """Lines of a table: MB/s of each library, one thread and batch, per encoding (best of
    ``rounds``), with the ratio of tokensieve to each peer."""
    ts = texts(total_bytes)
    nbytes = sum(len(t.encode()) for t in ts)
    info = tokensieve.cache_info()
    lines = [f"{len(ts):,} texts, {nbytes / 1e6:.1f} MB of mixed text; content cache off; best of {rounds}",
             f"{'encoding':<14} {'mode':<10} {'library':<11} {'MB/s':>8} {'ours / theirs':>14}"]
    lines.append("-" * len(lines[-1]))
    tokensieve.configure_cache(enabled=False)
    try:
        with tempfile.TemporaryDirectory() as directory:
            files = _first_count.write_rank_files(directory)
            for encoding in encodings:
                for batch in (False, True):
                    results = {lib: _best(rounds, count, ts) for lib, count in _counters(encoding, files, batch).items()}
                    reference = results.get("tiktoken", results["tokensieve"])[1]
                    ours = results["tokensieve"][0]
                    for lib, (seconds, total) in results.items():
                        ratio = "" if lib == "tokensieve" else f"{seconds / ours:13.2f}x"
                        exact = "" if total == reference else "  (not exact)"
                        lines.append(f"{encoding:<14} {'batch' if batch else 'one thread':<10} {lib:<11}"
                                     f" {nbytes / seconds / 1e6:8.1f} {ratio:>14}{exact}")
    finally:
        tokensieve.configure_cache(max_entries=info.max_entries, enabled=info.enabled)
    missing = [lib for lib in ("tiktoken", "fastokens", "toktok-rs") if not _first_count.installed(lib)]
    if missing:
        lines.append(f"not installed (pip install \"tokensieve[bench]\"): {', '.join(missing)}")
    if _first_count.installed("fastokens"):
        lines.append("fastokens matches a text over 16 KB in parallel chunks: its one-thread figure uses every core")
    lines.append("ours / theirs > 1: tokensieve is faster")
    return lines
