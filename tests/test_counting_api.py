"""The public counting API: argument handling, errors, return types, the Encoding
object, parallel batches, threads and fork safety."""

from __future__ import annotations

import os
import pickle
import random
import signal
import threading
import time

import numpy as np
import pytest

import tokensieve
from tokensieve import _core
from tests.support.guards import call_without_panic, finishes_within, raises_cleanly
from tests.support.reference import ENCODING_NAMES, PUBLISHED_VOCABULARY_SIZE

# -------------------------------------------------------------------- input errors


@pytest.mark.parametrize(("value", "type_name"), [(None, "NoneType"), (3, "int"), (b"x", "bytes"), (["x"], "list")])
def test_counting_a_non_string_raises_input_type_error_naming_argument_and_type(value, type_name):
    with raises_cleanly(tokensieve.InputTypeError, "text", type_name) as info:
        tokensieve.count_tokens(value)
    assert isinstance(info["exception"], TypeError)
    assert isinstance(info["exception"], tokensieve.TokensieveError)


def test_encoding_count_of_a_non_string_raises_input_type_error():
    with raises_cleanly(tokensieve.InputTypeError, "text", "NoneType"):
        tokensieve.get_encoding("o200k_base").count(None)


@pytest.mark.parametrize("name", ["gpt2", "O200K_BASE", "o200k_base ", "", "r50k_base"])
def test_unknown_encoding_name_raises_unknown_encoding_error_listing_the_offered_ones(name):
    with raises_cleanly(tokensieve.UnknownEncodingError, repr(name)[1:-1], "o200k_base", "cl100k_base") as info:
        tokensieve.count_tokens("x", encoding=name)
    assert isinstance(info["exception"], ValueError)


def test_get_encoding_of_an_unknown_name_raises_unknown_encoding_error():
    with raises_cleanly(tokensieve.UnknownEncodingError, "nope", "o200k_base", "cl100k_base") as info:
        tokensieve.get_encoding("nope")
    assert isinstance(info["exception"], ValueError)


@pytest.mark.parametrize(("value", "type_name"), [(5, "int"), (b"o200k_base", "bytes"), (1.5, "float")])
def test_an_encoding_argument_that_is_neither_name_nor_encoding_raises_input_type_error(value, type_name):
    with raises_cleanly(tokensieve.InputTypeError, "encoding", type_name):
        tokensieve.count_tokens("x", encoding=value)
    with raises_cleanly(tokensieve.InputTypeError, "encoding", type_name):
        tokensieve.count_tokens_batch(["x"], encoding=value)
    with raises_cleanly(tokensieve.InputTypeError, type_name):
        tokensieve.get_encoding(value)


def test_encoding_none_means_the_default_o200k_base():
    text = "今日は良い天気ですね。Ça va? 🤖🤖"
    o200k = tokensieve.count_tokens(text, encoding="o200k_base")
    assert o200k != tokensieve.count_tokens(text, encoding="cl100k_base"), "the text must tell the encodings apart"
    assert tokensieve.count_tokens(text, encoding=None) == o200k
    assert tokensieve.count_tokens(text) == o200k
    assert tokensieve.count_tokens_batch([text], encoding=None).tolist() == [o200k]


def test_a_non_string_item_in_a_batch_raises_input_type_error_naming_its_index():
    with raises_cleanly(tokensieve.InputTypeError, "texts[1]", "NoneType"):
        tokensieve.count_tokens_batch(["a", None])
    with raises_cleanly(tokensieve.InputTypeError, "texts[2]", "bytes"):
        tokensieve.count_tokens_batch(("a", "b", b"c"))


def test_a_string_passed_as_a_batch_raises_input_type_error_asking_for_a_list():
    # A str is iterable; counting its characters one by one would be a silent bug.
    with raises_cleanly(tokensieve.InputTypeError, "texts", "list of str"):
        tokensieve.count_tokens_batch("abc")
    with raises_cleanly(tokensieve.InputTypeError, "texts"):
        tokensieve.get_encoding("cl100k_base").count_batch("abc")


def test_the_message_for_a_string_passed_as_a_batch_does_not_contradict_itself():
    with raises_cleanly(tokensieve.InputTypeError) as info:
        tokensieve.count_tokens_batch("abc")
    assert "expected str, got str" not in str(info["exception"])


@pytest.mark.parametrize(("value", "type_name"), [(5, "int"), (None, "NoneType"), (3.5, "float")])
def test_a_non_iterable_batch_raises_input_type_error(value, type_name):
    with raises_cleanly(tokensieve.InputTypeError, "texts", type_name):
        tokensieve.count_tokens_batch(value)


