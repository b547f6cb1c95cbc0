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

HEAVY_MODULES = ("numpy", "tiktoken", "pydantic_ai", "openai", "anthropic", "logfire", "rich")


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


# What the first count of a process must not pay for (issue 12: import + first count under
# 20 ms). The standard library's heavier modules too: together they are most of what
# `import tokensieve` used to cost, and counting needs none of them.
NOT_NEEDED_TO_COUNT = (
    "sqlite3", "logfire_api", "pydantic", "pydantic_core", "json", "typing", "dataclasses", "inspect", "re",
    "enum", "hashlib", "tokensieve.compaction", "tokensieve.config", "tokensieve.usage", "tokensieve.telemetry",
    "tokensieve.classify", "tokensieve.narrow", "tokensieve.summarize", "tokensieve.encodings",
)


def test_a_compaction_imports_no_numpy_until_per_message_tokens_is_read():
    """``compact_history`` returns messages: the report's numpy array is made (and numpy,
    ~85 ms, imported) only when a caller reads ``per_message_tokens``; then it holds the
    counts ``count_history_tokens`` gives, as int64, the same object on every read."""
    code = (
        "import json, random, sys\n"
        "import tokensieve\n"
        "from tokensieve import _bench\n"
        "from tokensieve.compaction import Compactor\n"
        "config = _bench.PIPELINE_SUMMARY_CONFIG\n"
        "history = _bench.history(2000)\n"
        "seen = {}\n"
        "steps = [s.step for s in Compactor(config).compact(history).steps]\n"
        "tokensieve.clear_cache()\n"
        "out = tokensieve.compact_history(history, config)\n"
        "seen['first'] = 'numpy' in sys.modules\n"
        "out = tokensieve.compact_history(out + _bench.exchange(random.Random(1), 2100), config)\n"
        "seen['with its summary'] = 'numpy' in sys.modules\n"
        "chat = [{'role': 'user', 'content': 'word ' * 3000}, {'role': 'assistant', 'content': 'ok'}] * 40\n"
        "tokensieve.compact_history(chat, max_input_tokens=40_000, target_input_tokens=10_000)\n"
        "seen['openai'] = 'numpy' in sys.modules\n"
        "tokensieve.count_request_tokens(out)\n"
        "seen['request tokens'] = 'numpy' in sys.modules\n"
        "result = Compactor(_bench.BENCH_CONFIG).compact(history)\n"
        "dropped = result.dropped\n"
        "seen['dropped read'] = 'numpy' in sys.modules\n"
        "array = result.per_message_tokens\n"
        "seen['array read'] = 'numpy' in sys.modules\n"
        "print(json.dumps({'steps': steps, 'seen': seen, 'dropped': [type(dropped).__name__, len(dropped)],\n"
        "    'array': [type(array).__name__, str(array.dtype), array.tolist() == tokensieve.count_history_tokens(history).tolist(),\n"
        "              result.per_message_tokens is array, len(array) == result.messages_before == len(history)]}))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["steps"] == ["mask", "prune", "window", "summary"]  # every step ran
    assert report["seen"] == {
        "first": False, "with its summary": False, "openai": False, "request tokens": False,
        "dropped read": False, "array read": True,
    }
    assert report["dropped"][0] == "tuple" and report["dropped"][1] > 0
    assert report["array"] == ["ndarray", "int64", True, True, True]


@pytest.mark.parametrize("encoding", _core.ENCODINGS)
def test_importing_tokensieve_and_counting_once_loads_only_the_core(encoding):
    """A fresh interpreter imports tokensieve and counts with each embedded encoding: no
    module beyond the compiled core and the exceptions is imported (those the interpreter
    had already loaded at start-up, whatever its site packages bring, do not count)."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import tokensieve\n"
        f"assert tokensieve.count_tokens('Hello, world!', encoding={encoding!r}) > 0\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    result = run_python(code, "-I", "-X", "importtime")
    assert result.returncode == 0, result.stderr
    new = set(result.stdout.split())
    loaded = sorted(new & set(NOT_NEEDED_TO_COUNT))
    importers = _importers(result.stderr, tuple(loaded))
    assert loaded == [], f"import tokensieve + one count imported {loaded} (imported by: {importers})"
    assert {"tokensieve", "tokensieve._core", "tokensieve.errors"} <= new


def test_every_lazily_loaded_public_name_is_in_dir_and_resolves_in_a_fresh_process():
    """The Python-written half of the API loads on first use: ``dir()`` lists it before,
    ``from tokensieve import *`` and attribute access give the documented objects, and
    the submodule behind each name is imported only then."""
    code = (
        "import json, sys\n"
        "import tokensieve\n"
        "listed = sorted(set(tokensieve.__all__) - set(dir(tokensieve)))\n"
        "before = 'tokensieve.compaction' in sys.modules\n"
        "c = tokensieve.compact_history\n"
        "ns = {}\n"
        "exec('from tokensieve import *', ns)\n"
        "print(json.dumps({'not_listed': listed, 'compaction_before': before,\n"
        "                  'same': c is ns['compact_history'] and ns['Compactor'] is tokensieve.Compactor,\n"
        "                  'missing': sorted(set(tokensieve.__all__) - set(ns))}))\n"
    )
    result = run_python(code, "-I")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"not_listed": [], "compaction_before": False, "same": True, "missing": []}


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


# ------------------------------------------------------------------ packaging (issue 9, items 13 and 14)

REPO = os.path.join(os.path.dirname(__file__), os.pardir)
WORKFLOWS = os.path.join(REPO, ".github", "workflows")

#: Test helpers live in tests/, never in the package: no module of the package may look
#: like one. tokensieve.baseline is shipped on purpose: it is public API, the documented
#: reference to benchmark against (README "Commands"; ``tokensieve bench`` runs it).
def _looks_test_only(module: str) -> bool:
    *folders, name = module.split("/")
    return (
        name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"
        or bool({"tests", "testing", "support"} & set(folders))
    )


def _source_modules() -> set[str] | None:
    """The package's modules in the checkout (python/tokensieve), or None without one."""
    root = os.path.join(REPO, "python")
    if not os.path.isdir(os.path.join(root, "tokensieve")):
        return None
    found = set()
    for folder, _, names in os.walk(os.path.join(root, "tokensieve")):
        for name in names:
            if name.endswith(".py"):
                found.add(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return found


def _installed_files() -> list[str]:
    files = importlib.metadata.files("tokensieve") or []
    return [str(f).replace("\\", "/") for f in files]


def test_the_installed_distribution_declares_and_ships_the_mit_license():
    # MIT for tokensieve; Apache-2.0 for the embedded Qwen vocabulary, whose licence and
    # the notices of every embedded vocabulary ship as licence files too.
    metadata = importlib.metadata.metadata("tokensieve")
    assert metadata["License-Expression"] == "MIT AND Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE", "licenses/VOCABULARIES.md", "licenses/Apache-2.0.txt"]
    vocabularies = importlib.metadata.distribution("tokensieve").read_text("licenses/licenses/VOCABULARIES.md")
    assert vocabularies is not None and "qwen3" in vocabularies and "Shantanu Jain" in vocabularies
    apache = importlib.metadata.distribution("tokensieve").read_text("licenses/licenses/Apache-2.0.txt")
    assert apache is not None and "Apache License" in apache and "Version 2.0, January 2004" in apache
    licenses = [f for f in _installed_files() if f.endswith(".dist-info/licenses/LICENSE")]
    assert len(licenses) == 1, _installed_files()
    text = importlib.metadata.distribution("tokensieve").read_text("licenses/LICENSE")
    assert text is not None and text.startswith("MIT License") and "tokensieve contributors" in text


def test_the_package_ships_the_public_modules_and_nothing_test_only():
    files = _installed_files()
    modules = {f for f in files if f.startswith("tokensieve/") and f.endswith(".py")}
    if not modules:  # an editable install (maturin develop) records a .pth, not the files
        pytest.skip("tokensieve is installed in editable mode: no file list to check")
    assert {"tokensieve/__init__.py", "tokensieve/__main__.py", "tokensieve/baseline.py"} <= modules
    assert not [m for m in modules if _looks_test_only(m)], sorted(modules)
    source = _source_modules()
    if source is not None:  # the wheel holds exactly the package's sources, nothing else
        assert modules == source
    assert not [f for f in files if f.startswith("tests/") or "conftest" in f]
    for data in ("tokensieve/presets.json", "tokensieve/py.typed", "tokensieve/_core.pyi"):
        assert data in files


def _elf_section_names(path: str) -> set[str]:
    """Section names of a 64-bit little-endian ELF file (enough for the extension)."""
    import struct

    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not a 64-bit little-endian ELF file"
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    names_offset = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)[0]
    names = set()
    for i in range(shnum):
        name_index = struct.unpack_from("<I", data, shoff + i * shentsize)[0]
        end = data.index(b"\0", names_offset + name_index)
        names.add(data[names_offset + name_index : end].decode())
    return names


