"""Encodings beyond the embedded ones, and which encoding a model counts with.

- :func:`load_encoding` registers an encoding from a user's file: a Hugging Face
  ``tokenizer.json`` of a byte-level BPE model, or a tiktoken rank file (``.tiktoken``,
  Meta's Llama 3 ``tokenizer.model``) plus the name of its pre-tokenizer pattern. The
  loaded encoding is then usable by name everywhere an encoding name is.
- :func:`encoding_for_model` / :func:`encoding_name_for_model` map a model name
  (``"cerebras:llama-3.3-70b"``, ``"gpt-oss-120b"``, ``"qwen-3-32b"``) to its encoding,
  like tiktoken's ``encoding_for_model``, with a documented fallback and a warning for
  models whose tokenizer tokensieve does not have.

Llama 3's vocabulary is not embedded (the Llama 3 Community License puts conditions on
redistribution); ``"llama3"`` loads from the ``llama-models`` package when it is
installed (``pip install llama-models``, its ``tokenizer.model`` checked by hash), or
from any copy of the file with ``load_encoding(path, name="llama3", pattern="llama3")``.
Nothing is ever downloaded.
"""

from __future__ import annotations

import fnmatch
import os
import warnings
from collections.abc import Mapping

from tokensieve import _core
from tokensieve._core import Encoding
from tokensieve.errors import ConfigurationError, EncodingFallbackWarning, InputTypeError, UnknownEncodingError

__all__ = [
    "MODEL_ENCODINGS",
    "encoding_for_model",
    "encoding_name_for_model",
    "list_encodings",
    "load_encoding",
]

#: sha256 of Meta's Llama 3 ``tokenizer.model`` (128,000 ranks; Llama 3, 3.1, 3.2, 3.3).
LLAMA3_SHA256 = "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55"

#: Encodings known by name that are loaded from a file rather than embedded.
_LOADABLE = {"llama3"}

