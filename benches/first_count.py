"""First count in fresh processes: import + first count, and RSS after it, for
tokensieve and the peers installed (tiktoken and fastokens loading tokensieve's rank
files offline, toktok-rs its bundled encodings), every embedded encoding; then the CPU
time of a whole process (start-up and exit included) against ``python -c pass``.

    python benches/first_count.py [RUNS] [ENCODING ...]

The table is ``tokensieve._first_count.table`` (``tokensieve bench --first-count`` prints
the same).
"""
import resource
import statistics
import subprocess
import sys

import tokensieve
from tokensieve import _first_count

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
encodings = sys.argv[2:] or list(tokensieve.ENCODINGS)
print(f"fresh processes, median of {runs}; first count = import + load + count {_first_count.HELLO!r}")
for line in _first_count.table(encodings, runs=runs):
    print(line)

# CPU time is less noisy than wall time on a shared machine: what importing and counting
# add to a process that does nothing.
WHOLE = {
    "python -c pass": "pass",
    "import tokensieve + first count": f"import tokensieve; tokensieve.count_tokens({_first_count.HELLO!r}, encoding={encodings[0]!r})",
}
cpu: dict[str, list[float]] = {name: [] for name in WHOLE}
for _ in range(max(runs, 10)):
    for name, code in WHOLE.items():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", code], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
print(f"\nwhole process, CPU time (user + system), median of {max(runs, 10)}, {encodings[0]}:")
for name, times in cpu.items():
    print(f"  {name:<32} {statistics.median(times) * 1e3:6.1f} ms")
