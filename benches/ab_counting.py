"""Interleaved A/B of two (or more) builds of the extension, uncached one-thread counting.

Each build is a copy of the package with its own ``_core`` (the ``.so`` of that build);
the builds run alternately, one fresh process per run, and each run prints the best of
ROUNDS rounds of ``count`` per text of the messages corpus (cache off, one thread) in
CPU time (``time.thread_time``: waiting for a core on a loaded machine is left out)::

    mkdir -p /tmp/ab/old /tmp/ab/new
    cp -r python/tokensieve /tmp/ab/old/ && cp OLD.so /tmp/ab/old/tokensieve/_core.abi3.so
    cp -r python/tokensieve /tmp/ab/new/ && cp NEW.so /tmp/ab/new/tokensieve/_core.abi3.so
    .venv/bin/python benches/ab_counting.py 8 /tmp/ab/old /tmp/ab/new [ENCODING] [ROUNDS]

Prints per build the median, maximum and minimum MB/s over the runs, and every run.
"""

from __future__ import annotations

import os
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import os, pickle, sys, time
os.environ["TOKENSIEVE_PARALLELISM"] = "0"
import tokensieve
texts = pickle.load(open(sys.argv[1], "rb"))
rounds = int(sys.argv[3])
nbytes = sum(len(t.encode()) for t in texts)
tokensieve.configure_cache(enabled=False)
count = tokensieve.get_encoding(sys.argv[2]).count
run = lambda: sum(map(count, texts))
run()
best = float("inf")
for _ in range(rounds):
    t = time.thread_time()
    run()
    best = min(best, time.thread_time() - t)
print(nbytes / best / 1e6)
"""


def main() -> None:
    runs = int(sys.argv[1])
    builds = [a for a in sys.argv[2:] if os.path.isdir(a)]
    rest = [a for a in sys.argv[2:] if not os.path.isdir(a)]
    encoding = rest[0] if rest else "o200k_base"
    rounds = rest[1] if len(rest) > 1 else "3"
    sys.path.insert(0, str(ROOT))
    from tests.support.corpus import generate_messages

    with tempfile.TemporaryDirectory() as d:
        corpus = Path(d, "messages.pkl")
        corpus.write_bytes(pickle.dumps(generate_messages(10_000)))
        figures: dict[str, list[float]] = {b: [] for b in builds}
        for _ in range(runs):
            for b in builds:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(corpus), encoding, rounds],
                    env={**os.environ, "PYTHONPATH": b},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures[b].append(float(out.stdout))
        for b, v in figures.items():
            print(
                f"{b}: median {statistics.median(v):.1f} max {max(v):.1f} min {min(v):.1f} MB/s;",
                " ".join(f"{x:.0f}" for x in v),
            )


if __name__ == "__main__":
    main()
