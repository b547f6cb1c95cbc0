"""Dicts and lists are counted from a memo when unchanged; any change is counted anew.

Tool arguments and structured tool results are counted by their JSON text. A container
of exact built-in types is remembered by identity with the objects it held; a later
count of the same object reuses its tokens only if it still holds the same objects in
the same order. These tests change such containers in place, in every way a caller
could, between two counts, and compare each count with the pure-Python baseline, which
renders everything every time.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart, UserPromptPart

import tokensieve
from tokensieve import baseline


def _history(args: Any, result: Any) -> list[Any]:
    return [
        ModelResponse(parts=[ToolCallPart("search", args, tool_call_id="c1")]),
        ModelRequest(parts=[ToolReturnPart("search", result, tool_call_id="c1")]),
    ]


def _openai(args: Any, result: Any) -> list[dict[str, Any]]:
    return [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "search", "arguments": args}}]},
        # A list content is a list of typed content parts in this format: wrapped, the
        # result is one JSON value.
        {"role": "tool", "tool_call_id": "c1", "content": {"results": result}},
    ]


def _counts(history: list[Any], encoding: str = "o200k_base") -> list[int]:
    return tokensieve.count_history_tokens(history, encoding=encoding).tolist()


def _assert_counted_as_baseline(history: list[Any], encoding: str = "o200k_base") -> None:
    assert _counts(history, encoding) == baseline.count_history_tokens(history, encoding=encoding)


MUTATIONS = {
    "value replaced": lambda v: v["args"].__setitem__("q", "a much longer query than before, with more words"),
    "key added": lambda v: v["args"].__setitem__("extra", "another argument"),
    "key removed": lambda v: v["args"].pop("limit"),
    "same size, other key": lambda v: (v["args"].pop("limit"), v["args"].__setitem__("offset", 12345)),
    "order changed": lambda v: v["args"].update(v["args"].copy()) or v["args"].__setitem__("q", v["args"].pop("q")),
    "nested list grown": lambda v: v["result"][0]["tags"].append("a third tag that adds tokens"),
    "nested list item replaced": lambda v: v["result"][0]["tags"].__setitem__(0, "replaced tag text"),
    "nested dict value replaced": lambda v: v["result"][1].__setitem__("title", "an entirely different title"),
    "list shrunk": lambda v: v["result"].pop(),
    "list inside a tuple grown": lambda v: v["args"]["pair"][1].append(99999),
    "cleared": lambda v: v["result"].clear(),
}


def _values() -> dict[str, Any]:
    return {
        "args": {"q": "weather", "limit": 20, "pair": ("first", [1, 2])},
        "result": [
            {"title": "Zürich forecast", "score": 0.93, "tags": ["swiss", "weather"], "ok": True, "none": None},
            {"title": "Geneva", "score": 0.5, "tags": [], "ok": False, "none": None},
        ],
    }


@pytest.mark.parametrize("build", [_history, _openai], ids=["pydantic-ai", "openai"])
@pytest.mark.parametrize("mutation", list(MUTATIONS), ids=list(MUTATIONS))
def test_a_container_changed_in_place_is_counted_anew(build, mutation):
    values = _values()
    history = build(values["args"], values["result"])
    before = _counts(history)
    _counts(history)  # remembered and reused
    MUTATIONS[mutation](values)
    _assert_counted_as_baseline(history)
    if mutation != "order changed":  # the same text in another order may count the same
        assert _counts(history) != before


def test_an_unchanged_container_counts_the_same_every_time():
    values = _values()
    history = _history(values["args"], values["result"])
    first = _counts(history)
    assert [_counts(history) for _ in range(3)] == [first] * 3
    _assert_counted_as_baseline(history)


def test_counts_in_each_encoding_are_remembered_apart():
    values = _values()
    history = _history(values["args"], values["result"])
    for encoding in ["o200k_base", "cl100k_base", "o200k_base", "cl100k_base"]:
        _assert_counted_as_baseline(history, encoding)


def test_the_same_container_in_two_places_counts_in_both():
    shared = {"q": "shared arguments", "n": 7}
    history = [
        ModelResponse(parts=[ToolCallPart("search", shared, tool_call_id="c1")]),
        ModelRequest(parts=[ToolReturnPart("search", shared, tool_call_id="c1")]),
        ModelResponse(parts=[ToolCallPart("search", shared, tool_call_id="c2")]),
        ModelRequest(parts=[ToolReturnPart("search", "done", tool_call_id="c2")]),
    ]
    _assert_counted_as_baseline(history)
    shared["q"] = "now longer shared arguments, changed in place"
    _assert_counted_as_baseline(history)


class Temperature:
    """Not a built-in: rendered by str() every time, so its changes always count."""

    def __init__(self, degrees: int) -> None:
        self.degrees = degrees

    def __str__(self) -> str:
        return "hot " * self.degrees


def test_containers_holding_other_objects_are_rendered_every_time():
    reading = Temperature(1)
    history = _history({"reading": reading}, [reading])
    before = _counts(history)
    reading.degrees = 30
    _assert_counted_as_baseline(history)
    assert _counts(history) != before


class Tags(list):  # type: ignore[type-arg]
    """A list subclass: not an exact built-in container."""


def test_subclassed_containers_are_rendered_every_time():
    tags = Tags(["a"])
    history = _history({"tags": tags}, "ok")
    before = _counts(history)
    tags.extend(["more", "tags", "here"])
    _assert_counted_as_baseline(history)
    assert _counts(history) != before


def test_with_the_cache_disabled_every_container_is_rendered(pristine_cache):
    values = _values()
    history = _history(values["args"], values["result"])
    tokensieve.configure_cache(enabled=False)
    try:
        _counts(history)
        MUTATIONS["nested list grown"](values)
        _assert_counted_as_baseline(history)
    finally:
        tokensieve.configure_cache(enabled=True)


def test_clear_cache_forgets_remembered_containers():
    values = _values()
    history = _history(values["args"], values["result"])
    _counts(history)
    tokensieve.clear_cache()
    MUTATIONS["value replaced"](values)
    _assert_counted_as_baseline(history)


# ---- any JSON-like value, any change ------------------------------------------------------

LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    | st.tuples(inner, inner),
    max_leaves=20,
)


def _containers(value: Any) -> list[Any]:
    """Every mutable container inside `value` (dicts and lists), depth first."""
    found: list[Any] = []
    if isinstance(value, (dict, list)):
        found.append(value)
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else []
    for item in items:
        found.extend(_containers(item))
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=JSON, result=JSON, data=st.data())
def test_any_change_to_any_container_is_counted(args, result, data):
    args, result = copy.deepcopy(args), copy.deepcopy(result)
    history = _history(args, result)
    _counts(history)
    targets = _containers(args) + _containers(result)
    if not targets:
        return
    target = data.draw(st.sampled_from(targets), label="container")
    new = data.draw(LEAVES, label="new value")
    if isinstance(target, dict):
        key = data.draw(st.sampled_from([*target, "new key"]), label="key")
        if data.draw(st.booleans(), label="delete") and key in target:
            del target[key]
        else:
            target[key] = new
    elif target and data.draw(st.booleans(), label="replace"):
        target[data.draw(st.integers(0, len(target) - 1), label="index")] = new
    else:
        target.append(new)
    _assert_counted_as_baseline(history)


# ---- pydantic-ai parts, remembered by identity -------------------------------------------


def test_a_part_whose_attributes_were_reassigned_is_counted_anew():
    values = _values()
    history = _history(values["args"], "short result")
    before = _counts(history)
    _counts(history)
    history[1].parts[0].content = "a much longer result than the one counted before " * 3
    history[0].parts[0].tool_name = "a_longer_tool_name_than_before"
    _assert_counted_as_baseline(history)
    assert _counts(history) != before


def test_a_part_moved_to_another_kind_of_message_is_read_as_it_is_there():
    part = ToolCallPart("search", {"q": "x"}, tool_call_id="c1")
    response = [ModelResponse(parts=[part])]
    _assert_counted_as_baseline(response)
    # The same object in a request: not a tool call there (see docs/compaction.md).
    request = [ModelRequest(parts=[part])]
    _assert_counted_as_baseline(request)


def test_stub_costs_are_counted_when_first_needed():
    history = [
        ModelRequest(parts=[UserPromptPart("the task")]),
        ModelResponse(parts=[ToolCallPart("search", {"q": "weather"}, tool_call_id="c1")]),
        ModelRequest(parts=[UserPromptPart("never mind the result")]),
    ]
    _counts(history)  # remembered without what a stub result would cost
    config = {"dangling_calls": "stub", "compaction_threshold": 1.0, "hard_limit_threshold": 1.0}
    ours = tokensieve.Compactor(**config).compact(history)
    theirs = baseline.compact(history, **config)
    assert (ours.tokens_after, ours.calls_repaired) == (theirs.tokens_after, theirs.calls_repaired)


def test_threads_sharing_and_changing_histories_count_as_the_baseline(pristine_cache):
    """Several threads compact the same long histories (long enough to hand counting to a
    thread) while one keeps changing their parts and another keeps clearing the caches:
    every count is the one the baseline gives for the history as it was."""
    import threading

    from tokensieve import _bench

    histories = [_bench.history(1_200, seed=s) for s in range(2)]
    lock = threading.Lock()  # held while a history is changed, or counted to be checked
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(seed: int) -> None:
        try:
            for i in range(6):
                history = histories[(seed + i) % 2]
                with lock:
                    counts = _counts(history)
                    expected_now = baseline.count_history_tokens(history)
                assert counts == expected_now
                _counts(history)  # and without the lock, racing the others
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def changer() -> None:
        n = 0
        while not stop.is_set():
            with lock:
                part = histories[n % 2][1 + n % 1_000].parts[-1]
                if hasattr(part, "content"):
                    part.content = f"changed {n} " * (n % 7)
                elif isinstance(getattr(part, "args", None), dict):
                    part.args["n"] = n
            n += 1

    def clearer() -> None:
        while not stop.is_set():
            tokensieve.clear_cache()
            stop.wait(0.01)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    helpers = [threading.Thread(target=changer), threading.Thread(target=clearer)]
    for t in threads + helpers:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in helpers:
        t.join()
    assert not errors, errors[0]