def test_an_exception_raised_by_a_batch_generator_propagates_unchanged():
    def texts():
        yield "fine"
        raise LookupError("from the generator")

    with raises_cleanly(LookupError, "from the generator"):
        tokensieve.count_tokens_batch(texts())


def test_a_negative_cache_size_raises_configuration_error_and_changes_nothing(pristine_cache):
    tokensieve.configure_cache(max_entries=1234)
    with raises_cleanly(tokensieve.ConfigurationError, "max_entries", "-1") as info:
        tokensieve.configure_cache(max_entries=-1)
    assert isinstance(info["exception"], ValueError)
    assert tokensieve.cache_info().max_entries == 1234
    assert tokensieve.cache_info().enabled is True


@pytest.mark.parametrize("kwargs", [{"max_entries": "10"}, {"max_entries": 1.5}, {"enabled": "yes"}, {"enabled": 1}])
def test_cache_settings_of_the_wrong_type_raise_type_error(kwargs, pristine_cache):
    with raises_cleanly(TypeError):
        tokensieve.configure_cache(**kwargs)
    info = tokensieve.cache_info()
    assert (info.max_entries, info.enabled) == (100_000, True)


# A sweep over odd arguments: whatever happens, it is an ordinary exception or a result,
# never a pyo3 PanicException (a BaseException that `except Exception` would not catch).
ODD_VALUES = [None, 0, -1, 2**70, 1.5, float("nan"), "", "x", "\ud800", "o200k_base\x00", b"", [], [None], (),
              {"a": 1}, object(), True, iter(["a"]), np.array(["a", "b"])]


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: type(v).__name__ + ":" + repr(v)[:20])
def test_no_public_function_panics_on_odd_arguments(value, pristine_cache):
    encoding = tokensieve.get_encoding("cl100k_base")
    calls = [
        (tokensieve.count_tokens, (value,), {}),
        (tokensieve.count_tokens, ("x",), {"encoding": value}),
        (tokensieve.count_tokens_batch, (value,), {}),
        (tokensieve.count_tokens_batch, (["x"],), {"encoding": value}),
        (tokensieve.get_encoding, (value,), {}),
        (tokensieve.tiktoken_bpe_file, (value,), {}),
        (tokensieve.configure_cache, (), {"max_entries": value}),
        (tokensieve.configure_cache, (), {"enabled": value}),
        (encoding.count, (value,), {}),
        (encoding.count_batch, (value,), {}),
    ]
    for fn, args, kwargs in calls:
        try:
            call_without_panic(fn, *args, **kwargs)
        except Exception:
            pass
        tokensieve.configure_cache(max_entries=100_000, enabled=True)


# ------------------------------------------------------------------- return values


def test_count_tokens_returns_a_plain_int():
    n = tokensieve.count_tokens("Hello, world!")
    assert type(n) is int and n == 4


@pytest.mark.parametrize(
    "make",
    [list, tuple, lambda texts: (t for t in texts), lambda texts: np.array(texts), lambda texts: dict.fromkeys(texts)],
    ids=["list", "tuple", "generator", "numpy-str-array", "dict-keys"],
)
def test_count_tokens_batch_returns_a_one_dimensional_int64_array_of_the_right_length(make):
    texts = ["Hello, world!", "", "How are you?", "x" * 5000]
    counts = tokensieve.count_tokens_batch(make(texts))
    assert isinstance(counts, np.ndarray)
    assert counts.dtype == np.int64 and counts.ndim == 1
    assert counts.tolist() == [tokensieve.count_tokens(t) for t in texts]


@pytest.mark.parametrize("make", [list, tuple, lambda _: iter(())], ids=["list", "tuple", "iterator"])
def test_an_empty_batch_is_an_empty_int64_array(make):
    counts = tokensieve.count_tokens_batch(make([]))
    assert isinstance(counts, np.ndarray)
    assert counts.dtype == np.int64 and counts.shape == (0,)


def test_string_subclasses_count_like_their_value():
    class Message(str):
        pass

    text = "it's a subclass of str"
    assert tokensieve.count_tokens(Message(text)) == tokensieve.count_tokens(text)
    assert tokensieve.count_tokens(np.str_(text)) == tokensieve.count_tokens(text)
    assert tokensieve.count_tokens_batch([Message(text)]).tolist() == [tokensieve.count_tokens(text)]


