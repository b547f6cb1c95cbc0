"""The package as installed: a light import, stubs that match the binary, doctests
that pass, and a coherent public surface."""

from __future__ import annotations

import doctest
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tokensieve
from tokensieve import _core

HEAVY_MODULES = ("numpy", "tiktoken", "pydantic_ai", "openai", "anthropic", "logfire")


def run_python(code: str, *args: str, cwd=None, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def _importers(importtime_trace: str, modules: tuple[str, ...]) -> dict[str, str]:
    """From a ``-X importtime`` trace, which module's import pulled in each of ``modules``.

    The trace lists a module after everything it imported, indented one level less.
    """
    rows = []
    for line in importtime_trace.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1]
            rows.append((len(name) - len(name.lstrip()), name.strip()))
    found = {}
    for i, (depth, name) in enumerate(rows):
        if name in modules:
            found[name] = next((n for d, n in rows[i + 1 :] if d < depth), "<top level>")
    return found


def test_importing_tokensieve_is_fast_and_pulls_in_no_heavy_modules():
    code = (
        "import json, sys, time\n"
        "t = time.perf_counter()\n"
        "import tokensieve\n"
        "elapsed = time.perf_counter() - t\n"
        f"print(json.dumps({{'elapsed': elapsed, 'loaded': [m for m in {HEAVY_MODULES!r} if m in sys.modules]}}))\n"
    )
    result = run_python(code, "-I", "-X", "importtime")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    importers = _importers(result.stderr, HEAVY_MODULES)
    assert report["loaded"] == [], f"import tokensieve imported {report['loaded']} (imported by: {importers})"
    # Generous: -X importtime itself slows imports down a little.
    assert report["elapsed"] < 0.5, f"import tokensieve took {report['elapsed']:.3f} s"


def test_the_type_stubs_and_annotations_agree_with_the_runtime_package(tmp_path):
    """stubtest over the whole package (the compiled module's stubs and every Python
    module's annotations), with an allowlist of its genuine false positives."""
    env = {**os.environ, "MYPY_CACHE_DIR": str(tmp_path / ".mypy_cache")}
    allowlist = Path(__file__).with_name("stubtest_allowlist.txt")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "tokensieve", "--allowlist", str(allowlist)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _doctests_of(obj, name: str) -> list[doctest.DocTest]:
    tests = doctest.DocTestFinder(exclude_empty=True).find(obj, name, globs={})
    return [t for t in tests if t.examples]


DOCUMENTED = {
    "tokensieve (module docstring and cache_info)": (tokensieve, "tokensieve"),
    "count_tokens": (_core.count_tokens, "count_tokens"),
    "count_tokens_batch": (_core.count_tokens_batch, "count_tokens_batch"),
    "get_encoding": (_core.get_encoding, "get_encoding"),
    "tiktoken_bpe_file": (_core.tiktoken_bpe_file, "tiktoken_bpe_file"),
    "clear_cache": (_core.clear_cache, "clear_cache"),
    "configure_cache": (_core.configure_cache, "configure_cache"),
    "compact_history": (tokensieve.compact_history, "compact_history"),
    "Compactor": (tokensieve.Compactor, "Compactor"),
    "count_history_tokens": (tokensieve.count_history_tokens, "count_history_tokens"),
    "BudgetConfig": (tokensieve.BudgetConfig, "BudgetConfig"),
}


@pytest.mark.parametrize(
    "label",
    list(DOCUMENTED),
)
def test_the_documented_examples_pass(label, pristine_cache):
    obj, name = DOCUMENTED[label]
    tests = _doctests_of(obj, name)
    assert tests, f"{label} has no examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    attempted = 0
    failures: list[str] = []
    for test in tests:
        outcome = runner.run(test, out=failures.append)
        attempted += outcome.attempted
    assert attempted > 0
    assert runner.failures == 0, "".join(failures)


def test_the_module_doctests_cover_cache_info():
    names = {t.name for t in _doctests_of(tokensieve, "tokensieve")}
    assert {"tokensieve", "tokensieve.cache_info"} <= names


def test_every_name_in_all_exists_and_the_errors_form_one_hierarchy():
    for name in tokensieve.__all__:
        assert hasattr(tokensieve, name), name
    for error, builtin in [
        (tokensieve.UnknownEncodingError, ValueError),
        (tokensieve.InputTypeError, TypeError),
        (tokensieve.ConfigurationError, ValueError),
    ]:
        assert issubclass(error, tokensieve.TokensieveError) and issubclass(error, builtin)
    assert issubclass(tokensieve.TokensieveError, Exception)


def test_the_version_is_the_installed_distribution_version():
    assert tokensieve.__version__ == _core.__version__ == importlib.metadata.version("tokensieve")


def test_the_package_type_checks(tmp_path):
    """Every public function has type hints; mypy agrees with them (and with the stubs)."""
    env = {**os.environ, "MYPY_CACHE_DIR": str(tmp_path / ".mypy_cache")}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "-p", "tokensieve", "--ignore-missing-imports"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
