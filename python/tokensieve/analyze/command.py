"""``tokensieve analyze SOURCE...``: read request logs and report the figures.

Each file is read by one process (every core for many files: ``--jobs``, default the
number of CPUs), its figures aggregated where it is read, and the partial aggregates
merged (see :mod:`tokensieve.analyze.figures`). A progress bar on stderr shows files and
records on a terminal.

Example:
    >>> import os, tempfile
    >>> from tokensieve.analyze.command import analyze
    >>> from tokensieve.analyze.fixtures import write_usage_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "usage.csv")
    >>> _ = write_usage_csv(path, requests=200, sessions=3, days=1)
    >>> analyze([path], budget="cerebras")["overall"]["requests"]
    200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tokensieve.analyze.figures import Aggregate, figures
from tokensieve.analyze.sources import FORMATS, LogFormatError, detect_format, parse_columns, read_source

__all__ = ["add_parser", "aggregate_file", "analyze", "load_budget", "run"]

#: Records between two progress updates of one file.
_PROGRESS_EVERY = 20_000


def aggregate_file(
    path: str,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    session_gap: float = 1_800.0,
    on_records: Callable[[int], None] | None = None,
) -> Aggregate:
    """The partial figures of one log file (what a worker process returns).

    Example:
        >>> import os, tempfile
        >>> from tokensieve.analyze.command import aggregate_file
        >>> from tokensieve.analyze.fixtures import write_usage_csv
        >>> path = os.path.join(tempfile.mkdtemp(), "usage.csv")
        >>> _ = write_usage_csv(path, requests=30, sessions=1, days=1)
        >>> aggregate_file(path).requests.overall.requests
        30
    """
    fmt = format or detect_format(path)
    agg = Aggregate(path, session_gap=session_gap)  # gap sessions are named "<path>#<n>"
    add = agg.add
    n = 0
    for n, record in enumerate(read_source(path, fmt, columns=columns), 1):  # type: ignore[arg-type]
        add(record)
        if on_records is not None and n % _PROGRESS_EVERY == 0:
            on_records(_PROGRESS_EVERY)
    if on_records is not None:
        on_records(n % _PROGRESS_EVERY)
    agg.sources.append({"path": path, "format": fmt, "records": n})
    return agg


def _worker(args: tuple[str, str | None, dict[str, str], float]) -> Aggregate:
    return aggregate_file(*args)


def analyze(
    paths: Sequence[str],
    *,
    budget: Any = None,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    session_gap: float = 1_800.0,
    jobs: int | None = None,
    progress: Any = None,
    label: str | None = None,
) -> dict[str, Any]:
    """The figures of some log files against a budget (see :func:`~tokensieve.analyze.figures.figures`).

    Args:
        paths: the logs (each detected, or all read as ``format``).
        budget: a BudgetConfig, a preset name, or None for each model's preset.
        columns: CSV column names by field (``--columns``).
        session_gap: seconds of idleness that end a session, for logs without session ids.
        jobs: processes for several files (default: the number of CPUs; 1 reads in this process).
        progress: a ``rich.progress.Progress`` to show files and records on (optional).
        label: how the report names the budget (default: the preset's name, or "custom").
    """
    for path in paths:
        if not os.path.isfile(path):
            raise LogFormatError(f"{path}: no such file" if not os.path.exists(path) else f"{path}: not a file")
    columns = dict(columns or {})
    jobs = min(jobs or os.cpu_count() or 1, len(paths))
    task = progress.add_task("reading", total=len(paths)) if progress is not None else None
    records = progress.add_task("records", total=None) if progress is not None else None

    def tick(n: int) -> None:
        if progress is not None:
            progress.advance(records, n)

    total = Aggregate()
    if jobs <= 1:
        for path in paths:
            total.merge(aggregate_file(path, format, columns, session_gap, tick))
            if progress is not None:
                progress.advance(task)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: a forked child would inherit the progress bar's thread and its locks.
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_worker, (path, format, columns, session_gap)): path for path in paths}
            done: dict[str, Aggregate] = {}
            for future in as_completed(futures):
                agg = future.result()
                done[futures[future]] = agg
                if progress is not None:
                    progress.advance(task)
                    progress.advance(records, agg.records)
        for path in paths:  # merged in the order given, so the report's sources keep it
            total.merge(done[path])
    return figures(total, budget, label=label)


def load_budget(preset: str | None, config_path: str | None) -> Any:
    """The budget of ``--preset`` / ``--config`` (None: each model's own preset).

    A config file is JSON or TOML holding BudgetConfig fields, optionally on top of a
    preset: ``{"preset": "cerebras", "target_input_tokens": 12000}``.

    Example:
        >>> from tokensieve.analyze.command import load_budget
        >>> load_budget("groq", None).tokens_per_minute
        6000
    """
    from tokensieve.config import BudgetConfig
    from tokensieve.errors import ConfigurationError

    if config_path is None:
        return None if preset is None else BudgetConfig.preset(preset)
    try:
        if config_path.endswith(".toml"):
            import tomllib

            with open(config_path, "rb") as f:
                data = tomllib.load(f)
        else:
            with open(config_path, encoding="utf-8") as f:
                data = json.load(f)
    except (ValueError, OSError) as e:
        raise ConfigurationError(f"{config_path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{config_path}: expected a table of BudgetConfig fields")
    base = data.pop("preset", preset)
    data.pop("description", None)
    data.pop("patterns", None)
    try:
        return BudgetConfig.preset(base or "cerebras", **data)
    except TypeError as e:
        raise ConfigurationError(f"{config_path}: {e}") from None


def add_parser(sub: Any) -> None:
    """Add the ``analyze`` subcommand to the CLI's subparsers."""
    from tokensieve.config import PRESETS

    p = sub.add_parser(
        "analyze",
        help="figures of request logs: averages, p50/p95, day limit, 429s, sessions, tasks (--html for plots)",
        description="Read request logs (UsageTracker SQLite ledger, CSV usage exports, JSONL of OpenAI/Anthropic "
        "usage, OpenTelemetry/Logfire span exports) and report tokens per request, limits, 429 episodes, "
        "task output budgets and the session trend.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="log files (.gz too); the format is detected")
    p.add_argument("--format", choices=FORMATS, help="read every source as this format (default: detected)")
    p.add_argument(
        "--columns",
        metavar="FIELD=HEADER,...",
        help="CSV column names, e.g. 'input_tokens=Prompt Tokens,timestamp=Time' (fields: timestamp, model, "
        "input_tokens, output_tokens, cached_tokens, session_id, request_id, status, task, max_tokens, finish_reason)",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="measure against this budget (default: each model's preset)")
    p.add_argument("--config", metavar="FILE", help="a JSON or TOML file of BudgetConfig fields (optionally 'preset = ...')")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with plots (needs tokensieve[report])")
    p.add_argument(
        "--session-gap",
        type=float,
        default=30.0,
        metavar="MINUTES",
        help="for logs without session ids: idle minutes that end a session (0: one session per file; default 30)",
    )
    p.add_argument("--jobs", "-j", type=int, metavar="N", help="processes for several files (default: every core)")
    p.add_argument("--verbose", "-v", action="store_true", help="list every session")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``tokensieve analyze`` (exit status 0; errors raise TokensieveError / OSError)."""
    from tokensieve.__main__ import CliError, check_output_path

    if args.html:
        from tokensieve.analyze.html import missing_plotly

        check_output_path(args.html)
        missing = missing_plotly()
        if missing:
            raise CliError(missing)
    if args.jobs is not None and args.jobs < 1:
        raise CliError("--jobs must be 1 or more")
    budget = load_budget(args.preset, args.config)
    columns = parse_columns(args.columns)
    show = not args.json and sys.stderr.isatty()
    progress = None
    if show:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from rich.console import Console

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=True)
        progress.start()
    try:
        report = analyze(
            args.sources,
            budget=budget,
            format=args.format,
            columns=columns,
            session_gap=args.session_gap * 60.0,
            jobs=args.jobs,
            progress=progress,
            label=args.config or args.preset,
        )
    finally:
        if progress is not None:
            progress.stop()
    if args.html:
        from tokensieve.analyze.html import write_html

        write_html(report, args.html)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from rich.console import Console

        from tokensieve.analyze.report import render

        tty = sys.stdout.isatty()
        console = Console(file=sys.stdout, highlight=False, width=None if tty else 120, no_color=not tty)
        render(report, console, verbose=args.verbose)
        if args.html:
            console.print(f"wrote {args.html}", markup=False)
    return 0
