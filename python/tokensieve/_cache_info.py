""":class:`tokensieve.CacheInfo`, in its own module so that ``import tokensieve`` does not
import ``typing`` (``NamedTuple``) before anything asks for it."""

from __future__ import annotations

from typing import NamedTuple


class CacheInfo(NamedTuple):
    """State of the content cache (see :func:`tokensieve.cache_info`)."""

    hits: int
    misses: int
    size: int
    max_entries: int
    enabled: bool


# Public as ``tokensieve.CacheInfo``: its repr, pickles and docs name it there.
CacheInfo.__module__ = "tokensieve"
