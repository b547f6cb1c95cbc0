"""Coverage-guided fuzzing of tokensieve's history readers with atheris.

Each input (bytes from libFuzzer) is decoded into a history in one of the four formats:
message shapes close to the real ones (so pairing, windowing and repair are reached),
with any field replaced now and then by an arbitrary value: strings (lone surrogates
too), huge ints, floats, bytes, nested lists / dicts / tuples, references back to a
container already built (cycles), nesting tens of thousands deep, and objects whose
dunder methods raise or lie (``tests/support/hostile.py``). Then:

- ``count_history_tokens`` and ``compact_history`` (both dangling-call modes, a budget
  from the input: compacting or not, format named or detected) are called;
- any exception that is not a ``tokensieve.TokensieveError`` (a pyo3 ``PanicException``
  included) is a *finding*; so is an output that breaks its provider's rules
  (``tests/support/provider_rules.py``) when the input was a well-formed history;
- a signal (segfault, abort) is a crash: libFuzzer saves the input as ``crash-*``.

Findings are recorded in ``$FUZZ_DIR/findings/`` (one file per distinct signature, with
the input bytes as ``<signature>.input``) and fuzzing goes on; ``fuzz/run.sh`` restarts
the fuzzer after a crash, and on restart the harness skips inputs of a crash class
already saved (a cycle, nesting deeper than ``DEEP``) so that one known crash does not
eat the whole run. Reproduce one input with ``fuzz/run.sh <file>``.

Run it through ``make fuzz`` / ``fuzz/run.sh`` (see ``docs/testing.md``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sys
import traceback
import warnings
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

tokensieve = None  # imported by the first input: see load_tokensieve

from pydantic_ai import messages as pm  # noqa: E402

from tests.support.hostile import HOSTILE_VALUES  # noqa: E402
from tests.support.provider_rules import violations  # noqa: E402

FORMATS = ("pydantic-ai", "openai", "responses", "anthropic")
FUZZ_DIR = Path(os.environ.get("FUZZ_DIR", ROOT / "fuzz" / "out"))
FINDINGS = FUZZ_DIR / "findings"
DEEP = 10_000  # nesting at or beyond this is the "deep" crash class
IDS = ("c1", "c2", "c3", "call_a", "", "toolu_01")
NAMES = ("f", "read_file", "web_search", "")
ROLES_OPENAI = ("system", "developer", "user", "assistant", "tool", "function")
BLOCKS_ANTHROPIC = ("text", "tool_use", "tool_result", "thinking", "redacted_thinking", "image", "document",
                    "server_tool_use", "web_search_tool_result", "search_result")
ITEMS_RESPONSES = ("message", "function_call", "function_call_output", "custom_tool_call", "custom_tool_call_output",
                   "reasoning", "compaction", "web_search_call", "computer_call", "computer_call_output",
                   "item_reference", None)
HOSTILE = list(HOSTILE_VALUES.values())


class Stop(Exception):
    """The input ran out: the history built so far is used."""


class Builder:
    """Decodes libFuzzer's bytes into Python values, recording what it built."""

    def __init__(self, data: bytes) -> None:
        self.fdp = atheris.FuzzedDataProvider(data)
        self.containers: list = []  # built so far: a later value may refer back to one (a cycle)
        self.cyclic = False
        self.max_depth = 0
        self.odd = False  # an arbitrary value was put where a well-formed field belongs

    def left(self) -> int:
        return self.fdp.remaining_bytes()

    def int(self, lo: int, hi: int) -> int:
        if self.left() == 0:
            raise Stop
        return self.fdp.ConsumeIntInRange(lo, hi)

    def pick(self, options):
        return options[self.int(0, len(options) - 1)]

    def chance(self, percent: int) -> bool:
        return self.int(0, 99) < percent

    def text(self) -> str:
        kind = self.int(0, 9)
        n = self.int(0, 40)
        if kind == 0:
            return self.fdp.ConsumeUnicode(n)  # may hold lone surrogates
        if kind == 1:
            return self.pick(("", " ", "\n", "<|endoftext|>", "🙂" * 3, "e\u0301", "\x00", "日本語")) * self.int(1, 4)
        if kind == 2:
            return "x" * self.int(0, 70_000)  # long: the chunked / threaded counting path
        return self.fdp.ConsumeUnicodeNoSurrogates(n)

    def value(self, depth: int = 0):
        """An arbitrary value."""
        self.max_depth = max(self.max_depth, depth)
        kind = self.int(0, 17)
        if kind <= 2:
            return self.text()
        if kind == 3:
            return self.fdp.ConsumeInt(self.int(1, 12))
        if kind == 4:
            return self.fdp.ConsumeRegularFloat() if self.chance(80) else self.pick((float("nan"), float("inf"), -0.0))
        if kind == 5:
            return self.pick((True, False, None))
        if kind == 6:
            return self.fdp.ConsumeBytes(self.int(0, 16))
        if kind in (7, 8, 9) and depth < 12:
            container: list | dict = [] if kind == 7 else {}
            self.containers.append(container)
            for _ in range(self.int(0, 4)):
                item = self.value(depth + 1)
                if isinstance(container, list):
                    container.append(item)
                else:
                    key = self.pick(("a", "b", "", 1, 2.5, None, True, ("t",), "ü"))
                    container[key] = item
            if kind == 9 and isinstance(container, dict):
                return tuple(container.values())
            return container
        if kind == 10 and self.containers:
            self.cyclic = True  # a reference to an enclosing or earlier container
            target = self.pick(self.containers)
            return target
        if kind == 11:
            n = self.int(1, 60_000) if self.chance(30) else self.int(1, 300)
            self.max_depth = max(self.max_depth, depth + n)
            inner = self.value(depth + 1) if self.chance(30) else "leaf"
            for _ in range(n):
                inner = [inner] if self.chance(50) else {"k": inner}
            return inner
        if kind == 12:
            self.odd = True
            return self.pick(HOSTILE)()
        return self.text()

    def field(self, proper):
        """``proper`` (a value or a zero-argument function) most of the time, else an
        arbitrary value."""
        if self.chance(8):
            self.odd = True
            return self.value()
        return proper() if callable(proper) else proper

    def mark_cycle(self, container):
        self.containers.append(container)
        return container