SPECIAL_TOKEN_TEXTS = ["<|endoftext|>", "<|endofprompt|>", "<|fim_prefix|>x<|fim_suffix|>", "a<|endoftext|>b",
                       "<|im_start|>user\nhi<|im_end|>", "<|startoftext|>", "<|endoftext|>" * 3]


@pytest.mark.parametrize("text", SPECIAL_TOKEN_TEXTS)
def test_special_token_text_never_raises_and_counts_as_ordinary_text(text, encoding_name, tiktoken_enc):
    expected = len(tiktoken_enc.encode_ordinary(text))
    assert call_without_panic(tokensieve.count_tokens, text, encoding=encoding_name) == expected
    assert tokensieve.count_tokens_batch([text], encoding=encoding_name).tolist() == [expected]
    assert tokensieve.get_encoding(encoding_name).count(text) == expected
    if text == "<|endoftext|>":
        assert expected > 1, "ordinary text, not the single special token"


# ------------------------------------------------------------------------ Encoding


def test_encoding_exposes_name_and_published_vocabulary_size(encoding_name, tiktoken_enc):
    enc = tokensieve.get_encoding(encoding_name)
    assert isinstance(enc, tokensieve.Encoding)
    assert enc.name == encoding_name
    assert enc.vocabulary_size == PUBLISHED_VOCABULARY_SIZE[encoding_name] == tiktoken_enc.n_vocab


def test_encoding_repr_names_the_encoding(encoding_name):
    text = repr(tokensieve.get_encoding(encoding_name))
    assert text.startswith("<Encoding") and encoding_name in text


def test_the_embedded_encodings_are_openais_two_harmony_and_qwen3():
    assert list(tokensieve.ENCODINGS) == ["o200k_base", "cl100k_base", "o200k_harmony", "qwen3"]
    for name in tokensieve.ENCODINGS:
        assert tokensieve.get_encoding(name).name == name


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_an_encoding_survives_a_pickle_round_trip_and_counts_the_same(protocol, encoding_name, corpus_texts):
    enc = tokensieve.get_encoding(encoding_name)
    loaded = pickle.loads(pickle.dumps(enc, protocol=protocol))
    assert type(loaded) is tokensieve.Encoding
    assert loaded.name == enc.name and loaded.vocabulary_size == enc.vocabulary_size
    sample = corpus_texts[:20]
    assert loaded.count_batch(sample).tolist() == enc.count_batch(sample).tolist()


def test_an_encoding_object_can_be_passed_wherever_a_name_can(encoding_name, corpus_texts):
    enc = tokensieve.get_encoding(encoding_name)
    sample = corpus_texts[:10]
    by_name = tokensieve.count_tokens_batch(sample, encoding=encoding_name).tolist()
    assert tokensieve.count_tokens_batch(sample, encoding=enc).tolist() == by_name
    assert [tokensieve.count_tokens(t, encoding=enc) for t in sample] == by_name
    assert [enc.count(t) for t in sample] == by_name
    assert tokensieve.tiktoken_bpe_file(enc) == tokensieve.tiktoken_bpe_file(encoding_name)
    assert tokensieve.get_encoding(encoding_name).name == enc.name


# ------------------------------------------------------------------------ parallelism


def test_a_parallel_batch_counts_exactly_what_a_serial_batch_counts(
    corpus_texts, reference_counts, encoding_name, monkeypatch, cache_disabled
):
    assert sum(len(t.encode()) for t in corpus_texts) > _core.PARALLEL_MIN_BYTES
    monkeypatch.delenv("TOKENSIEVE_PARALLELISM", raising=False)
    assert _core._parallelism_allowed()
    parallel = tokensieve.count_tokens_batch(corpus_texts, encoding=encoding_name).tolist()
    monkeypatch.setenv("TOKENSIEVE_PARALLELISM", "0")
    assert not _core._parallelism_allowed()
    serial = tokensieve.count_tokens_batch(corpus_texts, encoding=encoding_name).tolist()
    assert parallel == serial == reference_counts[encoding_name]


def test_one_long_text_counted_across_threads_counts_what_one_thread_counts(
    corpus_texts, encoding_name, tiktoken_enc, monkeypatch, cache_disabled
):
    # Over 64 KiB, one text is cut where every scanner ends a piece (a newline or a
    # space before a letter) and the chunks are counted on all cores.
    text = "".join(corpus_texts[:60])
    assert len(text.encode()) > 4 * 64 * 1024
    expected = len(tiktoken_enc.encode_ordinary(text))
    monkeypatch.delenv("TOKENSIEVE_PARALLELISM", raising=False)
    parallel = tokensieve.count_tokens(text, encoding=encoding_name)
    monkeypatch.setenv("TOKENSIEVE_PARALLELISM", "0")
    serial = tokensieve.count_tokens(text, encoding=encoding_name)
    assert parallel == serial == expected


