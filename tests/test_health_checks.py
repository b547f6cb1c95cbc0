"""The health checks of ``docs/observability.md``, run on the telemetry of a simulated
agent session: coding goes to the coding model, capacity warnings precede rate limits,
failover follows accumulated warnings, and the routed model is the model called.

The session is an agent (FunctionModels named like real models) with ``TokenBudget``
routing over a shared tracker, its telemetry captured with logfire's test exporter
(timestamps from the session's simulated clock, so the queries' time windows mean what
they say), loaded into an SQLite ``records`` table (``tests/support/logfire_sql.py``).
"""

from __future__ import annotations

import itertools

import pytest

from tests.support import logfire_sql
from tokensieve import BudgetConfig, telemetry
from tokensieve.usage import UsageTracker

logfire = pytest.importorskip("logfire", reason="the test exporter comes with the logfire package")

from logfire.testing import IncrementalIdGenerator, TestExporter  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402

from tests.test_routing import (  # noqa: E402
    CODING,
    DAY_LIMIT,
    GLM,
    GROQ,
    KIMI,
    QUESTION,
    AgentClient,
    Clock,
    Provider,
)

pytestmark = pytest.mark.filterwarnings("ignore::tokensieve.errors.BudgetWarning")


def capture():
    """Like logfire's ``capfire``, with span timestamps from a simulated clock."""
    clock = Clock()
    tick = itertools.count()
    exporter = TestExporter()
    logfire.configure(
        send_to_logfire=False,
        console=False,
        advanced=logfire.AdvancedOptions(
            id_generator=IncrementalIdGenerator(),
            # Within one simulated second, events keep their order by a nanosecond each.
            ns_timestamp_generator=lambda: int(clock.t * 1e9) + next(tick),
        ),
        additional_span_processors=[SimpleSpanProcessor(exporter)],
    )
    telemetry.configure()
    return clock, exporter


def session(routes: dict[str, str]):
    """40 requests, coding and questions in turn, 20 simulated seconds apart: the general
    and the coding model reach 80% of their day and fail over to the chain's last model,
    which has nowhere to go and ends in a 429 streak (after its own warnings)."""
    clock, exporter = capture()
    tracker = UsageTracker(BudgetConfig(tokens_per_day=DAY_LIMIT), routes=routes, failover=[GROQ], clock=clock)
    client = AgentClient(tracker, Provider(tracker))
    client.agent.instrument = True
    for i in range(40):
        client.request(CODING if i % 2 else QUESTION)
        clock.t += 20
    return logfire_sql.records(exporter.exported_spans_as_dict()), client


@pytest.fixture(scope="module")
def routed():
    """The session with a coding route (run once for the module's tests)."""
    yield session(routes={"coding": GLM})
    telemetry.configure()


@pytest.fixture
def db(routed):
    return routed[0]


def test_the_guide_marks_every_health_check_the_suite_runs():
    assert set(logfire_sql.health_checks()) == {
        "warnings-precede-rate-limits",
        "warnings-and-rate-limits-by-hour",
        "failover-follows-warnings",
        "warnings-without-failover",
        "routing-by-workload",
        "coding-off-its-model",
        "routing-reached",
    }


def test_coding_goes_to_the_coding_model_unless_it_is_failed_over(routed):
    db, client = routed
    rows = logfire_sql.run(db, "routing-by-workload")
    coding = {(r["model"], r["reason"]): r["decisions"] for r in rows if r["workload"] == "coding"}
    assert coding == {(GLM, "route"): 10, (GROQ, "failover"): 10}
    assert logfire_sql.run(db, "coding-off-its-model") == []
    reached = logfire_sql.run(db, "routing-reached")
    assert reached and all(r["reached"] == 1 for r in reached)
    # One routing decision per model call: the selector ran once per request.
    assert sum(r["decisions"] for r in rows) == len(client.provider.calls) == 40


def test_the_coding_alert_fires_when_coding_has_no_route():
    db, _ = session(routes={})
    telemetry.configure()
    alerts = logfire_sql.run(db, "coding-off-its-model")
    assert alerts and {(a["model"], a["reason"]) for a in alerts} == {(KIMI, "default")}


def test_capacity_warnings_precede_rate_limits(db):
    rows = logfire_sql.run(db, "warnings-precede-rate-limits")
    # Only the chain's last model, with nowhere to go, was ever rate limited, and warned first.
    assert [(r["model"], r["rate_limit_streaks"], r["preceded_by_a_warning"]) for r in rows] == [(GROQ, 1, 1)]
    assert rows[0]["avg_seconds_of_warning"] > 0
    by_hour = logfire_sql.run(db, "warnings-and-rate-limits-by-hour")
    assert {r["model"] for r in by_hour if r["rate_limits"]} == {GROQ}
    # The check is not vacuous: a 429 streak with no warning before it is reported.
    copy = logfire_sql.copy(db)
    copy.execute(
        "INSERT INTO records VALUES (now() - 1, 'rate_limit', 'ff', 13, '', json_object('model', ?, 'consecutive_429s', 1))",
        (KIMI,),
    )
    copy.execute("DELETE FROM records WHERE span_name = 'capacity_warning' AND attributes->>'model' = ?", (KIMI,))
    late = {r["model"]: r for r in logfire_sql.run(copy, "warnings-precede-rate-limits")}
    assert (late[KIMI]["rate_limit_streaks"], late[KIMI]["preceded_by_a_warning"]) == (1, 0)


def test_failover_follows_accumulated_warnings(db):
    failovers = logfire_sql.run(db, "failover-follows-warnings")
    assert sorted((f["from_model"], f["to_model"], f["reason"]) for f in failovers) == [
        (KIMI, GROQ, "capacity_warnings"),
        (GLM, GROQ, "capacity_warnings"),
    ]
    assert all(f["capacity_warnings_in_the_5_minutes_before"] >= 3 for f in failovers)
    # Warnings that piled up without a failover are the chain's last model's only.
    idle = logfire_sql.run(db, "warnings-without-failover")
    assert {r["model"] for r in idle if r["failovers"] == 0} == {GROQ}
    assert {r["model"] for r in idle if r["failovers"]} <= {KIMI, GLM}
