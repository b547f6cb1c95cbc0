"""Loading encodings from files, model-name mapping, and each family's template overhead.

Exactness against the oracles is ``test_encodings_exact.py``; this file checks the
behaviour around it: what ``load_encoding`` accepts and refuses (with messages naming
what it found), that a loaded encoding works wherever an encoding name does and is
cached apart, what ``encoding_for_model`` / ``BudgetConfig.for_model`` pick, and that
counting and compaction charge each family's own per-message overhead.
"""

from __future__ import annotations

import json
import sys
import warnings

import pytest

import tokensieve
from tests.support import vocab_files
from tokensieve import BudgetConfig, ConfigurationError, EncodingFallbackWarning, InputTypeError, UnknownEncodingError

TEXT = "The quick brown fox, 12345 times: naïve café — 東京 and ünïcödé. " * 40


def byte_level_tokenizer_json(model: dict | None = None, **top) -> bytes:
    """A minimal byte-level BPE tokenizer.json (256 byte tokens, one merge)."""
    table = vocab_files._byte_level_table()
    vocab = {table[b]: b for b in range(256)}
    vocab["ab"] = 256
    data = {
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "model": model or {"type": "BPE", "vocab": vocab, "merges": ["a b"]},
        "added_tokens": [],
    }
    data.update(top)
    return json.dumps(data).encode()


def test_llama3_without_its_file_is_an_error_saying_how_to_get_it(monkeypatch):
    from tokensieve import encodings

    # First in this file: later tests load llama3, and a loaded encoding stays.
    if "llama3" in tokensieve.list_encodings():
        pytest.skip("llama3 was loaded earlier in this session")
    monkeypatch.setattr(encodings, "_llama_models_file", lambda: None)
    with pytest.raises(UnknownEncodingError, match="pip install llama-models"):
        tokensieve.count_tokens("x", encoding="llama3")


def test_a_loaded_tiktoken_file_counts_like_the_encoding_it_came_from():
    ranks = tokensieve.tiktoken_bpe_file("cl100k_base")
    enc = tokensieve.load_encoding(ranks, name="test-cl100k-copy", pattern="cl100k")
    assert enc.name == "test-cl100k-copy"
    assert enc.family == "openai" and enc.message_overhead == 4
    assert enc.count(TEXT) == tokensieve.count_tokens(TEXT, encoding="cl100k_base")
    assert tokensieve.count_tokens(TEXT, encoding="test-cl100k-copy") == enc.count(TEXT)
    assert "test-cl100k-copy" in tokensieve.list_encodings()


def test_a_loaded_encoding_is_read_from_a_path_too(tmp_path):
    path = tmp_path / "ranks.tiktoken"
    path.write_bytes(tokensieve.tiktoken_bpe_file("o200k_base"))
    enc = tokensieve.load_encoding(path, name="test-o200k-from-path", pattern="o200k")
    assert enc.count(TEXT) == tokensieve.count_tokens(TEXT)
    assert tokensieve.load_encoding(str(path), name="test-o200k-from-str", pattern="o200k").count("hi") == 1


def test_loaded_encodings_are_cached_apart_from_every_other(pristine_cache):
    # The same text, counted first with o200k_base, then with cl100k's ranks split by o200k's
    # pattern: a cache keyed by text alone would hand back the o200k count.
    text = "キャッシュのキーには符号化も含まれる。東京の天気は晴れです。" * 50
    o200k = tokensieve.count_tokens(text)
    mixed = tokensieve.load_encoding(tokensieve.tiktoken_bpe_file("cl100k_base"), name="test-cl100k-o200k-split", pattern="o200k")
    assert mixed.count(text) != o200k
    assert tokensieve.count_tokens(text) == o200k
    assert tokensieve.count_tokens(text, encoding="test-cl100k-o200k-split") == mixed.count(text)


def test_loading_a_name_again_replaces_it_for_later_lookups():
    first = tokensieve.load_encoding(tokensieve.tiktoken_bpe_file("cl100k_base"), name="test-replaced", pattern="cl100k")
    second = tokensieve.load_encoding(tokensieve.tiktoken_bpe_file("o200k_base"), name="test-replaced", pattern="o200k")
    assert tokensieve.get_encoding("test-replaced") == second
    assert first != second
    assert first.count(TEXT) == tokensieve.count_tokens(TEXT, encoding="cl100k_base")  # still usable