# ---- Histories per format ----------------------------------------------------------------


# The builders branch on the proper value they drew (``role``), never on the value stored
# (``b.field(role)``, which may be a hostile object whose __eq__ raises).


def openai_message(b: Builder) -> dict:
    role = b.pick(ROLES_OPENAI)
    message: dict = b.mark_cycle({"role": b.field(role)})
    if b.chance(70):
        message["content"] = b.field(lambda: b.pick((
            b.text(), None, "",
            [{"type": "text", "text": b.text()}, {"type": "image_url", "image_url": {"url": "data:"}}],
        )))
    if role == "assistant" and b.chance(60):
        calls = []
        for _ in range(b.int(0, 3)):
            if b.chance(15):
                calls.append(b.field({"id": b.pick(IDS), "type": "custom", "custom": {"name": b.pick(NAMES), "input": b.text()}}))
            else:
                args = b.field(lambda: b.text() if b.chance(50) else b.value())
                calls.append(b.field(lambda: {"id": b.field(lambda: b.pick(IDS)), "type": "function",
                                              "function": b.field(lambda: {"name": b.pick(NAMES), "arguments": args})}))
        message["tool_calls"] = b.field(calls)
    if role == "assistant" and b.chance(10):
        message["function_call"] = b.field(lambda: {"name": b.pick(NAMES), "arguments": b.value()})
    if role == "tool":
        message["tool_call_id"] = b.field(lambda: b.pick(IDS))
    if role == "function":
        message["name"] = b.field(lambda: b.pick(NAMES))
    return message


def anthropic_block(b: Builder, role: str):
    kind = b.pick(BLOCKS_ANTHROPIC)
    block: dict = b.mark_cycle({"type": b.field(kind)})
    if kind in ("text",):
        block["text"] = b.field(b.text)
    elif kind in ("tool_use", "server_tool_use"):
        block.update(id=b.field(lambda: b.pick(IDS)), name=b.pick(NAMES), input=b.field(lambda: b.value()))
    elif kind in ("tool_result", "web_search_tool_result"):
        block["tool_use_id"] = b.field(lambda: b.pick(IDS))
        block["content"] = b.field(lambda: b.text() if b.chance(50) else [{"type": "text", "text": b.text()}])
        if b.chance(20):
            block["is_error"] = b.field(True)
    elif kind == "thinking":
        block.update(thinking=b.field(b.text), signature="sig")
    elif kind == "redacted_thinking":
        block["data"] = b.field(b.text)
    else:
        block["source"] = b.field(lambda: {"type": "base64", "media_type": "image/png", "data": "iVBOR"})
    return block


