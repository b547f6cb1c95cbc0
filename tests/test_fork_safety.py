"""A child made by ``os.fork()`` while other threads count and compact never hangs.

``fork`` copies memory, not threads: a lock another thread held at that moment stays
held in the child, by nobody. tokensieve's native state (the content cache's shards,
the identity memos, the vocabulary loader) is reset in the child when the fork caught
it locked (``rust/src/fork.rs``). Here threads keep every one of those locks busy
(counting, compacting long histories in all four formats with the counting thread and
the memos, clearing the caches) while the main thread forks again and again; each child
counts and compacts, checks its answers and must exit within a timeout.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

import tokensieve
from tests.support import agent_fixtures as af

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12+ warns that forking a threaded process may deadlock the child: the point here.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

#: Forks per run at most; the main thread forks for FORK_SECONDS, or longer (up to
#: MAX_FORK_SECONDS) on a machine so loaded that it has not made MIN_FORKS forks by then.
FORKS = 120
FORK_SECONDS = 12.0
MAX_FORK_SECONDS = 30.0
#: A child still running this long after its fork is hung (a healthy one needs well under
#: a second, even on a loaded machine).
CHILD_TIMEOUT = 20.0
#: Children alive at once.
MAX_ALIVE = 3
#: Below this many forks the run proves little (the previous build hung about one child
#: in six: 20 children all finishing by luck is a 1-in-40 chance).
MIN_FORKS = 20

COMPACT = {"max_input_tokens": 20_000, "target_input_tokens": 8_000, "max_exchanges": 3}


def _history(fmt: str, exchanges: int, seed: int) -> list:
    """A long tool loop: long enough to hand counting to the reader's thread, with results
    of 0.5-2 KB (large strings for the string memo) and argument dicts (the value memo)."""
    rng = random.Random(seed)
    events = [af.system("You are a coding agent."), af.user(f"task {seed}")]
    for i in range(exchanges):
        ids = [f"c{seed}_{i}_{k}" for k in range(rng.choice((1, 1, 2)))]
        events.append(af.calls(*ids, text=f"step {i}" if i % 3 == 0 else None))
        events.append(af.results(*ids, size=rng.choice((150, 300, 600))))
    events.append(af.user("and now?"))
    return af.build(fmt, events)


@pytest.fixture(scope="module")
def histories() -> dict[str, list]:
    out = {fmt: _history(fmt, 700, seed) for seed, fmt in enumerate(af.FORMATS)}
    assert all(len(h) >= 1_100 for h in out.values())  # above the counting thread's minimum
    return out


def _work(histories: dict[str, list], texts: list[str], turn: int) -> tuple:
    """What a child does (and what the parent computes first, to check the child against)."""
    fmt = af.FORMATS[turn % 4]
    return (
        tokensieve.count_tokens(texts[turn % len(texts)]),
        tokensieve.count_tokens_batch(texts[:40]).tolist(),
        tokensieve.count_history_tokens(histories[fmt]).tolist(),
        len(tokensieve.compact_history(histories[fmt], dangling_calls=("drop", "stub")[turn // 4 % 2], **COMPACT)),
    )


def _hammer(histories: dict[str, list], texts: list[str], stop: threading.Event, errors: list) -> list:
    """Threads that keep the native locks busy until ``stop`` is set."""

    def guarded(loop):
        def run():
            try:
                while not stop.is_set():
                    loop()
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)

        return run

    n = iter(range(10**9))

    def compactor():  # the reader, its counting thread, the memos, the cache
        for fmt, history in histories.items():
            tokensieve.compact_history(history, dangling_calls=random.choice(("drop", "stub")), **COMPACT)
            tokensieve.count_history_tokens(history, encoding=random.choice(("o200k_base", "cl100k_base")))

    def counter():  # the cache, from this thread and the parallel pool; new texts: inserts
        i = next(n)
        tokensieve.count_tokens_batch([f"{i} {t}" for t in texts], encoding="cl100k_base")
        tokensieve.count_tokens(f"text number {i} " * 20)

    def clearer():  # every shard and memo, emptied while the others use them
        tokensieve.clear_cache()
        time.sleep(0.003)

    loops = [compactor, compactor, counter, clearer]
    return [threading.Thread(target=guarded(loop), daemon=True) for loop in loops]


def _child(histories: dict[str, list], texts: list[str], turn: int, expected: tuple) -> None:
    code = 3
    try:
        code = 0 if _work(histories, texts, turn) == expected else 1
    finally:
        os._exit(code)


def test_children_forked_while_threads_count_and_compact_finish(histories, pristine_cache):
    texts = [f"{i}: " + "lorem ipsum dolor sit amet, consectetur " * (5 + i % 40) for i in range(400)]
    assert sum(map(len, texts)) > tokensieve._core.PARALLEL_MIN_BYTES  # the parallel pool is used
    expected = {turn: _work(histories, texts, turn) for turn in range(8)}

    stop = threading.Event()
    errors: list[BaseException] = []
    threads = _hammer(histories, texts, stop, errors)
    alive: dict[int, float] = {}  # pid -> fork time
    results: list[str] = []  # "ok", "wrong", "raised", "died", "hung"

    def reap(block_until: float | None) -> None:
        while alive:
            for pid, forked in list(alive.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    del alive[pid]
                    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
                    results.append({0: "ok", 1: "wrong", 3: "raised"}.get(code, "died"))
                elif time.monotonic() - forked > CHILD_TIMEOUT:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    del alive[pid]
                    results.append("hung")
            if block_until is None or time.monotonic() >= block_until or not alive:
                return
            time.sleep(0.01)

    for t in threads:
        t.start()
    try:
        time.sleep(0.2)  # let every thread get going
        start = time.monotonic()
        forks = 0
        while forks < FORKS:
            elapsed = time.monotonic() - start
            if (elapsed > FORK_SECONDS and forks >= MIN_FORKS) or elapsed > MAX_FORK_SECONDS:
                break
            while len(alive) >= MAX_ALIVE:
                reap(time.monotonic() + 0.05)
            turn = forks % 8
            pid = os.fork()
            if pid == 0:
                _child(histories, texts, turn, expected[turn])
            alive[pid] = time.monotonic()
            forks += 1
            time.sleep(random.uniform(0, 0.02))  # fork at varied moments of the others' work
    finally:
        stop.set()
        reap(time.monotonic() + CHILD_TIMEOUT + 5)
        for t in threads:
            t.join(timeout=60)

    assert not errors, errors[0]
    summary = {kind: results.count(kind) for kind in sorted(set(results))}
    assert results.count("ok") == forks, f"{forks} children: {summary}"
    assert forks >= MIN_FORKS, f"only {forks} forks in {MAX_FORK_SECONDS} s"
