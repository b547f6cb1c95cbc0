"""Properties of ``compact_history`` on adversarial histories, in every format and both
dangling-call modes.

The histories come from ``tests/support/adversarial.py``: reused call ids, interrupted
calls, orphan results, results of one response split over several request messages,
retries, thinking, parallel calls, empty content, multimodal parts, legacy
``function_call``, Responses reasoning / custom tool / compaction items. The generator
knows which of them a provider accepts (``Adversarial.valid``) and which call/result
pairs are sound, so the properties can say what must come back:

- a valid history under the threshold comes back as the very same objects, in order;
- under the threshold no sound pair is dropped, whatever else is wrong around it;
- the output satisfies its provider's rules (``tests/support/provider_rules.py``), and
  for pydantic-ai, pydantic-ai's own ``repair_messages`` finds nothing to repair;
- compacting is idempotent and deterministic (stubs included);
- the Rust core and the pure-Python baseline return the same history and report.

Example counts come from the Hypothesis profile (``tests/conftest.py``): modest by
default (the file runs in about two minutes), ``HYPOTHESIS_PROFILE=long`` for a hunt.
The default profile does not shrink a failing example here (shrinking these histories
can take minutes per test, and `make test` must stay quick): it reports the example as
drawn and saves it; ``HYPOTHESIS_PROFILE=long`` replays the saved failure first and
shrinks it to a minimal one.
"""

from __future__ import annotations

import copy
import os

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import tokensieve
from tests.support.adversarial import FORMATS, Adversarial, adversarial, valid_adversarial
from tests.support.histories import budget_plans
from tests.support.provider_rules import violations
from tests.test_compaction_properties import assert_baseline_agrees

