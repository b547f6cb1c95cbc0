"""Guards that turn hangs and Rust panics into clear test failures."""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

T = TypeVar("T")


def is_panic(exc: BaseException) -> bool:
    """pyo3's PanicException derives from BaseException, not Exception."""
    return type(exc).__name__ == "PanicException" and not isinstance(exc, Exception)


def call_without_panic(fn: Callable[..., T], *args, **kwargs) -> T:
    """Call ``fn``; a Rust panic fails the test (other exceptions propagate)."""
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - a panic is a BaseException
        if is_panic(exc):
            pytest.fail(f"{getattr(fn, '__name__', fn)} panicked: {exc!r}")
        raise


@contextlib.contextmanager
def raises_cleanly(expected: type[BaseException], *fragments: str) -> Iterator[dict]:
    """Like ``pytest.raises(expected)``, but a Rust panic or any other exception is a
    failure with a clear message, and the message must contain every ``fragment``."""
    info: dict = {}
    try:
        yield info
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if is_panic(exc):
            pytest.fail(f"panicked instead of raising {expected.__name__}: {exc!r}")
        if not isinstance(exc, expected):
            pytest.fail(f"raised {type(exc).__module__}.{type(exc).__name__}({exc}) instead of {expected.__name__}")
        message = str(exc)
        missing = [f for f in fragments if not re.search(re.escape(f), message)]
        assert not missing, f"message {message!r} does not mention {missing}"
        info["exception"] = exc
        return
    pytest.fail(f"did not raise {expected.__name__}")


def finishes_within(seconds: float, fn: Callable[..., T], *args, **kwargs) -> T:
    """Run ``fn`` in a worker thread; fail if it has not returned after ``seconds``.

    A hang guard, not a timing assertion: the bound is generous and only catches
    quadratic or stuck behaviour. (A timed-out worker cannot be killed; it is left to
    finish in the background while the test fails.)
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(call_without_panic, fn, *args, **kwargs)
    try:
        return future.result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"{getattr(fn, '__name__', fn)} did not finish within {seconds} s")
    finally:
        pool.shutdown(wait=False)