@pytest.mark.parametrize(("value", "allowed"), [("0", False), ("false", False), ("off", False), ("no", False),
                                                (" OFF ", False), ("False", False), ("1", True), ("true", True)])
def test_the_parallelism_environment_variable_switches_parallel_batches(value, allowed, monkeypatch):
    monkeypatch.setenv("TOKENSIEVE_PARALLELISM", value)
    assert _core._parallelism_allowed() is allowed
    monkeypatch.delenv("TOKENSIEVE_PARALLELISM")
    assert _core._parallelism_allowed() is True


def _thread_workload(corpus_texts: list[str]) -> list[str]:
    rng = random.Random(3)
    texts = ["", "hi", "Hello, world!", "x" * 63, "x" * 64, "<|endoftext|>"]
    for chunk in corpus_texts[:40]:
        texts.append(chunk[: rng.choice((30, 200, 3000, 5000))])
        texts.append(chunk)
    return texts


def test_eight_threads_counting_shared_texts_get_consistent_results(corpus_texts, tiktoken_encodings, pristine_cache):
    texts = _thread_workload(corpus_texts)
    expected = {name: [len(tokens) for tokens in tiktoken_encodings[name].encode_ordinary_batch(texts)]
                for name in ENCODING_NAMES}
    failures: list[str] = []
    barrier = threading.Barrier(9)
    stop = threading.Event()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        try:
            for round_ in range(6):
                name = ENCODING_NAMES[(seed + round_) % 2]
                order = list(range(len(texts)))
                rng.shuffle(order)
                for i in order:
                    got = tokensieve.count_tokens(texts[i], encoding=name)
                    if got != expected[name][i]:
                        failures.append(f"thread {seed}: count_tokens({i}, {name}) = {got}, want {expected[name][i]}")
                batch = tokensieve.count_tokens_batch(texts, encoding=name).tolist()  # parallel path
                if batch != expected[name]:
                    failures.append(f"thread {seed}: count_tokens_batch differs ({name})")
        except BaseException as exc:  # noqa: BLE001 - a panic must be reported too
            failures.append(f"thread {seed} raised {exc!r}")

    def churn() -> None:
        # Clears and inspects the cache while the workers read and fill it.
        barrier.wait()
        while not stop.is_set():
            tokensieve.clear_cache()
            tokensieve.cache_info()
            time.sleep(0.002)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    churner = threading.Thread(target=churn)
    for t in [*threads, churner]:
        t.start()
    deadline = time.monotonic() + 120
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stop.set()
    churner.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "threads did not finish in 120 s"
    assert not failures, "\n".join(failures[:10])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_a_forked_child_counts_a_large_batch_without_hanging(corpus_texts, reference_counts, monkeypatch, pristine_cache):
    monkeypatch.delenv("TOKENSIEVE_PARALLELISM", raising=False)
    texts = corpus_texts[:120]
    assert sum(len(t.encode()) for t in texts) > 2 * _core.PARALLEL_MIN_BYTES
    expected = reference_counts["o200k_base"][:120]
    # The parent uses the parallel pool first, so its worker threads exist at fork time.
    assert tokensieve.count_tokens_batch(corpus_texts[120:], encoding="o200k_base").tolist() == reference_counts[
        "o200k_base"
    ][120:]
    tokensieve.clear_cache()  # the child must really count, not read inherited entries

    pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            if _core._parallelism_allowed():
                code = 2
            else:
                counts = tokensieve.count_tokens_batch(texts, encoding="o200k_base").tolist()
                code = 0 if counts == expected else 1
        finally:
            os._exit(code)

    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung counting a batch")
        time.sleep(0.05)
    assert os.WIFEXITED(status), f"child died: status {status}"
    assert os.WEXITSTATUS(status) == 0, {1: "wrong counts", 2: "parallelism still allowed", 3: "raised"}.get(
        os.WEXITSTATUS(status)
    )
    # And the parent still counts in parallel afterwards.
    assert _core._parallelism_allowed()
    assert finishes_within(30, tokensieve.count_tokens_batch, texts, encoding="o200k_base").tolist() == expected
