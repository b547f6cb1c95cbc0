"""Same-run counting throughput: tokensieve vs tiktoken, fastokens and toktok-rs.

    python benches/same_run_counting.py [corpus|messages] [ROUNDS] [ENCODING,...]

One thread (cache off, TOKENSIEVE_PARALLELISM=0, one `count` per text), then batch (all
cores). LIBS=tokensieve,fastokens limits the libraries. Each total is checked against
tiktoken's. Peers missing from the environment are reported and skipped.
"""
import os, sys, time, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["TOKENSIEVE_PARALLELISM"] = "0"
import tokensieve
from tests.support.corpus import generate_corpus, generate_messages
from tests.support.reference import build_tiktoken_encoding, write_bpe_file
import tiktoken_ext.openai_public as op

which = sys.argv[1] if len(sys.argv) > 1 else "corpus"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
encs = sys.argv[3].split(",") if len(sys.argv) > 3 else ["o200k_base", "cl100k_base"]
texts = [c.text for c in generate_corpus()] if which == "corpus" else generate_messages(10_000)
nbytes = sum(len(t.encode()) for t in texts)
print(f"{which}: {len(texts)} texts, {nbytes/1e6:.2f} MB")
tokensieve.configure_cache(enabled=False)
d = tempfile.mkdtemp()

def best(f):
    f()
    ts = []
    for _ in range(rounds):
        t = time.perf_counter(); r = f(); ts.append(time.perf_counter() - t)
    return min(ts), r

for name in encs:
    tk = build_tiktoken_encoding(name, d)
    ref = sum(map(len, tk.encode_ordinary_batch(texts, num_threads=2)))
    runs = {}
    count = tokensieve.get_encoding(name).count
    runs["tokensieve"] = lambda: sum(map(count, texts))
    enc_o = tk.encode_ordinary
    runs["tiktoken"] = lambda: sum(len(enc_o(t)) for t in texts)
    try:
        import fastokens
        path, _ = write_bpe_file(name, d)
        pat = tk._pat_str
        ft = fastokens.Tokenizer.from_tiktoken(str(path), pattern=pat, special_tokens={})
        fe = ft.encode_ordinary
        runs["fastokens"] = lambda: sum(len(fe(t)) for t in texts)
    except Exception as e:
        print("fastokens:", e)
    try:
        import toktok
        tt = toktok._encoding(name)
        runs["toktok-rs"] = lambda: sum(tt.count_batch(texts, 1, False))
    except Exception as e:
        print("toktok:", e)
    LIBS = os.environ.get("LIBS", "tokensieve,tiktoken,fastokens,toktok-rs").split(",")
    runs = {k: v for k, v in runs.items() if k in LIBS}
    for lib, f in runs.items():
        s, r = best(f)
        print(f"  {name} 1-thread {lib:10s} {nbytes/s/1e6:7.1f} MB/s  {'ok' if r == ref else f'WRONG {r} != {ref}'}")
    if "tokensieve" in runs:
        # One call per text as above, threads allowed: a text of 16 KiB or more is cut at
        # exact boundaries and counted on all cores (fastokens' encode_ordinary splits
        # texts over 16 KB across cores too, in its 1-thread row above).
        os.environ["TOKENSIEVE_PARALLELISM"] = "1"
        s, r = best(runs["tokensieve"])
        print(f"  {name} 1-call   {'tokensieve':10s} {nbytes/s/1e6:7.1f} MB/s  {'ok' if r == ref else f'WRONG {r} != {ref}'}")
        os.environ["TOKENSIEVE_PARALLELISM"] = "0"
    # batch, 2 threads
    os.environ["TOKENSIEVE_PARALLELISM"] = "1"
    b = {
        "tokensieve": lambda: int(tokensieve.count_tokens_batch(texts, encoding=name).sum()),
        "tiktoken": lambda: sum(map(len, tk.encode_ordinary_batch(texts, num_threads=2))),
    }
    if "fastokens" in runs:
        b["fastokens"] = lambda: sum(map(len, ft.encode_batch(texts)))
    if "toktok-rs" in runs:
        b["toktok-rs"] = lambda: sum(tt.count_batch(texts, 2, False))
    b = {k: v for k, v in b.items() if k in LIBS}
    for lib, f in b.items():
        s, r = best(f)
        print(f"  {name} batch    {lib:10s} {nbytes/s/1e6:7.1f} MB/s  {'ok' if r == ref else f'WRONG {r} != {ref}'}")
    os.environ["TOKENSIEVE_PARALLELISM"] = "0"