@pytest.mark.skipif(not sys.platform.startswith("linux") or sys.byteorder != "little", reason="reads ELF")
def test_the_extension_is_stripped_of_symbols_and_debug_info():
    with open(_core.__file__, "rb") as f:
        if f.read(5)[4] != 2:
            pytest.skip("a 32-bit build")
    names = _elf_section_names(_core.__file__)
    assert ".dynsym" in names  # the exported PyInit__core stays
    assert ".symtab" not in names and not any(n.startswith(".debug") for n in names), sorted(names)


def test_the_sdist_ships_the_license_and_the_sources_and_not_the_build(tmp_path):
    import shutil
    import tarfile

    if shutil.which("cargo") is None:
        pytest.skip("maturin sdist reads the crate with cargo")
    result = subprocess.run(
        [sys.executable, "-m", "maturin", "sdist", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (sdist,) = tmp_path.glob("tokensieve-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        root = tar.getnames()[0].split("/", 1)[0]
        pkg_info = tar.extractfile(f"{root}/PKG-INFO").read().decode()  # type: ignore[union-attr]
    for required in (
        "LICENSE", "README.md", "pyproject.toml", "Cargo.toml", "Cargo.lock", "rust/Cargo.toml",
        "rust/src/lib.rs", "python/tokensieve/__init__.py", "python/tokensieve/presets.json",
        "licenses/VOCABULARIES.md", "licenses/Apache-2.0.txt", "rust/vocab/qwen3.tiktoken",
    ):
        assert required in names, required
    assert not [n for n in names if n.startswith(("target/", ".venv/", ".git/")) or "__pycache__" in n]
    assert "License-Expression: MIT" in pkg_info and "License-File: LICENSE" in pkg_info


def _check_jsonschema(*paths: str) -> subprocess.CompletedProcess:
    # A dead proxy: the builtin schema ships inside check-jsonschema; nothing is fetched.
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *paths],
        capture_output=True, text=True, env=env, timeout=120,
    )


def _workflows() -> list[str]:
    return sorted(
        os.path.join(WORKFLOWS, name) for name in os.listdir(WORKFLOWS) if name.endswith((".yml", ".yaml"))
    )


def test_the_github_workflows_are_valid_against_the_workflow_schema(tmp_path):
    workflows = _workflows()
    assert workflows
    result = _check_jsonschema(*workflows)
    assert result.returncode == 0, result.stdout + result.stderr
    # The check can fail: a misspelt key in a step is caught.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v5\n        wiht: {fetch-depth: 0}\n",
        encoding="utf-8",
    )
    assert _check_jsonschema(str(broken)).returncode == 1