def test_a_loaded_encoding_works_in_budget_config_and_compaction():
    tokensieve.load_encoding(tokensieve.tiktoken_bpe_file("cl100k_base"), name="test-budget", pattern="cl100k", template="chatml")
    config = BudgetConfig(encoding="test-budget", max_input_tokens=2_000, target_input_tokens=300, max_exchanges=1)
    history = [{"role": "system", "content": "be brief"}]
    for i in range(6):
        history += [{"role": "user", "content": f"question {i} " + TEXT[:400]}, {"role": "assistant", "content": "answer " * 30}]
    result = tokensieve.Compactor(config).compact(history)
    assert result.action == "compacted"
    assert result.tokens_before == int(tokensieve.count_history_tokens(history, encoding="test-budget").sum())


def test_the_embedded_names_cannot_be_taken_by_a_loaded_file():
    with pytest.raises(ConfigurationError, match="o200k_base"):
        tokensieve.load_encoding(tokensieve.tiktoken_bpe_file("cl100k_base"), name="o200k_base", pattern="cl100k")


def test_a_rank_file_needs_a_pattern_and_names_the_known_ones():
    with pytest.raises(ConfigurationError, match="llama3"):
        tokensieve.load_encoding(tokensieve.tiktoken_bpe_file("cl100k_base"), name="test-no-pattern")


def test_a_rank_file_with_its_own_regex_runs_on_the_regex_engine():
    # cl100k's own regex, given as a regex rather than a name, counts the same.
    import tiktoken_ext.openai_public as openai_public
    from unittest import mock

    with mock.patch.object(openai_public, "load_tiktoken_bpe", lambda *a, **k: {}):
        pattern = openai_public.cl100k_base()["pat_str"]
    enc = tokensieve.load_encoding(tokensieve.tiktoken_bpe_file("cl100k_base"), name="test-cl100k-regex", pattern=pattern + "|")
    assert enc.count(TEXT) == tokensieve.count_tokens(TEXT, encoding="cl100k_base")