def anthropic_message(b: Builder) -> dict:
    role = b.field(lambda: b.pick(("user", "assistant")))  # not branched on
    if b.chance(25):
        content = b.field(b.text)
    else:
        content = b.field(lambda: [anthropic_block(b, role) for _ in range(b.int(0, 4))])
    return b.mark_cycle({"role": role, "content": content})


def responses_item(b: Builder) -> dict:
    kind = b.pick(ITEMS_RESPONSES)
    item: dict = b.mark_cycle({} if kind is None and b.chance(50) else {"type": b.field(kind)})
    if kind in ("message", None):
        item["role"] = b.field(lambda: b.pick(("user", "assistant", "system", "developer")))
        item["content"] = b.field(lambda: b.text() if b.chance(50) else [{"type": b.pick(("input_text", "output_text")), "text": b.text()}])
    elif isinstance(kind, str) and kind.endswith("_call"):
        item["call_id"] = b.field(lambda: b.pick(IDS))
        item["name"] = b.pick(NAMES)
        item["arguments" if kind == "function_call" else "input"] = b.field(lambda: b.text() if b.chance(50) else b.value())
    elif isinstance(kind, str) and kind.endswith("_call_output"):
        item["call_id"] = b.field(lambda: b.pick(IDS))
        item["output"] = b.field(lambda: b.text() if b.chance(60) else b.value())
    elif kind == "reasoning":
        item["summary"] = b.field(lambda: [{"type": "summary_text", "text": b.text()}])
    elif kind == "compaction":
        item["encrypted_content"] = b.field(b.text)
    return item


def pydantic_part(b: Builder, request: bool):
    try:
        return _pydantic_part(b, request)
    except (ValueError, TypeError):  # pydantic-ai's own checks in __post_init__
        return pm.TextPart("x")


def _pydantic_part(b: Builder, request: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if request:
            kind = b.int(0, 5)
            if kind == 0:
                part = pm.SystemPromptPart(b.text())
            elif kind == 1:
                part = pm.UserPromptPart(b.text() if b.chance(60) else [b.text(), pm.ImageUrl("https://e.com/a.png")])
            elif kind == 2:
                part = pm.ToolReturnPart(b.pick(NAMES), b.value(), tool_call_id=b.pick(IDS))
            elif kind == 3:
                part = pm.RetryPromptPart(b.text(), tool_name=b.pick((None, *NAMES)), tool_call_id=b.pick(IDS))
            elif kind == 4:
                part = pm.RetryFeedbackPart(b.text(), retry=pm.RetryInfo("model_retry"))
            else:
                part = pm.CompactionPart(b.text())
        else:
            kind = b.int(0, 4)
            if kind == 0:
                part = pm.TextPart(b.text())
            elif kind == 1:
                part = pm.ThinkingPart(b.text(), signature="s")
            elif kind == 2:
                args = b.text() if b.chance(40) else b.value()
                part = pm.ToolCallPart(b.pick(NAMES), args if isinstance(args, (str, dict)) else {"v": args}, tool_call_id=b.pick(IDS))
            elif kind == 3:
                nid = b.pick(IDS)
                part = pm.NativeToolCallPart("web_search", b.value(), tool_call_id=nid)
            else:
                part = pm.FilePart(pm.BinaryImage(b"\x89PNG", media_type="image/png"))
    if b.chance(6):
        # A wrong type at one field of the part.
        names = [f.name for f in dataclasses.fields(part)]
        b.odd = True
        object.__setattr__(part, b.pick(names), b.value())
    return part


def pydantic_message(b: Builder):
    request = b.chance(50)
    parts = [pydantic_part(b, request) for _ in range(b.int(0, 4))]
    message = pm.ModelRequest(parts, instructions=b.text() if b.chance(10) else None) if request else pm.ModelResponse(parts)
    if b.chance(4):
        b.odd = True
        object.__setattr__(message, "parts", b.value())
    b.containers.append(parts)
    return message


MESSAGE = {"openai": openai_message, "anthropic": anthropic_message, "responses": responses_item,
           "pydantic-ai": pydantic_message}


def build(data: bytes) -> tuple[Builder, str, list, dict]:
    b = Builder(data)
    messages: list = []
    config: dict = {"dangling_calls": "drop", "max_input_tokens": 10**9}
    try:
        fmt = FORMATS[b.int(0, 3)]
    except Stop:
        fmt = "openai"
    try:
        config = {
            "dangling_calls": "stub" if b.chance(50) else "drop",
            "max_input_tokens": b.pick((10**9, 50, 400, 4000)),
            "max_exchanges": b.int(1, 5),
            "hard_limit_threshold": 1.0,
            "compaction_threshold": b.pick((0.3, 1.0, 0.01)),
            "target_input_tokens": b.pick((0, 10, 100, 1000)),
            "format": fmt if b.chance(80) else None,
        }
        for _ in range(b.int(0, 14)):
            messages.append(MESSAGE[fmt](b))
        if b.chance(3):
            b.odd = True
            messages.insert(b.int(0, len(messages)), b.value())  # a message that is not one
    except Stop:
        pass
    config.setdefault("format", fmt)
    return b, fmt, messages, config


# ---- Findings ----------------------------------------------------------------------------


def _signature(kind: str, exc: BaseException | None, detail: str = "") -> str:
    """What makes two findings the same: the exception type, where in tokensieve it was
    raised and its message without numbers (the call is not part of it)."""
    if exc is not None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "tokensieve" in f.filename] or \
            traceback.extract_tb(exc.__traceback__)[-1:]
        where = f"{Path(frames[-1].filename).name}:{frames[-1].name}" if frames else "?"
        text = re.sub(r"\d+", "N", str(exc))[:80]
        return f"{type(exc).__name__}|{where}|{text}"
    return f"{kind}|{re.sub(r'[0-9]+', 'N', detail)[:120]}"


