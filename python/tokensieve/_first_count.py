"""The first count of a fresh process, for tokensieve and the peers, in the same run.

Each measurement starts a new interpreter that imports the library, loads the encoding
and counts ``"Hello, world!"`` once; the process reports its own import and first-count
times and its resident memory (``VmRSS``) and peak (``VmHWM``) after it. Used by
``tokensieve bench``, ``benches/first_count.py`` and ``benches/test_bench_counting.py``.

The peers load the same rank files offline: tokensieve writes them
(:func:`tokensieve.tiktoken_bpe_file`), as tiktoken would find them in its cache; tiktoken's
own load (parse, then build the encoder) is what is timed.

* tiktoken: ``load_tiktoken_bpe`` + ``Encoding`` (what ``get_encoding`` does from its cache);
* fastokens: ``Tokenizer.from_tiktoken`` on the same file;
* toktok-rs: its bundled encodings (o200k_base, cl100k_base, o200k_harmony; its Qwen is
  Qwen 3.5's vocabulary, not ``qwen3``'s).

o200k_harmony's ranks and pattern are o200k_base's (its special tokens are not counted in
``"Hello, world!"``), so the peers load o200k_base's file for it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from tokensieve.baseline import _CL100K_PATTERN, _O200K_PATTERN

LIBRARIES = ("tokensieve", "tiktoken", "fastokens", "toktok-rs")
#: The module each library is imported as (a peer not installed is left out).
MODULES = {"tokensieve": "tokensieve", "tiktoken": "tiktoken", "fastokens": "fastokens", "toktok-rs": "toktok"}

#: The pre-tokenizer patterns, as each family's tokenizer publishes them (OpenAI's as the
#: baseline copies them from tiktoken).
PATTERNS = {
    "o200k_base": _O200K_PATTERN,
    "o200k_harmony": _O200K_PATTERN,
    "cl100k_base": _CL100K_PATTERN,
    "qwen3": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}
#: The rank file a peer loads for each encoding.
RANK_FILES = {"o200k_base": "o200k_base", "o200k_harmony": "o200k_base", "cl100k_base": "cl100k_base", "qwen3": "qwen3"}
TOKTOK_ENCODINGS = {"o200k_base", "cl100k_base", "o200k_harmony"}

HELLO = "Hello, world!"

# Each snippet sets t0 before the import, ti after it, n and t1 after the first count.
_SNIPPETS = {
    "tokensieve": "t0 = time.perf_counter()\nimport tokensieve\nti = time.perf_counter()\n"
                  "n = tokensieve.count_tokens(HELLO, encoding=ENC)\nt1 = time.perf_counter()\n",
    "tiktoken": "t0 = time.perf_counter()\nimport tiktoken, tiktoken.load\nti = time.perf_counter()\n"
                "e = tiktoken.Encoding(ENC, pat_str=PAT, mergeable_ranks=tiktoken.load.load_tiktoken_bpe(FILE),"
                " special_tokens={})\nn = len(e.encode_ordinary(HELLO))\nt1 = time.perf_counter()\n",
    "fastokens": "t0 = time.perf_counter()\nimport fastokens\nti = time.perf_counter()\n"
                 "e = fastokens.Tokenizer.from_tiktoken(FILE, pattern=PAT, special_tokens={})\n"
                 "n = len(e.encode_ordinary(HELLO))\nt1 = time.perf_counter()\n",
    "toktok-rs": "t0 = time.perf_counter()\nimport toktok\nti = time.perf_counter()\n"
                 "n = toktok.batch_count([HELLO], ENC)[0]\nt1 = time.perf_counter()\n",
}
_REPORT = """
with open("/proc/self/status") as f:
    status = {line.split(":")[0]: line.split()[1] for line in f if line.startswith(("VmRSS", "VmHWM"))}
print(json.dumps({"first_count": t1 - t0, "import": ti - t0, "rss_mb": int(status["VmRSS"]) / 1024,
                  "peak_mb": int(status["VmHWM"]) / 1024, "n": n}))