#: Model-name patterns (shell-style, lower case, matched against the name without its
#: ``provider:`` prefix and ``org/`` path) and their encodings, first match wins.
#: OpenAI's follow tiktoken's ``model.py``. ``glm4`` and ``kimi-k2`` are names to load
#: their ``tokenizer.json`` under (no package registry ships them); until then those
#: models fall back to ``o200k_base`` with a warning.
MODEL_ENCODINGS: tuple[tuple[str, str], ...] = (
    ("gpt-oss*", "o200k_harmony"),
    ("llama-3*", "llama3"),
    ("llama3*", "llama3"),
    ("meta-llama-3*", "llama3"),
    ("qwen-3.5*", "qwen3.5"),
    ("qwen3.5*", "qwen3.5"),
    ("qwen-3.6*", "qwen3.5"),
    ("qwen3.6*", "qwen3.5"),
    ("qwen-3*", "qwen3"),
    ("qwen3*", "qwen3"),
    ("qwen-2.5*", "qwen3"),
    ("qwen2.5*", "qwen3"),
    ("qwen2*", "qwen3"),
    ("qwq*", "qwen3"),
    ("glm-4*", "glm4"),
    ("zai-glm-4*", "glm4"),
    ("kimi-k2*", "kimi-k2"),
    ("o1*", "o200k_base"),
    ("o3*", "o200k_base"),
    ("o4*", "o200k_base"),
    ("gpt-5*", "o200k_base"),
    ("gpt-4.5*", "o200k_base"),
    ("gpt-4.1*", "o200k_base"),
    ("gpt-4o*", "o200k_base"),
    ("chatgpt-4o*", "o200k_base"),
    ("ft:gpt-4o*", "o200k_base"),
    ("gpt-4*", "cl100k_base"),
    ("gpt-3.5*", "cl100k_base"),
    ("gpt-35*", "cl100k_base"),
    ("ft:gpt-4*", "cl100k_base"),
    ("ft:gpt-3.5*", "cl100k_base"),
    ("text-embedding-3*", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
    ("davinci-002", "cl100k_base"),
    ("babbage-002", "cl100k_base"),
    # Anthropic publishes no tokenizer: o200k_base approximates it (documented, not exact).
    ("claude*", "o200k_base"),
    # pydantic-ai's TestModel and FunctionModel run no tokenizer: the default, silently.
    ("test", "o200k_base"),
    ("function:*", "o200k_base"),
)

#: What counting falls back to for a model whose encoding is unknown or unavailable.
FALLBACK_ENCODING = "o200k_base"

_HOW_TO_LOAD = {
    "llama3": "pip install llama-models (its tokenizer.model is found and checked), or "
    "tokensieve.load_encoding('path/to/tokenizer.model', name='llama3', pattern='llama3')",
    "glm4": "tokensieve.load_encoding('path/to/tokenizer.json', name='glm4') with the model's own tokenizer.json",
    "kimi-k2": "tokensieve.load_encoding('path/to/tiktoken.model', name='kimi-k2', pattern=<its pat_str regex>, "
    "template='chatml') with the model's own tiktoken.model",
    "qwen3.5": "tokensieve.load_encoding('path/to/tokenizer.json', name='qwen3.5') with Qwen 3.5's tokenizer.json",
}


def list_encodings() -> list[str]:
    """The names of every encoding usable now: the embedded ones, then those loaded.

    Example:
        >>> import tokensieve
        >>> tokensieve.list_encodings()[:4]
        ['o200k_base', 'cl100k_base', 'o200k_harmony', 'qwen3']
    """
    return _core._encoding_names()


def is_known_encoding(name: str) -> bool:
    """Whether ``name`` is an encoding usable now or one tokensieve can load by name."""
    return name in _LOADABLE or name in _core._encoding_names()


def load_encoding(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str,
    pattern: str | None = None,
    template: str | None = None,
    normalization: str | None = None,
    special_tokens: Mapping[str, int] | None = None,
) -> Encoding:
    """Load an encoding from a tokenizer file and register it as ``name``.

    Two kinds of file are read (told apart by their content):

    - a Hugging Face ``tokenizer.json`` of a byte-level BPE model: its vocab and merges,
      its ``Split`` regex (run by a hand-written scanner when it is a known pattern, else
      by a regex engine) and ``ByteLevel`` step, an ``NFC`` normalizer or none, and its
      added tokens (the special tokens);
    - a tiktoken rank file (``base64-token rank`` per line: ``*.tiktoken``, Llama 3's
      ``tokenizer.model``) with ``pattern`` naming its pre-tokenizer: ``"o200k"``,
      ``"cl100k"``, ``"llama3"`` or ``"qwen2"`` (hand-written scanners), or any other
      regular expression, which then runs on a regex engine with tiktoken's semantics
      (slower; text between matches is not counted, as tiktoken does not encode it).

    Afterwards ``name`` works everywhere an encoding name does: ``count_tokens``,
    ``get_encoding``, ``BudgetConfig(encoding=name)``; counts are cached under the new
    encoding, apart from every other. Loading the same name again replaces it for later
    lookups. Special-token text inside content counts as plain text, as with tiktoken's
    ``encode_ordinary``.

    Args:
        source: a path to the file, or its bytes.
        name: the name to register (not one of the embedded encodings' names).
        pattern: for a rank file, the pre-tokenizer pattern's name or regex.
        template: the chat-template family, ``"openai"`` (4 tokens a message),
            ``"harmony"`` (4), ``"llama3"`` (5) or ``"chatml"`` (5); guessed from the name
            and the special tokens when ``None``.
        normalization: for a rank file, ``"nfc"`` to normalize text first (a
            ``tokenizer.json`` says its own).
        special_tokens: for a rank file, its special tokens (text to id); Llama 3's are
            known when ``pattern="llama3"``.

    Returns:
        The registered :class:`Encoding`.

    Raises:
        ConfigurationError: the file is not a tokenizer tokensieve can count exactly (a
            SentencePiece unigram, a WordPiece, another normalizer or pre-tokenizer, a
            malformed file): the message names what was found.
        InputTypeError: ``source`` or ``name`` has the wrong type.

    Example:
        >>> import tokensieve
        >>> ranks = tokensieve.tiktoken_bpe_file("cl100k_base")
        >>> enc = tokensieve.load_encoding(ranks, name="my-cl100k", pattern="cl100k")
        >>> tokensieve.count_tokens("Hello, world!", encoding="my-cl100k")
        4
    """
    if not isinstance(name, str):
        raise InputTypeError(f"name: expected str, got {type(name).__name__}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ConfigurationError(f"cannot read the tokenizer file {os.fspath(source)!r}: {e}") from e
    else:
        raise InputTypeError(f"source: expected a path or bytes, got {type(source).__name__}")
    kind = "tokenizer.json" if data.lstrip()[:1] == b"{" else "tiktoken"
    if kind == "tokenizer.json" and (pattern is not None or normalization is not None or special_tokens is not None):
        raise ConfigurationError(
            "pattern, normalization and special_tokens are for tiktoken rank files: a tokenizer.json says its own"
        )
    specials = None if special_tokens is None else sorted((str(t), int(i)) for t, i in special_tokens.items())
    return _core._load_encoding(data, name, kind, pattern, template, normalization, specials)


def _autoload(name: str) -> Encoding | None:
    """The encoding ``name`` loaded from an installed package's file, or None.

    Called by the core when a name it does not know is asked for; only ``"llama3"`` is
    looked for, in the ``llama-models`` package (found without importing it).
    """
    if name != "llama3":
        return None
    path = _llama_models_file()
    if path is None:
        return None
    import hashlib

    with open(path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != LLAMA3_SHA256:
        return None
    return _core._load_encoding(data, "llama3", "tiktoken", "llama3", "llama3", None, None)


def _llama_models_file() -> str | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec("llama_models")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = os.path.join(root, "llama3", "tokenizer.model")
        if os.path.isfile(path):
            return path
    return None


def encoding_name_for_model(model: str, *, warn: bool = True) -> str:
    """The name of the encoding ``model`` counts with (see :data:`MODEL_ENCODINGS`).

    ``model`` is ``"provider:model-name"``, ``"org/model-name"`` or just the name. A model
    whose encoding is unknown, or known but not available here (Llama 3 without the
    ``llama-models`` package, GLM-4 and Kimi K2 until their ``tokenizer.json`` is loaded),
    gets ``"o200k_base"`` and an :class:`EncodingFallbackWarning` saying so (``warn=False``
    silences it).

    Example:
        >>> import tokensieve
        >>> tokensieve.encoding_name_for_model("cerebras:gpt-oss-120b")
        'o200k_harmony'
        >>> tokensieve.encoding_name_for_model("cerebras:qwen-3-32b")
        'qwen3'
        >>> tokensieve.encoding_name_for_model("openai:gpt-4-turbo")
        'cl100k_base'
    """
    if not isinstance(model, str):
        raise InputTypeError(f"model: expected str, got {type(model).__name__}")
    wanted = _model_encoding(model)
    if wanted is None:
        if warn:
            warnings.warn(
                f"no known encoding for model {model!r}: counting with {FALLBACK_ENCODING} (an approximation)",
                EncodingFallbackWarning,
                stacklevel=2,
            )
        return FALLBACK_ENCODING
    if wanted in _core._encoding_names():
        return wanted
    if wanted in _LOADABLE:
        try:
            _core.get_encoding(wanted)
            return wanted
        except UnknownEncodingError:
            pass
    if warn:
        warnings.warn(
            f"model {model!r} counts with the {wanted!r} encoding, which is not available here: counting with "
            f"{FALLBACK_ENCODING} (an approximation). To count exactly: {_HOW_TO_LOAD.get(wanted, 'load it with tokensieve.load_encoding')}",
            EncodingFallbackWarning,
            stacklevel=2,
        )
    return FALLBACK_ENCODING


def encoding_for_model(model: str) -> Encoding:
    """The :class:`Encoding` ``model`` counts with, as :func:`encoding_name_for_model` picks it.

    Example:
        >>> import tokensieve
        >>> tokensieve.encoding_for_model("gpt-oss-20b").name
        'o200k_harmony'
        >>> tokensieve.encoding_for_model("gpt-oss-20b").message_overhead
        4
    """
    return _core.get_encoding(encoding_name_for_model(model))


def _model_encoding(model: str) -> str | None:
    name = model.strip().lower()
    candidates = [name]
    if ":" in name and not name.startswith("ft:"):
        candidates.append(name.split(":", 1)[1])
    candidates += [c.rsplit("/", 1)[1] for c in list(candidates) if "/" in c]
    for candidate in reversed(candidates):
        for pattern, encoding in MODEL_ENCODINGS:
            if fnmatch.fnmatchcase(candidate, pattern):
                return encoding
    return None
