"""The official tiktoken package, built offline from tokensieve's embedded vocabularies.

tokensieve embeds the ``.tiktoken`` files OpenAI publishes. Written to disk and checked
against the published sha256, they let us build ``tiktoken.Encoding`` objects without a
network, so every count can be compared with the reference implementation.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from unittest import mock

import tokensieve

ENCODING_NAMES = ("o200k_base", "cl100k_base")

# The hashes tiktoken_ext.openai_public pins for the published files.
PUBLISHED_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}

# Ordinary (non-special) vocabulary sizes of the published encodings.
PUBLISHED_VOCABULARY_SIZE = {"o200k_base": 199_998, "cl100k_base": 100_256}


def write_bpe_file(name: str, directory: Path) -> tuple[Path, str]:
    """Write tokensieve's embedded vocabulary ``name`` to ``directory``; return path, sha256."""
    data = tokensieve.tiktoken_bpe_file(name)
    path = Path(directory) / f"{name}.tiktoken"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def build_tiktoken_encoding(name: str, directory: Path):
    """``tiktoken.Encoding`` for ``name`` built with no network access.

    The pattern is taken from tiktoken's own constructor in ``tiktoken_ext.openai_public``
    (so it is always the one the installed tiktoken uses), with its downloader replaced
    by a function that hands back the ranks loaded from the local, hash-checked file.
    Special tokens are left out: counting has ``encode_ordinary`` semantics.
    """
    import tiktoken
    import tiktoken.load
    import tiktoken_ext.openai_public as openai_public

    path, sha = write_bpe_file(name, directory)
    if sha != PUBLISHED_SHA256[name]:
        raise AssertionError(f"{name}: embedded vocabulary sha256 {sha} is not the published {PUBLISHED_SHA256[name]}")

    # TIKTOKEN_CACHE_DIR="" keeps tiktoken from copying the file into its cache directory.
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        ranks = tiktoken.load.load_tiktoken_bpe(str(path), expected_hash=sha)
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved

    def offline_loader(blobpath: str, expected_hash: str | None = None):
        if expected_hash != sha:
            raise AssertionError(f"tiktoken asked for {blobpath} with hash {expected_hash}, we hold {sha}")
        return ranks

    with mock.patch.object(openai_public, "load_tiktoken_bpe", offline_loader):
        spec = openai_public.ENCODING_CONSTRUCTORS[name]()

    return tiktoken.Encoding(name=name, pat_str=spec["pat_str"], mergeable_ranks=ranks, special_tokens={})
