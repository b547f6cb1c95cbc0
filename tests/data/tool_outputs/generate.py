"""Write the tool output corpus: realistic outputs of the tools agents run, generated
(deterministically, seeded) by this script, nothing copied from real users.

    python tests/data/tool_outputs/generate.py        # rewrites the *.txt / *.json files here

``generate(name)`` returns one text without writing it (the tests and benchmarks use it);
``big_log(mb)`` a long server log with scattered failures, for the benchmark.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

MODULES = ["auth", "billing", "catalog", "checkout", "inventory", "search", "users", "orders", "cache", "api"]
WORDS = "alpha beta gamma delta request handler parse value config token budget window index record".split()


def _r(seed: str) -> random.Random:
    return random.Random(seed)


def pytest_failures() -> str:
    r = _r("pytest")
    out = ["============================= test session starts ==============================",
           "platform linux -- Python 3.11.7, pytest-8.3.2, pluggy-1.5.0",
           "rootdir: /work/project", "configfile: pyproject.toml", "collected 1480 items", ""]
    failed = []
    for m in MODULES:
        for f in range(6):
            name = f"tests/test_{m}_{f}.py"
            marks = "".join(r.choice("......................F.s") for _ in range(24))
            out.append(f"{name} {marks} [{r.randint(1, 99):3d}%]")
            failed += [(name, f"test_{m}_{w}_{i}") for i, w in enumerate(WORDS[:3]) if "F" in marks and i == 0]
    out += ["", "=================================== FAILURES ==================================="]
    for name, test in failed:
        out += [f"_________________________________ {test} _________________________________", "",
                "    def " + test + "():", f"        result = {test.split('_')[1]}.process(payload)",
                ">       assert result.status == 200", "E       AssertionError: assert 500 == 200",
                "E        +  where 500 = <Response [500]>.status", "", f"{name}:{r.randint(10, 300)}: AssertionError",
                "----------------------------- Captured stdout call -----------------------------"]
        out += [f"DEBUG {r.choice(WORDS)} {r.choice(WORDS)} id={r.randint(1, 10**6)}" for _ in range(r.randint(5, 30))]
    out.append("=========================== short test summary info ============================")
    out += [f"FAILED {n}::{t} - AssertionError: assert 500 == 200" for n, t in failed]
    out.append(f"================= {len(failed)} failed, 1402 passed, 14 skipped in 48.31s =================")
    return "\n".join(out) + "\n"


def unittest_failures() -> str:
    r = _r("unittest")
    out = [("." * 70)[: r.randint(40, 70)] for _ in range(30)]
    out[-1] += "F.E"
    for kind, exc in (("FAIL", "AssertionError: 3 != 4"), ("ERROR", "KeyError: 'user_id'")):
        out += ["=" * 70, f"{kind}: test_totals (tests.test_orders.OrderTests.test_totals)", "-" * 70,
                "Traceback (most recent call last):",
                '  File "/work/project/tests/test_orders.py", line 88, in test_totals',
                "    self.assertEqual(order.total(), 4)", exc, ""]
    out += ["-" * 70, "Ran 2140 tests in 12.408s", "", "FAILED (failures=1, errors=1)"]
    return "\n".join(out) + "\n"


def cargo_errors() -> str:
    r = _r("cargo")
    out = [f"   Compiling {c} v0.{r.randint(1, 9)}.{r.randint(0, 20)}" for c in
           ("libc", "memchr", "serde", "regex-syntax", "aho-corasick", "regex", "itoa", "ryu", "serde_json", "tokio")
           for _ in range(8)]
    out.append("   Compiling shop v0.1.0 (/work/shop)")
    for i in range(25):
        if i % 3 == 0:
            out += ["error[E0308]: mismatched types", f"  --> src/{r.choice(MODULES)}.rs:{r.randint(5, 400)}:{r.randint(1, 40)}",
                    "   |", f"{r.randint(5, 400):<3}|     let total: u64 = price * quantity as f64;",
                    "   |                  ---   ^^^^^^^^^^^^^^^^^^^^^^^^ expected `u64`, found `f64`",
                    "   |                  |", "   |                  expected due to this", ""]
        else:
            out += [f"warning: unused variable: `{r.choice(WORDS)}`", f"  --> src/{r.choice(MODULES)}.rs:{r.randint(5, 400)}:9",
                    "   |", f"{r.randint(5, 400):<3}|     let {r.choice(WORDS)} = compute();",
                    "   |         ^^^^^ help: if this is intentional, prefix it with an underscore",
                    "   |", "   = note: `#[warn(unused_variables)]` on by default", ""]
    out += ["Some errors have detailed explanations: E0308.", "For more information about an error, try `rustc --explain E0308`.",
            "warning: `shop` (bin \"shop\") generated 16 warnings", "error: could not compile `shop` (bin \"shop\") due to 9 previous errors; 16 warnings emitted"]
    return "\n".join(out) + "\n"


def tsc_errors() -> str:
    r = _r("tsc")
    out = []
    for i in range(300):
        f = f"src/{r.choice(MODULES)}/{r.choice(WORDS)}.ts"
        code, msg = r.choice([("TS2322", "Type 'string' is not assignable to type 'number'."),
                              ("TS2339", "Property 'userId' does not exist on type 'Session'."),
                              ("TS7006", "Parameter 'event' implicitly has an 'any' type."),
                              ("TS2345", "Argument of type 'null' is not assignable to parameter of type 'Order'.")])
        out.append(f"{f}({r.randint(1, 500)},{r.randint(1, 60)}): error {code}: {msg}")
    out.append("\nFound 300 errors in 87 files.\n")
    return "\n".join(out) + "\n"


def go_test() -> str:
    r = _r("go")
    out = []
    for m in MODULES:
        for t in range(25):
            name = f"Test{m.title()}{r.choice(WORDS).title()}{t}"
            out.append(f"=== RUN   {name}")
            if r.random() < 0.04:
                out += [f"    {m}_test.go:{r.randint(10, 200)}: expected 3 items, got 2", f"--- FAIL: {name} (0.0{r.randint(1, 9)}s)"]
            else:
                out.append(f"--- PASS: {name} (0.00s)")
        ok = r.random() < 0.7
        out.append(f"{'ok  ' if ok else 'FAIL'}\tgithub.com/acme/shop/{m}\t{r.random():.3f}s")
    out += ["panic: runtime error: invalid memory address or nil pointer dereference",
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4b2f1a]", "", "goroutine 7 [running]:",
            "github.com/acme/shop/cache.(*Store).Get(0x0, {0x5a1b20, 0x3})", "\t/work/shop/cache/store.go:42 +0x1a",
            "github.com/acme/shop/cache.TestCacheEviction(0xc000102340)", "\t/work/shop/cache/store_test.go:88 +0x5d",
            "FAIL\tgithub.com/acme/shop/cache\t0.012s", "FAIL"]
    return "\n".join(out) + "\n"


def npm_install() -> str:
    r = _r("npm")
    out = []
    for i in range(900):
        pkg = f"{r.choice(WORDS)}-{r.choice(WORDS)}"
        out.append(f"npm http fetch GET 200 https://registry.npmjs.org/{pkg} {r.randint(5, 900)}ms (cache miss)")
        if i % 150 == 7:
            out.append(f"npm WARN deprecated {pkg}@1.{r.randint(0, 9)}.0: This package is no longer supported.")
    out += ["npm ERR! code ERESOLVE", "npm ERR! ERESOLVE unable to resolve dependency tree", "npm ERR!",
            "npm ERR! While resolving: shop-web@2.3.0", "npm ERR! Found: react@18.2.0",
            "npm ERR! Could not resolve dependency:", "npm ERR! peer react@\"^17.0.0\" from legacy-widgets@4.1.2",
            "", "npm ERR! A complete log of this run can be found in: /root/.npm/_logs/2024-05-01T10_00_00_000Z-debug-0.log"]
    return "\n".join(out) + "\n"


def pip_install() -> str:
    r = _r("pip")
    out = []
    for i in range(400):
        pkg = f"{r.choice(WORDS)}{r.choice(WORDS)}"
        v = f"{r.randint(0, 9)}.{r.randint(0, 30)}.{r.randint(0, 9)}"
        out += [f"Collecting {pkg}=={v}", f"  Downloading {pkg}-{v}-py3-none-any.whl ({r.randint(10, 900)} kB)",
                "     ---------------------------------------- 120.4/120.4 kB 3.1 MB/s eta 0:00:00"]
    out += ["Building wheels for collected packages: lxml", "  Building wheel for lxml (pyproject.toml): started",
            "  error: subprocess-exited-with-error", "  ", "  × Building wheel for lxml (pyproject.toml) did not run successfully.",
            "  │ exit code: 1", "  ╰─> [3 lines of output]", "      Error: Please make sure the libxml2 and libxslt development packages are installed.",
            "  note: This error originates from a subprocess, and is likely not a problem with pip.",
            "ERROR: Failed building wheel for lxml", "ERROR: Could not build wheels for lxml, which is required to install pyproject.toml-based projects"]
    return "\n".join(out) + "\n"


def chained_traceback() -> str:
    r = _r("traceback")
    out = [f"INFO:worker:{r.choice(WORDS)} processed batch {i} in {r.randint(1, 90)} ms" for i in range(600)]
    out += ["Traceback (most recent call last):", '  File "/app/shop/db.py", line 211, in fetch',
            "    row = cursor.fetchone()", "sqlite3.OperationalError: database is locked", "",
            "The above exception was the direct cause of the following exception:", "",
            "Traceback (most recent call last):", '  File "/app/shop/orders.py", line 57, in load_order',
            "    return db.fetch(order_id)", '  File "/app/shop/db.py", line 215, in fetch',
            "    raise StorageError(\"could not read order\") from e", "shop.errors.StorageError: could not read order", "",
            "During handling of the above exception, another exception occurred:", "",
            "Traceback (most recent call last):", '  File "/app/shop/api.py", line 33, in handle',
            "    order = load_order(request.order_id)", "KeyError: 'order_id'"]
    out += [f"INFO:worker:shutdown step {i}" for i in range(200)]
    return "\n".join(out) + "\n"


def git_diff() -> str:
    r = _r("diff")
    out = []
    for f in range(40):
        path = f"src/{r.choice(MODULES)}/{r.choice(WORDS)}_{f}.py"
        out += [f"diff --git a/{path} b/{path}", f"index {r.getrandbits(28):07x}..{r.getrandbits(28):07x} 100644",
                f"--- a/{path}", f"+++ b/{path}"]
        for h in range(r.randint(1, 4)):
            start = r.randint(1, 400)
            out.append(f"@@ -{start},12 +{start},14 @@ def {r.choice(WORDS)}_{h}(self):")
            for _ in range(r.randint(6, 40)):
                out.append(r.choice([" ", " ", "-", "+"]) + f"    {r.choice(WORDS)} = {r.choice(WORDS)}({r.randint(0, 99)})")
    return "\n".join(out) + "\n"


def git_log() -> str:
    r = _r("log")
    out = []
    for i in range(400):
        out += [f"commit {r.getrandbits(160):040x}", f"Author: Dev {r.randint(1, 20)} <dev{r.randint(1, 20)}@example.com>",
                f"Date:   Mon May {r.randint(1, 28)} 10:{r.randint(10, 59)}:00 2024 +0000", "",
                f"    {r.choice(['Fix', 'Add', 'Refactor', 'Speed up'])} {r.choice(WORDS)} in {r.choice(MODULES)}", "",
                f"    {' '.join(r.choice(WORDS) for _ in range(14))}", ""]
    return "\n".join(out) + "\n"


def grep_rn() -> str:
    r = _r("grep")
    out = []
    for f in range(120):
        path = f"src/{r.choice(MODULES)}/{r.choice(WORDS)}_{f}.py"
        for _ in range(r.randint(1, 30)):
            out.append(f"{path}:{r.randint(1, 900)}:    token = budget.{r.choice(WORDS)}(window, {r.randint(0, 9)})")
    return "\n".join(out) + "\n"


def ls_recursive() -> str:
    r = _r("ls")
    out = []
    for d in range(150):
        out.append(f"./src/{MODULES[d % 10]}/{r.choice(WORDS)}_{d}:")
        out += [f"{r.choice(WORDS)}_{i}.{r.choice(['py', 'ts', 'json', 'md'])}" for i in range(r.randint(3, 40))]
        out.append("")
    return "\n".join(out) + "\n"


def find_output() -> str:
    r = _r("find")
    out = []
    for d in range(200):
        base = f"./node_modules/{r.choice(WORDS)}-{d}/lib"
        out += [f"{base}/{r.choice(WORDS)}_{i}.js" for i in range(r.randint(2, 30))]
    return "\n".join(out) + "\n"


def large_json() -> str:
    r = _r("json")
    items = [{"id": i, "sku": f"SKU-{r.getrandbits(32):08X}", "name": " ".join(r.choice(WORDS) for _ in range(4)),
              "price": round(r.random() * 500, 2), "tags": [r.choice(WORDS) for _ in range(r.randint(0, 6))],
              "stock": {"warehouse": r.choice(MODULES), "count": r.randint(0, 999)}, "active": r.random() < 0.8,
              "notes": None if r.random() < 0.5 else "Ω " + " ".join(r.choice(WORDS) for _ in range(30))}
             for i in range(800)]
    return json.dumps({"page": 1, "per_page": 800, "total": 48213, "items": items, "next": "/api/items?page=2"}, indent=2, ensure_ascii=False) + "\n"


def minified_js() -> str:
    r = _r("js")
    body = ";".join(f"function {r.choice(WORDS)}{i}(a,b){{return a.{r.choice(WORDS)}(b)+{r.randint(0, 999)}}}" for i in range(4000))
    return "!function(){\"use strict\";" + body + "}();\n"


def binary_looking() -> str:
    r = _r("bin")
    return "".join(chr(r.choice([r.randint(0, 31), r.randint(32, 126), 0xFFFD])) for _ in range(60_000))


def cjk_text() -> str:
    r = _r("cjk")
    zh = "系统在处理请求时发生错误，请检查配置文件并重新运行测试。数据库连接已建立，缓存命中率为百分之九十。"
    ja = "ビルドは正常に完了しました。警告が三件あります。テストを実行しています。"
    ko = "요청을 처리하는 중 오류가 발생했습니다. 설정을 확인하세요."
    out = [f"[{i:05d}] " + r.choice([zh, ja, ko]) for i in range(3000)]
    out[1777] = "[01777] 错误：无法连接到数据库 (ERROR: connection refused)"
    return "\n".join(out) + "\n"


CORPUS = {
    "pytest_failures.txt": pytest_failures,
    "unittest_failures.txt": unittest_failures,
    "cargo_errors.txt": cargo_errors,
    "tsc_errors.txt": tsc_errors,
    "go_test.txt": go_test,
    "npm_install.txt": npm_install,
    "pip_install.txt": pip_install,
    "chained_traceback.txt": chained_traceback,
    "git_diff.txt": git_diff,
    "git_log.txt": git_log,
    "grep_rn.txt": grep_rn,
    "ls_recursive.txt": ls_recursive,
    "find.txt": find_output,
    "large.json": large_json,
    "minified.js": minified_js,
    "binary_looking.txt": binary_looking,
    "cjk.txt": cjk_text,
}


def generate(name: str) -> str:
    return CORPUS[name]()


def big_log(mb: float, seed: int = 7) -> str:
    """A server log of about ``mb`` MB: mostly INFO lines, an ERROR every ~500 lines and
    a traceback every ~5,000."""
    r = random.Random(seed)
    lines = []
    size = 0
    i = 0
    while size < mb * 1e6:
        i += 1
        if i % 5000 == 0:
            line = ("Traceback (most recent call last):\n  File \"/app/worker.py\", line 88, in run\n"
                    "    handle(job)\nRuntimeError: job %d failed\n" % i)
        elif i % 500 == 0:
            line = f"2024-05-01T10:{i % 60:02d}:{i % 60:02d}Z ERROR {r.choice(MODULES)}: connection reset by peer (attempt {i % 5})\n"
        else:
            line = (f"2024-05-01T10:{i % 60:02d}:{i % 60:02d}Z INFO {r.choice(MODULES)}: {r.choice(WORDS)} "
                    f"{r.choice(WORDS)} served request id={i} in {i % 97} ms\n")
        lines.append(line)
        size += len(line)
    return "".join(lines)


def main() -> None:
    for name, make in CORPUS.items():
        (HERE / name).write_text(make(), encoding="utf-8", newline="")
        print(f"{name}: {(HERE / name).stat().st_size:,} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