@pytest.mark.parametrize(
    ("model", "found"),
    [
        ({"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 0}, "Unigram"),
        ({"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "[UNK]"}, "WordPiece"),
        ({"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "[UNK]"}, "WordLevel"),
        ({"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": True}, "byte_fallback"),
    ],
)
def test_unsupported_tokenizer_models_are_configuration_errors_naming_them(model, found):
    with pytest.raises(ConfigurationError, match=found):
        tokensieve.load_encoding(byte_level_tokenizer_json(model), name="test-unsupported")


def test_unsupported_normalizers_and_pre_tokenizers_are_named():
    with pytest.raises(ConfigurationError, match="NFKC"):
        tokensieve.load_encoding(byte_level_tokenizer_json(normalizer={"type": "NFKC"}), name="test-nfkc")
    with pytest.raises(ConfigurationError, match="Metaspace"):
        tokensieve.load_encoding(byte_level_tokenizer_json(pre_tokenizer={"type": "Metaspace"}), name="test-metaspace")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        tokensieve.load_encoding(b"{ not json", name="test-broken")
    with pytest.raises(ConfigurationError, match="cannot read"):
        tokensieve.load_encoding("/nonexistent/tokenizer.json", name="test-missing")
    with pytest.raises(InputTypeError):
        tokensieve.load_encoding(12, name="test-type")  # type: ignore[arg-type]


def test_a_gpt2_style_byte_level_tokenizer_json_loads_with_the_byte_level_regex():
    enc = tokensieve.load_encoding(byte_level_tokenizer_json(), name="test-gpt2-style")
    assert enc.vocabulary_size == 257
    # GPT-2's split: "ab" and " ab"; the only merge makes "ab", so " ab" is " " + "ab".
    assert enc.count("ab ab") == 3


def test_an_unknown_encoding_name_names_load_encoding():
    with pytest.raises(UnknownEncodingError, match="load_encoding"):
        tokensieve.count_tokens("x", encoding="no-such-encoding")
    with pytest.raises(ConfigurationError, match="no-such-encoding"):
        BudgetConfig(encoding="no-such-encoding")


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("cerebras:gpt-oss-120b", "o200k_harmony"),
        ("gpt-oss-20b", "o200k_harmony"),
        ("openai/gpt-oss-120b", "o200k_harmony"),
        ("cerebras:qwen-3-32b", "qwen3"),
        ("cerebras:qwen-3-235b-a22b-instruct-2507", "qwen3"),
        ("cerebras:qwen-3-coder-480b", "qwen3"),
        ("groq:qwen/qwen3-32b", "qwen3"),
        ("Qwen/Qwen2.5-Coder-32B-Instruct", "qwen3"),
        ("openai:gpt-4o", "o200k_base"),
        ("openai:gpt-4.1-mini", "o200k_base"),
        ("openai:o3-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("openai:gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("anthropic:claude-sonnet-4-5", "o200k_base"),
    ],
)
def test_models_map_to_their_published_encodings_without_a_warning(model, encoding):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tokensieve.encoding_name_for_model(model) == encoding
        assert tokensieve.encoding_for_model(model).name == encoding
        assert BudgetConfig.for_model(model).encoding == encoding


@pytest.mark.parametrize("model", ["cerebras:zai-glm-4.7", "glm-4.6", "kimi-k2-instruct", "moonshotai/Kimi-K2.5", "cerebras:llama-4-scout-17b-16e-instruct", "mystery-model-7b"])
def test_models_without_an_available_tokenizer_fall_back_to_o200k_with_a_warning(model):
    with pytest.warns(EncodingFallbackWarning, match="o200k_base"):
        assert tokensieve.encoding_name_for_model(model) == "o200k_base"
    with pytest.warns(EncodingFallbackWarning):
        assert BudgetConfig.for_model(model).encoding == BudgetConfig.for_model(model, encoding="o200k_base").encoding
    assert tokensieve.encoding_name_for_model(model, warn=False) == "o200k_base"


def test_an_explicit_encoding_override_wins_over_the_model_mapping():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert BudgetConfig.for_model("cerebras:qwen-3-32b", encoding="cl100k_base").encoding == "cl100k_base"


def test_a_loaded_glm4_tokenizer_json_is_picked_for_glm_models():
    tokensieve.load_encoding(byte_level_tokenizer_json(), name="glm4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tokensieve.encoding_name_for_model("cerebras:zai-glm-4.7") == "glm4"
        assert BudgetConfig.for_model("cerebras:zai-glm-4.7").encoding == "glm4"


def test_llama3_loads_from_an_installed_llama_models_package(tmp_path, monkeypatch):
    # A stand-in for `pip install llama-models`: its tokenizer.model where the package has it.
    package = tmp_path / "llama_models" / "llama3"
    package.mkdir(parents=True)
    (tmp_path / "llama_models" / "__init__.py").write_text("")
    (package / "tokenizer.model").write_bytes(vocab_files.llama3_file())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "llama_models", raising=False)
    enc = tokensieve.get_encoding("llama3")
    assert enc.family == "llama3" and enc.vocabulary_size == 128_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert BudgetConfig.for_model("cerebras:llama-3.3-70b").encoding == "llama3"
        assert tokensieve.encoding_name_for_model("cerebras:llama3.1-8b") == "llama3"
    assert "llama_models" not in sys.modules  # found, not imported


def test_a_llama_models_file_with_another_hash_is_not_taken(tmp_path, monkeypatch):
    from tokensieve import encodings

    package = tmp_path / "llama_models" / "llama3"
    package.mkdir(parents=True)
    (package / "tokenizer.model").write_bytes(tokensieve.tiktoken_bpe_file("cl100k_base"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert encodings._autoload("llama3") is None


@pytest.mark.parametrize(
    ("encoding", "overhead", "response_overhead"),
    [("o200k_base", 4, 4), ("cl100k_base", 4, 4), ("o200k_harmony", 4, 6), ("qwen3", 5, 5)],
)
def test_each_message_costs_its_familys_template_overhead(encoding, overhead, response_overhead):
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Sum 12345 and 678."},
        {"role": "assistant", "content": "13023"},
    ]
    per_message = tokensieve.count_history_tokens(history, encoding=encoding).tolist()
    content = [tokensieve.count_tokens(m["content"], encoding=encoding) for m in history]
    assert per_message == [content[0] + overhead, content[1] + overhead, content[2] + response_overhead]
    enc = tokensieve.get_encoding(encoding)
    assert (enc.message_overhead, enc.response_overhead) == (overhead, response_overhead)


def test_compaction_charges_the_familys_overhead_per_kept_message():
    history = [{"role": "system", "content": "sys"}]
    for i in range(8):
        history += [{"role": "user", "content": f"q{i} " + "words " * 450}, {"role": "assistant", "content": "ok " * 50}]
    for encoding, overhead, response_overhead in (("o200k_base", 4, 4), ("qwen3", 5, 5), ("o200k_harmony", 4, 6)):
        config = BudgetConfig(encoding=encoding, max_input_tokens=10_000, target_input_tokens=1_000, max_exchanges=2)
        result = tokensieve.Compactor(config).compact(history)
        kept = result.messages
        assert result.action == "compacted" and len(kept) < len(history)
        content = sum(tokensieve.count_tokens(m["content"], encoding=encoding) for m in kept)
        framing = sum(response_overhead if m["role"] == "assistant" else overhead for m in kept)
        assert result.tokens_after == content + framing
