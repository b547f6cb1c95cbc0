"""First count in fresh processes: import + first count, and RSS after it, for
tokensieve, tiktoken (built offline from rust/vocab/) and toktok-rs.

    python benches/first_count.py [RUNS]
"""
import subprocess, sys, json, statistics
from pathlib import Path
PY = sys.executable
VOCAB = str(Path(__file__).resolve().parent.parent / "rust" / "vocab") + "/"
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
def rss_code(setup):
    return setup + """
import resource
with open('/proc/self/status') as f:
    lines = f.readlines()
rss = next(int(l.split()[1]) for l in lines if l.startswith('VmRSS'))
hwm = next(int(l.split()[1]) for l in lines if l.startswith('VmHWM'))
print(json.dumps({'t': t1 - t0, 'import': ti - t0, 'rss_mb': rss / 1024, 'hwm_mb': hwm / 1024, 'n': n}))
"""
cases = {
    "tokensieve": "import time, json\nt0=time.perf_counter()\nimport tokensieve\nti=time.perf_counter()\nn=tokensieve.count_tokens('Hello, world!', encoding=ENC)\nt1=time.perf_counter()",
    "tiktoken": "import time, json, os, sys\nt0=time.perf_counter()\nimport tiktoken, tiktoken.load\nti=time.perf_counter()\nr=tiktoken.load.load_tiktoken_bpe(VOCAB+ENC+'.tiktoken')\ne=tiktoken.Encoding(ENC, pat_str=PAT, mergeable_ranks=r, special_tokens={})\nn=len(e.encode_ordinary('Hello, world!'))\nt1=time.perf_counter()",
    "toktok-rs": "import time, json\nt0=time.perf_counter()\nimport toktok\nti=time.perf_counter()\nn=toktok.batch_count(['Hello, world!'], ENC)[0]\nt1=time.perf_counter()",
}
PATS = {
 "o200k_base": "|".join([r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""", r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""", r"""\p{N}{1,3}""", r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""", r"""\s*[\r\n]+""", r"""\s+(?!\S)""", r"""\s+"""]),
 "cl100k_base": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
}
for enc in ("o200k_base", "cl100k_base"):
    for lib, code in cases.items():
        res = []
        for _ in range(runs):
            src = f"ENC={enc!r}\nPAT={PATS[enc]!r}\nVOCAB={VOCAB!r}\n" + rss_code(code)
            out = subprocess.run([PY, "-c", src], capture_output=True, text=True)
            if out.returncode:
                print(lib, enc, out.stderr[-300:]); break
            res.append(json.loads(out.stdout))
        if res:
            med = lambda k: statistics.median(r[k] for r in res)
            print(f"{enc:12s} {lib:11s} first count {med('t')*1e3:7.1f} ms (import {med('import')*1e3:6.1f} ms)  RSS {med('rss_mb'):6.1f} MB peak {med('hwm_mb'):6.1f} MB  n={res[0]['n']}")
