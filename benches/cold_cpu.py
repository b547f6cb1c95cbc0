"""Cold compaction CPU and wall time: the 10,000-message history, content cache cleared.

``test_compact_cold[10000]`` measures wall time, which on the shared 2-core machine
varies 2-3x with the load. This script prints, per call, the wall time, the process's
CPU time (every thread: the reader and the counting threads) and the calling thread's
CPU time (``time.thread_time``: the reading, window and wrapper, the critical path),
minimum and median of ``ROUNDS`` calls (default 10), and with ``peers`` the same for
pydantic-ai-harness's sliding window in the same process (single-threaded: its CPU time
is its work)::

    .venv/bin/python benches/cold_cpu.py [peers]

For an A/B, copy ``python/tokensieve`` with each build's ``_core.abi3.so`` to two
directories and alternate ``PYTHONPATH=<dir> .venv/bin/python benches/cold_cpu.py``.
"""

from __future__ import annotations

import gc
import os
import sys
import time

import tokensieve
from tokensieve import _bench

ROUNDS = int(os.environ.get("ROUNDS", "10"))


def run(f, setup=None) -> str:
    wall, proc, thread = [], [], []
    for _ in range(ROUNDS):
        if setup:
            setup()
        gc.collect()
        w0, p0, t0 = time.perf_counter(), time.process_time(), time.thread_time()
        f()
        thread.append(time.thread_time() - t0)
        proc.append(time.process_time() - p0)
        wall.append(time.perf_counter() - w0)

    def stat(v: list[float]) -> str:
        return f"min {min(v) * 1e3:6.1f} med {sorted(v)[len(v) // 2] * 1e3:6.1f}"

    return f"wall {stat(wall)} | process CPU {stat(proc)} | thread CPU {stat(thread)}"


def main(args: list[str]) -> None:
    history = _bench.history(10_000)
    config = _bench.BENCH_CONFIG
    tokensieve.compact_history(history, config)  # the objects' first read (see docs/performance.md)
    print(tokensieve.__file__)
    print("tokensieve cold ", run(lambda: tokensieve.compact_history(history, config), tokensieve.clear_cache))
    if "peers" in args:
        sys.path.insert(0, os.path.dirname(__file__))
        import test_bench_compaction as bench

        harness = bench._harness_compactor()
        print("harness         ", run(lambda: harness(history)))


if __name__ == "__main__":
    main(sys.argv[1:])