SEEN: set[str] = set()
STATS = {"inputs": 0, "findings": 0, "skipped_known_crash_class": 0, "builder_errors": 0}


def record(signature: str, data: bytes, report: str) -> None:
    STATS["findings"] += 1
    if signature in SEEN:
        return
    SEEN.add(signature)
    FINDINGS.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(signature.encode()).hexdigest()[:12]
    (FINDINGS / f"{digest}.input").write_bytes(data)
    (FINDINGS / f"{digest}.txt").write_text(f"{signature}\n\n{report}\n")
    print(f"\n=== FINDING {digest}: {signature}", file=sys.stderr, flush=True)


def known_crash_classes() -> set[str]:
    """Crash classes (``cycle``, ``deep``) of the crash inputs libFuzzer already saved."""
    classes: set[str] = set()
    artifacts = FUZZ_DIR / "artifacts"
    if not artifacts.is_dir() or os.environ.get("FUZZ_SKIP_KNOWN", "1") != "1":
        return classes
    for path in artifacts.glob("crash-*"):
        try:
            b, *_ = build(path.read_bytes())
        except Exception:  # noqa: BLE001 - an input from an older builder
            continue
        classes |= crash_class(b)
    return classes


def crash_class(b: Builder) -> set[str]:
    found = set()
    if b.cyclic:
        found.add("cycle")
    if b.max_depth >= DEEP:
        found.add("deep")
    return found


KNOWN: set[str] = set()


def load_tokensieve() -> None:
    """Import tokensieve, its Python modules instrumented by atheris.

    The extension built by fuzz/setup.sh calls libFuzzer's ``__sanitizer_cov_*`` hooks
    from the moment it is loaded. atheris loads its libFuzzer (the
    ``atheris.core_with_libfuzzer`` module) only in ``atheris.Fuzz()``, privately
    (RTLD_LOCAL): so tokensieve is imported by the first input, after that module has
    been promoted to global symbol scope (dlopen with RTLD_NOLOAD | RTLD_GLOBAL). The
    8-bit counters it registers late are picked up by libFuzzer from the next input on.
    (Loading libFuzzer globally *before* atheris, by LD_PRELOAD or an RTLD_GLOBAL import,
    does not work: atheris then takes its libFuzzer-less core, whose functions the
    global copy interposes: "You must call Setup() before Fuzz()".)
    """
    global tokensieve
    import ctypes

    core = sys.modules.get("atheris.core_with_libfuzzer")
    if core is not None:
        ctypes.CDLL(core.__file__, mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL)
    with atheris.instrument_imports(include=["tokensieve"]):
        import tokensieve as module
        import tokensieve.compaction  # noqa: F401
        import tokensieve.config  # noqa: F401
    tokensieve = module