def _load_workflow(name: str) -> dict:
    from ruamel.yaml import YAML  # a dependency of check-jsonschema

    with open(os.path.join(WORKFLOWS, name), encoding="utf-8") as f:
        return YAML(typ="safe").load(f)


def test_the_wheels_workflow_tests_every_wheel_on_the_oldest_and_newest_python():
    jobs = _load_workflow("wheels.yml")["jobs"]
    built = {p["name"] for p in jobs["build"]["strategy"]["matrix"]["platform"]}
    assert built == {
        "manylinux-x86_64", "manylinux-aarch64", "musllinux-x86_64", "musllinux-aarch64",
        "macos-arm64", "macos-x86_64", "windows-x64",
    }
    assert "macos-13" not in json.dumps(jobs)  # the retired Intel runner
    tested: dict[str, set[str]] = {}
    for job in ("test-wheels", "test-musllinux"):
        matrix = jobs[job]["strategy"]["matrix"]
        excluded = {(e["platform"]["name"], e["python"]) for e in matrix.get("exclude", [])}
        for platform in matrix["platform"]:
            for python in matrix["python"]:
                if (platform["name"], python) not in excluded:
                    tested.setdefault(platform["name"], set()).add(python)
        assert any("pytest" in str(step.get("run", "")) for step in jobs[job]["steps"]), job
    assert set(tested) == built
    for platform, pythons in tested.items():
        assert {"3.10", "3.14"} <= pythons, platform
    # Every free-threaded wheel that is built is tested on 3.14t.
    for platform in jobs["build"]["strategy"]["matrix"]["platform"]:
        if "3.14t" in platform["interpreters"]:
            assert "3.14t" in tested[platform["name"]], platform["name"]


def test_the_release_waits_for_an_all_green_gate_over_every_other_job():
    workflow = _load_workflow("wheels.yml")
    jobs = workflow["jobs"]
    release = jobs["release"]
    assert release["needs"] == ["check"]
    assert "startsWith(github.ref, 'refs/tags/v')" in release["if"] and "success()" in release["if"]
    assert release["permissions"] == {"id-token": "write"}  # trusted publishing
    steps = json.dumps(release["steps"])
    assert "pypa/gh-action-pypi-publish" in steps and "twine check --strict" in steps
    gate = jobs["check"]
    assert gate["if"] == "always()"
    assert set(gate["needs"]) == set(jobs) - {"check", "release"}
    assert any(str(step.get("uses", "")).startswith("re-actors/alls-green@") for step in gate["steps"])
    for job in ("rustfmt", "clippy", "msrv", "version", "sdist"):
        assert job in jobs
    assert "rust_version" in json.dumps(jobs["msrv"]) and "cargo test --locked" in json.dumps(jobs["msrv"])


def test_make_demo_announces_the_build_and_shows_its_progress():
    """`make demo` compiles for minutes: it says so first and passes on the build's lines
    (pip -v) instead of running pip --quiet."""
    with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
        makefile = f.read()
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:]]
    install = next(i for i, line in enumerate(lines) if "pip install" in line)
    assert any("echo" in line and "build" in line for line in lines[:install])
    assert " -v " in lines[install] and "--quiet" not in lines[install]
    assert "Compiling" in recipe  # cargo's progress lines are what the filter keeps
    assert "pipefail" in recipe  # a failed build still fails make