MODES = ("drop", "stub")
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
EXAMPLES = 20 if PROFILE == "default" else settings.default.max_examples
SETTINGS = settings(
    max_examples=EXAMPLES,
    phases=[Phase.explicit, Phase.reuse, Phase.generate] if PROFILE == "default" else list(Phase),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# A budget that no generated history comes near: compaction only repairs.
UNDER = {"max_input_tokens": 10**9, "compaction_threshold": 1.0, "hard_limit_threshold": 1.0, "target_input_tokens": 10**9}


def compact(messages: list, fmt: str, overrides: dict) -> tokensieve.CompactionResult:
    return tokensieve.Compactor(**overrides).compact(messages, format=fmt)


def compact_unless_nothing_to_send(history: Adversarial, overrides: dict) -> tokensieve.CompactionResult | None:
    """``compact``, or None when the history ends with a request of nothing but orphan
    results and compacting rightly raises InvalidMessageError naming that last message
    ("nothing is left to send", docs/compaction.md section 4 step 4; pydantic-ai keeps the
    emptied request instead). Raising for any other history, or not raising for such a
    history, fails."""
    expected = history.nothing_to_send and history.fmt != "pydantic-ai"
    last = f"messages[{len(history.messages) - 1}]:"
    try:
        result = compact(history.messages, history.fmt, overrides)
    except tokensieve.InvalidMessageError as error:
        if expected and "nothing is left to send" in str(error) and str(error).startswith(last):
            return None
        raise
    assert not expected, f"a history ending with only orphan results compacted instead of raising (defects: {history.defects})"
    return result


def draw_budget(data, case: Adversarial, mode: str) -> dict:
    """BudgetConfig overrides sized to the history: compacting in most examples."""
    plan = data.draw(budget_plans(mode), label="budget plan")
    total = int(tokensieve.count_history_tokens(case.messages, encoding=plan.encoding, format=case.fmt).sum())
    return plan.overrides(total)


def items_of(fmt: str, messages: list) -> set[int]:
    """ids of every message and every part, block or tool-call entry in ``messages``."""
    found: set[int] = set()
    for m in messages:
        found.add(id(m))
        if fmt == "pydantic-ai":
            found.update(id(p) for p in m.parts)
        elif fmt == "openai":
            found.update(id(c) for c in m.get("tool_calls") or ())
        elif fmt == "anthropic" and isinstance(m.get("content"), list):
            found.update(id(b) for b in m["content"])
    return found


def pydantic_ai_repair_violations(messages: list) -> list[str]:
    """What pydantic-ai's own ``repair_messages`` would change in ``messages``, beyond
    merging consecutive requests (which it always does; both sides are merged)."""
    from pydantic_ai.messages import _merge_consecutive_messages, repair_messages

    repaired = repair_messages(messages)
    merged = _merge_consecutive_messages(list(messages))
    if repaired == merged:
        return []
    return [f"repair_messages changed the history: {len(merged)} merged messages -> {len(repaired)}: {repaired!r}"[:2000]]


# ---- The generator -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_every_history_the_generator_calls_valid_satisfies_its_providers_rules(fmt, data):
    """The generator's idea of valid agrees with the provider rules (and with pydantic-ai's
    repair): otherwise the identity properties below would assert the wrong thing."""
    history = data.draw(valid_adversarial(fmt), label="history")
    assert history.valid
    assert violations(fmt, history.messages) == []
    if fmt == "pydantic-ai":
        assert pydantic_ai_repair_violations(history.messages) == []


# ---- Under the threshold -----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_a_valid_history_under_the_threshold_comes_back_as_the_same_objects(fmt, mode, data):
    history = data.draw(valid_adversarial(fmt), label="history")
    result = compact(history.messages, fmt, {**UNDER, "dangling_calls": mode})
    changed = [k for k, (a, b) in enumerate(zip(result.messages, history.messages)) if a is not b]
    assert (len(result.messages), changed) == (len(history.messages), []), (
        f"a valid {fmt} history came back changed: {len(history.messages)} -> {len(result.messages)} messages, "
        f"first changed at {changed[:1]}; dropped {result.dropped}, orphans {result.orphans_removed}, "
        f"calls {result.calls_repaired}"
    )
    assert (result.action, result.dropped, result.orphans_removed, result.calls_repaired) == ("none", (), 0, 0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_no_sound_call_and_result_pair_is_dropped_under_the_threshold(fmt, mode, data):
    """Whatever defects surround them, a call answered where its provider looks for the
    answer keeps its call and its real result (never a stub in place of the result)."""
    history = data.draw(adversarial(fmt), label="history")
    result = compact_unless_nothing_to_send(history, {**UNDER, "dangling_calls": mode})
    if result is None:
        return
    kept = items_of(fmt, result.messages)
    lost = [(call, res) for call, res in history.sound_pairs if id(call) not in kept or id(res) not in kept]
    assert lost == [], f"sound pairs dropped under the threshold (defects: {history.defects}): {lost[:3]}"


# ---- Validity ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_an_adversarial_history_compacts_to_one_its_provider_accepts(fmt, mode, data):
    history = data.draw(adversarial(fmt), label="history")
    overrides = draw_budget(data, history, mode)
    try:
        result = compact_unless_nothing_to_send(history, overrides)
    except tokensieve.BudgetExceededError:
        return
    if result is None:
        return
    assert violations(fmt, result.messages, history.messages) == []
    if fmt == "pydantic-ai":
        assert pydantic_ai_repair_violations(result.messages) == []


def _side(fmt: str, message) -> str:
    """"request" (what is sent to the model) or "response" (what it produced)."""
    if fmt == "pydantic-ai":
        return getattr(message, "kind", "?")
    if fmt == "responses" and message.get("type") not in (None, "message"):
        kind = str(message.get("type"))
        return "request" if kind.endswith("_call_output") or kind == "compaction" else "response"
    return "response" if message.get("role") == "assistant" else "request"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_a_history_ending_with_a_request_never_compacts_to_one_ending_with_a_response(fmt, mode, data):
    """There is something to send: the output does not end on the model's turn (for
    Anthropic that would be an assistant prefill nobody asked for). Raising
    InvalidMessageError (nothing left to send) is right exactly when the final request
    run holds nothing but orphan results."""
    history = data.draw(adversarial(fmt), label="history")
    if not history.messages or _side(fmt, history.messages[-1]) != "request":
        return
    overrides = draw_budget(data, history, mode) if data.draw(st.booleans(), label="compacting") else {**UNDER, "dangling_calls": mode}
    try:
        result = compact_unless_nothing_to_send(history, overrides)
    except tokensieve.BudgetExceededError:
        return
    if result is None:
        return
    assert result.messages, "a history ending with a request compacted to nothing"
    assert _side(fmt, result.messages[-1]) == "request", (
        f"the output ends with a response: {result.messages[-1]!r} (defects: {history.defects})"
    )


# ---- Idempotence and determinism ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_compacting_a_compacted_history_again_returns_it_unchanged(fmt, mode, data):
    history = data.draw(adversarial(fmt), label="history")
    overrides = draw_budget(data, history, mode)
    try:
        first = compact_unless_nothing_to_send(history, overrides)
    except tokensieve.BudgetExceededError:
        return
    if first is None:
        return
    second = compact(first.messages, fmt, overrides)
    changed = [k for k, (a, b) in enumerate(zip(first.messages, second.messages)) if a is not b]
    assert (len(second.messages), changed) == (len(first.messages), []), (
        f"a second pass changed the output: {len(first.messages)} -> {len(second.messages)} messages, "
        f"first changed at {changed[:1]}"
    )
    assert (second.dropped, second.orphans_removed, second.calls_repaired) == ((), 0, 0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_two_compactions_of_equal_histories_give_equal_outputs(fmt, mode, data):
    """Everything in the output, stubs included, derives from the input: the same prompt
    prefix every time (provider prompt caching depends on it)."""
    history = data.draw(adversarial(fmt), label="history")
    overrides = draw_budget(data, history, mode)
    try:
        first = compact_unless_nothing_to_send(history, overrides)
    except tokensieve.BudgetExceededError:
        return
    if first is None:
        return
    again = compact(history.messages, fmt, overrides)
    twin = compact(copy.deepcopy(history.messages), fmt, overrides)
    assert again.messages == first.messages
    assert twin.messages == first.messages
    assert (twin.dropped, twin.orphans_removed, twin.calls_repaired) == (first.dropped, first.orphans_removed, first.calls_repaired)


# ---- The baseline ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_the_rust_core_and_the_baseline_agree_on_adversarial_histories(fmt, mode, data):
    history = data.draw(adversarial(fmt), label="history")
    overrides = draw_budget(data, history, mode) if data.draw(st.booleans(), label="compacting") else {**UNDER, "dangling_calls": mode}
    assert_baseline_agrees(history.messages, fmt, overrides)