CURRENT: int | None = None  # fd of $FUZZ_DIR/current-input


def remember_current(data: bytes) -> None:
    """Keep the input being run in $FUZZ_DIR/current-input. A stack overflow kills the
    process before libFuzzer's SIGSEGV handler can save it (that handler runs on the
    overflowed stack); fuzz/run.sh then saves this file as the crash input."""
    global CURRENT
    if CURRENT is None:
        FUZZ_DIR.mkdir(parents=True, exist_ok=True)
        CURRENT = os.open(FUZZ_DIR / "current-input", os.O_WRONLY | os.O_CREAT, 0o644)
    os.ftruncate(CURRENT, 0)
    os.pwrite(CURRENT, data, 0)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris's name
    if tokensieve is None:
        load_tokensieve()
    remember_current(data)
    STATS["inputs"] += 1
    if STATS["inputs"] % 5000 == 0:
        write_stats()
    try:
        b, fmt, messages, config = build(data)
    except Exception:  # noqa: BLE001 - a bug of the builder, not of tokensieve: count it, go on
        STATS["builder_errors"] += 1
        return
    classes = crash_class(b)
    if classes and classes <= KNOWN:
        STATS["skipped_known_crash_class"] += 1
        return
    fmt_arg = config.pop("format")
    calls = [
        ("count_history_tokens", lambda: tokensieve.count_history_tokens(messages, format=fmt_arg)),
        ("compact_history", lambda: tokensieve.compact_history(messages, format=fmt_arg, **config)),
        ("compact_history[other mode]", lambda: tokensieve.compact_history(
            messages, format=fmt_arg, **{**config, "dangling_calls": "drop" if config["dangling_calls"] == "stub" else "stub"})),
    ]
    for label, call in calls:
        try:
            out = call()
        except tokensieve.TokensieveError:
            continue
        except RecursionError as exc:
            record(_signature(label, exc), data, f"{label}: {fmt} history, {len(messages)} messages\n{traceback.format_exc()}")
            continue
        except BaseException as exc:  # noqa: BLE001 - a PanicException is a BaseException
            if isinstance(exc, KeyboardInterrupt):
                raise
            record(_signature(label, exc), data, f"{label}: {fmt} history, {len(messages)} messages\n{traceback.format_exc()}")
            continue
        if label.startswith("compact") and not b.odd and not b.cyclic and fmt_arg is not None:
            try:
                found = violations(fmt, out, messages)
            except Exception:  # noqa: BLE001 - the validators assume sane values
                continue
            if found:
                rule = re.sub(r"^\[\d+\] ", "", found[0])
                record(_signature("output invalid", None, f"{fmt}: {rule}"), data,
                       f"{fmt} history: {messages!r}"[:20_000] + f"\n\nviolations: {found}")


def write_stats() -> None:
    FUZZ_DIR.mkdir(parents=True, exist_ok=True)
    with open(FUZZ_DIR / "harness-stats.txt", "a") as f:
        f.write(f"{os.getpid()} {STATS} distinct={len(SEEN)}\n")


def describe(path: str) -> str:
    """What an input decodes to, without running tokensieve on it."""
    b, fmt, messages, config = build(Path(path).read_bytes())
    classes = sorted(crash_class(b)) or ["other"]
    return (f"{fmt} history of {len(messages)} messages, class {'+'.join(classes)} "
            f"(max nesting {b.max_depth}, cycle {b.cyclic}, odd values {b.odd}), config {config}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--describe":
        print(describe(sys.argv[2]))
        return
    KNOWN.update(known_crash_classes())
    if KNOWN:
        print(f"skipping inputs of known crash classes: {sorted(KNOWN)}", file=sys.stderr, flush=True)
    import atexit

    atexit.register(write_stats)
    sys.setrecursionlimit(20_000)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
