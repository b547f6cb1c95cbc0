"""Warm per-request CPU time of the window, the pipeline without and with the summary.

10,000 pydantic-ai messages (``tokensieve._bench.history``), each request the history plus
one new exchange (50 different ones, cycled), after the history was compacted once;
``time.thread_time`` (CPU time: waiting for a core on a loaded machine is left out),
minimum and median of 40 requests per configuration, one process for all three::

    .venv/bin/python benches/warm_cpu.py [window] [pipeline] [pipeline+summary]
"""

from __future__ import annotations

import itertools
import random
import sys
import time

import tokensieve
from tokensieve import _bench

CASES = {
    "window": _bench.BENCH_CONFIG,
    "pipeline": _bench.PIPELINE_CONFIG,
    "pipeline+summary": _bench.PIPELINE_SUMMARY_CONFIG,
}


def main(names: list[str]) -> None:
    history = _bench.history(10_000)
    rng = random.Random(len(history))
    grown = [history + _bench.exchange(rng, len(history) + 2 * i) for i in range(50)]
    for name in names or list(CASES):
        config = CASES[name]
        tokensieve.compact_history(history, config)  # the previous request
        times = []
        for request in itertools.islice(itertools.cycle(grown), 40):
            start = time.thread_time()
            tokensieve.compact_history(request, config)
            times.append(time.thread_time() - start)
        times.sort()
        print(f"{name:18s} min {times[0] * 1e3:6.2f} ms  median {times[len(times) // 2] * 1e3:6.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
