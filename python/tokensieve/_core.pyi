"""Type stubs for the native module ``tokensieve._core`` (written by hand, checked by
``mypy.stubtest`` in the test suite). Import from ``tokensieve``, not from here."""

from collections.abc import Container, Iterable, Sequence
from typing import Any, Final, Literal, TypeAlias, final, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "ENCODINGS",
    "Encoding",
    "MIN_CACHED_BYTES",
    "Narrower",
    "PARALLEL_MIN_BYTES",
    "SummaryEvents",
    "SummaryFacts",
    "__version__",
    "_encoding_names",
    "_history_tokens",
    "_load_encoding",
    "_parallelism_allowed",
    "cache_info",
    "clear_cache",
    "compact_history",
    "configure_cache",
    "count_history_tokens",
    "count_tokens",
    "count_tokens_batch",
    "get_encoding",
    "narrow_text",
    "read_events",
    "tiktoken_bpe_file",
]
__version__: Final[str]
ENCODINGS: Final[list[str]]
PARALLEL_MIN_BYTES: Final[int]
MIN_CACHED_BYTES: Final[int]

@final
class Encoding:
    """A tiktoken encoding loaded for repeated use."""

    @property
    def name(self) -> str: ...
    @property
    def vocabulary_size(self) -> int: ...
    @property
    def family(self) -> Literal["openai", "harmony", "llama3", "chatml"]: ...
    @property
    def message_overhead(self) -> int: ...
    @property
    def response_overhead(self) -> int: ...
    @property
    def reply_priming(self) -> int: ...
    @property
    def special_tokens(self) -> dict[str, int]: ...
    @property
    def normalization(self) -> Literal["nfc"] | None: ...
    def count(self, text: str) -> int: ...
    def count_batch(self, texts: Iterable[str]) -> npt.NDArray[np.int64]: ...
    def __reduce__(self) -> tuple[object, tuple[str]]: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def count_tokens(text: str, encoding: str | Encoding | None = None) -> int: ...
def count_tokens_batch(texts: Iterable[str], encoding: str | Encoding | None = None) -> npt.NDArray[np.int64]: ...
def get_encoding(name: str) -> Encoding: ...
def tiktoken_bpe_file(encoding: str | Encoding) -> bytes: ...
def cache_info() -> tuple[int, int, int, int, bool]: ...
def clear_cache() -> None: ...
def configure_cache(max_entries: int | None = None, enabled: bool | None = None) -> None: ...
def _parallelism_allowed() -> bool: ...
def _load_encoding(
    data: bytes,
    name: str,
    kind: str,
    pattern: str | None = None,
    template: str | None = None,
    normalization: str | None = None,
    specials: Sequence[tuple[str, int]] | None = None,
) -> Encoding: ...
def _encoding_names() -> list[str]: ...
def count_history_tokens(
    messages: Sequence[object], *, encoding: str | Encoding | None = None, format: str | None = None
) -> npt.NDArray[np.int64]: ...
@overload
def _history_tokens(
    messages: Sequence[object],
    *,
    encoding: str | Encoding | None = None,
    format: str | None = None,
    total: Literal[False] = False,
) -> list[int]: ...
@overload
def _history_tokens(
    messages: Sequence[object],
    *,
    encoding: str | Encoding | None = None,
    format: str | None = None,
    total: Literal[True],
) -> int: ...

# The report's dropped indices come as (start, stop) runs and the per-message tokens as the
# bytes of a native int64 array: CompactionResult makes the tuple and the array when read.
def compact_history(
    messages: Sequence[object],
    budget: tuple[int, float, float, int, int | None, int, bool],
    *,
    encoding: str | Encoding | None = None,
    format: str | None = None,
    strategies: tuple[tuple[int, int] | None, tuple[bool, bool, bool, bool] | None] | None = None,
) -> tuple[
    list[Any],
    tuple[
        Literal["none", "compacted"],
        int,
        int,
        int,
        list[tuple[int, int]],
        int,
        int,
        int,
        int,
        bytearray,
        Literal["pydantic-ai", "openai", "responses", "anthropic"],
    ],
    list[tuple[str, int, int]],
]: ...

# The tool output budget (rust/src/narrow). The tuple: (text or None when unchanged, mode,
# kind, tokens_before or None, tokens_after, lines, lines_dropped, bytes, bytes_dropped,
# error_lines, errors_dropped).
_NarrowOutcome = tuple[str | None, str, str, int | None, int, int, int, int, int, int, int]

def narrow_text(
    text: str,
    mode: str,
    max_tokens: int,
    *,
    encoding: str | Encoding | None = None,
    head_ratio: float = 0.4,
    count_all_max_bytes: int = 0,
    note: str | None = None,
) -> _NarrowOutcome: ...
@final
class Narrower:
    def __new__(
        cls,
        mode: str,
        max_tokens: int,
        *,
        encoding: str | Encoding | None = None,
        head_ratio: float = 0.4,
        count_all_max_bytes: int = 0,
        note: str | None = None,
    ) -> Narrower: ...
    def feed(self, chunk: str) -> None: ...
    def finish(self, note: str | None = None) -> _NarrowOutcome: ...

# ---- The extractive summary (rust/src/python/events.rs) --------------------------------------

_EventTuple: TypeAlias = tuple[str, str, str, str, bool, str]

def read_events(messages: Sequence[Any], *, format: str | None = None, proven: bool = False) -> SummaryEvents: ...

@final
class SummaryEvents:
    @property
    def format(self) -> str: ...
    def __len__(self) -> int: ...
    def digest(self, base: int, n: int) -> int: ...
    def longest_known(self, base: int, known: Container[int]) -> int: ...
    def fold(self, facts: SummaryFacts | None = None, start: int = 0) -> SummaryFacts: ...
    def transcript(self, max_chars: int = 2000, start: int = 0) -> str: ...
    def events(self, index: int) -> list[_EventTuple]: ...

@final
class SummaryFacts:
    def __new__(cls) -> SummaryFacts: ...
    @property
    def messages(self) -> int: ...
    @property
    def digest(self) -> int: ...
    @property
    def task(self) -> str | None: ...
    @property
    def files(self) -> list[tuple[str, str, str | None]]: ...
    @property
    def paths(self) -> list[str]: ...
    @property
    def follow_ups(self) -> list[str]: ...
    @property
    def decisions(self) -> list[str]: ...
    @property
    def commands(self) -> list[tuple[str, str, int]]: ...
    @property
    def open_errors(self) -> list[tuple[str, str]]: ...
    def render(self, max_tokens: int | None = None, encoding: str | Encoding | None = None) -> tuple[str, int, int]: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> SummaryFacts: ...
    def __reduce__(self) -> tuple[object, tuple[bytes]]: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
