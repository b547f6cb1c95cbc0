"""First count in fresh processes: import + first count, and RSS after it, for
tokensieve and the peers installed (tiktoken and fastokens loading tokensieve's rank
files offline, toktok-rs its bundled encodings), every embedded encoding.

    python benches/first_count.py [RUNS] [ENCODING ...]

The table is ``tokensieve._first_count.table`` (``tokensieve bench`` prints the same).
"""
import sys

import tokensieve
from tokensieve import _first_count

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
encodings = sys.argv[2:] or list(tokensieve.ENCODINGS)
print(f"fresh processes, median of {runs}; first count = import + load + count {_first_count.HELLO!r}")
for line in _first_count.table(encodings, runs=runs):
    print(line)
