"""Hostile input never takes the process down: it gets a result or a clean error.

Every case of ``tests/support/hostile.py`` (cycles, nesting 10^6 deep, 100 MB strings,
objects whose ``__str__`` / ``__eq__`` / ``__hash__`` / ``__getitem__`` / ``__iter__`` /
``__len__`` raise or lie, a wrong type at every field of every format, a message of another
format inside a history, wrong arguments)
runs outside the test runner: a subprocess imports tokensieve once and runs the cases in
forked children, a fresh child after each crash, so that a segfault, an abort or a hang
is a failure of that case, not a dead test runner. What each case must do: the process
lives, and every call returns a valid result or raises a ``tokensieve.TokensieveError``
subclass whose message names the hostile message's index (cycles: an
``InvalidMessageError``; 100 MB strings: the exact count).

The cases run once per session (a fixture); each test then reads its case's report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.hostile import FORMATS, cases

ROOT = Path(__file__).resolve().parent.parent
CASES = cases()
CASE_SECONDS = 60  # a case that takes longer is a hang
TOTAL_SECONDS = 900  # the whole run, a backstop only


@pytest.fixture(scope="session")
def hostile_reports() -> dict[str, dict]:
    """Every case's report, by name."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HOSTILE_CASE_SECONDS": str(CASE_SECONDS)}
    run = subprocess.run(
        [sys.executable, "-m", "tests.support.hostile"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=TOTAL_SECONDS,
    )
    reports = {}
    for line in run.stdout.splitlines():
        if line.startswith("RESULT "):
            report = json.loads(line[7:])
            reports[report["case"]] = report
    assert run.returncode == 0, f"the hostile-input runner failed ({run.returncode}): {run.stderr[-2000:]}"
    return reports


def _params(prefix: str) -> list[str]:
    return [name for name in CASES if name.startswith(prefix)]


def _check(hostile_reports: dict, name: str) -> None:
    report = hostile_reports.get(name)
    assert report is not None, f"{name}: no report"
    assert report["problems"] == [], f"{name}:\n  " + "\n  ".join(report["problems"])


@pytest.mark.parametrize("name", _params("cycle/"))
def test_a_cycle_in_a_history_is_an_invalid_message_error_naming_its_index(hostile_reports, name):
    _check(hostile_reports, name)


@pytest.mark.parametrize("name", _params("depth/"))
def test_nesting_a_million_deep_neither_crashes_nor_recurses_without_bound(hostile_reports, name):
    _check(hostile_reports, name)


@pytest.mark.parametrize("name", _params("huge/"))
def test_a_100_megabyte_string_is_counted_exactly(hostile_reports, name):
    _check(hostile_reports, name)


@pytest.mark.parametrize("name", _params("hostile/"))
def test_objects_whose_dunder_methods_raise_or_lie_give_a_clean_error_or_a_result(hostile_reports, name):
    _check(hostile_reports, name)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_wrong_type_at_any_field_gives_a_clean_error_naming_the_message_or_a_result(hostile_reports, fmt):
    # One test per format (there are hundreds of cases each): the message lists the failing ones.
    names = _params(f"wrong-type/{fmt}:")
    assert names
    failing = {n: hostile_reports.get(n, {"problems": ["no report"]})["problems"] for n in names}
    failing = {n: p for n, p in failing.items() if p}
    assert failing == {}, f"{len(failing)} of {len(names)} wrong-type cases fail:\n" + "\n".join(
        f"  {n}: {p[0]}" for n, p in list(failing.items())[:40]
    )


@pytest.mark.parametrize("name", _params("mixed/"))
def test_a_message_of_another_format_is_an_invalid_message_error_naming_its_index(hostile_reports, name):
    _check(hostile_reports, name)


@pytest.mark.parametrize("name", _params("call/"))
def test_wrong_arguments_give_a_tokensieve_error(hostile_reports, name):
    _check(hostile_reports, name)