"""


def installed(library: str) -> bool:
    """Whether ``library`` can be imported here (found, not imported, in this process)."""
    import importlib.util

    return importlib.util.find_spec(MODULES[library]) is not None


def supports(library: str, encoding: str) -> bool:
    """Whether ``library`` has ``encoding``'s vocabulary (toktok-rs bundles only three)."""
    return library != "toktok-rs" or encoding in TOKTOK_ENCODINGS


def write_rank_files(directory: str) -> dict[str, str]:
    """The rank file of each encoding, written into ``directory``: name -> path."""
    import tokensieve

    paths = {}
    for name in sorted(set(RANK_FILES.values())):
        path = os.path.join(directory, f"{name}.tiktoken")
        with open(path, "wb") as f:
            f.write(tokensieve.tiktoken_bpe_file(name))
        paths[name] = path
    return paths


def measure_once(library: str, encoding: str, rank_files: dict[str, str]) -> dict[str, Any]:
    """One fresh process: ``{"first_count", "import"}`` in seconds, ``{"rss_mb", "peak_mb"}``
    and the count ``n``. Raises ``RuntimeError`` with the child's error if it failed."""
    source = (
        f"import json, time\nENC = {encoding!r}\nPAT = {PATTERNS[encoding]!r}\n"
        f"FILE = {rank_files[RANK_FILES[encoding]]!r}\nHELLO = {HELLO!r}\n" + _SNIPPETS[library] + _REPORT
    )
    out = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{library} {encoding}: {out.stderr.strip()[-400:]}")
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def measure(library: str, encoding: str, rank_files: dict[str, str], runs: int = 5) -> dict[str, Any]:
    """The median of ``runs`` fresh processes, field by field."""
    reports = [measure_once(library, encoding, rank_files) for _ in range(runs)]
    median = {key: statistics.median(r[key] for r in reports) for key in ("first_count", "import", "rss_mb", "peak_mb")}
    return {**median, "n": reports[0]["n"], "runs": runs}


def table(encodings: tuple[str, ...] | list[str], runs: int = 5, libraries: tuple[str, ...] = LIBRARIES) -> list[str]:
    """Lines of a table: each encoding and library, its first count and memory (medians).

    Example:
        >>> lines = table(["cl100k_base"], runs=1, libraries=("tokensieve",))  # doctest: +SKIP
        >>> lines[2].split()[:2]  # doctest: +SKIP
        ['cl100k_base', 'tokensieve']
    """
    if not os.path.exists("/proc/self/status"):
        return ["first count: n/a (reads VmRSS from /proc: Linux only)"]
    present = [lib for lib in libraries if installed(lib)]
    header = f"{'encoding':<14} {'library':<11} {'first count':>12} {'import':>9} {'RSS':>8} {'peak':>8} {'vs ours':>8}"
    lines = [header, "-" * len(header)]
    with tempfile.TemporaryDirectory() as directory:
        files = write_rank_files(directory)
        for encoding in encodings:
            ours = None
            for library in present:
                if not supports(library, encoding):
                    continue
                try:
                    r = measure(library, encoding, files, runs)
                except RuntimeError as error:
                    lines.append(f"{encoding:<14} {library:<11} failed: {error}")
                    continue
                if library == "tokensieve":
                    ours = r["first_count"]
                ratio = f"{r['first_count'] / ours:7.0f}x" if ours and library != "tokensieve" else ""
                lines.append(
                    f"{encoding:<14} {library:<11} {r['first_count'] * 1e3:>9.1f} ms {r['import'] * 1e3:>6.1f} ms"
                    f" {r['rss_mb']:>5.1f} MB {r['peak_mb']:>5.1f} MB {ratio:>8}"
                )
    missing = [lib for lib in libraries if lib not in present]
    if missing:
        lines.append(f"not installed (pip install \"tokensieve[bench]\"): {', '.join(missing)}")
    return lines
