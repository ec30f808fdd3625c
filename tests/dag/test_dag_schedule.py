"""decide(): trigger rules, skip propagation, error handlers, parallelism, run outcomes."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable.dag import (
    DagDefinition,
    DagStep,
    Decision,
    RunOutcome,
    Skip,
    StepStatus,
    decide,
    load_definition,
    parse_definition,
    schedule_order,
    topological_order,
    validate_definition,
)
from durable.dag._model import TriggerRule
from durable.dag._schedule import FINISHED, Scheduler

EXAMPLES = Path(__file__).parent / "examples"
RULES: list[TriggerRule] = [
    "all_success",
    "all_done",
    "one_success",
    "one_failed",
    "none_failed",
    "min_success",
]


def fan_in(rule: TriggerRule, min_success: int | None = None) -> DagDefinition:
    """a, b, c -> join (with `rule`)."""
    extra = f"\n    min_success: {min_success}" if min_success is not None else ""
    return parse_definition(
        f"""
name: fan-in
tasks:
  a: {{script: a.sh}}
  b: {{script: b.sh}}
  c: {{script: c.sh}}
  join:
    script: join.sh
    depends_on: [a, b, c]
    trigger_rule: {rule}{extra}
""",
        format="yaml",
    )


def upstream(a: StepStatus, b: StepStatus, c: StepStatus) -> dict[str, StepStatus]:
    return {"a": a, "b": b, "c": c}


def skipped(decision: Decision) -> dict[str, str]:
    return {s.step: s.reason for s in decision.skip}


def run_to_end(
    definition: DagDefinition,
    outcomes: dict[str, StepStatus],
    *,
    parallelism: int | None = None,
    gates: dict[str, bool] | None = None,
) -> tuple[dict[str, StepStatus], RunOutcome, list[tuple[str, ...]]]:
    """Drive a run: every started step finishes at once with outcomes[id] (default success)."""
    states: dict[str, StepStatus] = {}
    batches: list[tuple[str, ...]] = []
    for _ in range(4 * len(definition.steps) + 4):
        d = decide(definition, states, parallelism=parallelism, gates=gates)
        if d.final is not None:
            states.update(dict.fromkeys((skip.step for skip in d.skip), "skipped"))
            return states, d.final, batches
        assert not d.evaluate, "test gates missing"
        for skip in d.skip:
            states[skip.step] = "skipped"
        if d.start:
            batches.append(d.start)
        for step_id in d.start:
            states[step_id] = outcomes.get(step_id, "succeeded")
    raise AssertionError("the run did not finish")


# --- trigger rules, both directions -------------------------------------------------------

RULE_CASES: list[tuple[TriggerRule, int | None, tuple[StepStatus, ...], bool]] = [
    ("all_success", None, ("succeeded", "succeeded", "succeeded"), True),
    ("all_success", None, ("succeeded", "failed", "succeeded"), False),
    ("all_success", None, ("succeeded", "skipped", "succeeded"), False),
    ("all_done", None, ("failed", "skipped", "succeeded"), True),
    ("all_done", None, ("failed", "failed", "failed"), True),
    ("one_success", None, ("failed", "skipped", "succeeded"), True),
    ("one_success", None, ("failed", "skipped", "skipped"), False),
    ("one_failed", None, ("succeeded", "failed", "skipped"), True),
    ("one_failed", None, ("succeeded", "skipped", "skipped"), False),
    ("none_failed", None, ("succeeded", "skipped", "skipped"), True),
    ("none_failed", None, ("succeeded", "failed", "succeeded"), False),
    ("min_success", 2, ("succeeded", "failed", "succeeded"), True),
    ("min_success", 2, ("succeeded", "failed", "skipped"), False),
    ("min_success", 1, ("skipped", "failed", "succeeded"), True),
]


@pytest.mark.parametrize(("rule", "n", "ups", "runs"), RULE_CASES)
def test_trigger_rules(
    rule: TriggerRule, n: int | None, ups: tuple[StepStatus, StepStatus, StepStatus], runs: bool
) -> None:
    d = decide(fan_in(rule, n), upstream(*ups))
    if runs:
        assert d.start == ("join",) and d.skip == () and d.final is None
    else:
        assert d.start == () and [s.step for s in d.skip] == ["join"]
        assert f"({rule})" in d.skip[0].reason
        assert d.final is not None  # the skip of join finishes the run


def test_skip_reasons_name_the_cause() -> None:
    assert skipped(decide(fan_in("all_success"), upstream("succeeded", "failed", "skipped"))) == {
        "join": "upstream 'b' failed (all_success)"
    }
    assert skipped(decide(fan_in("none_failed"), upstream("failed", "failed", "skipped"))) == {
        "join": "upstream 'a' failed (none_failed)"
    }
    reason = skipped(decide(fan_in("min_success", 2), upstream("succeeded", "failed", "failed")))
    assert reason == {"join": "1 of 3 upstream succeeded, needs 2 (min_success)"}


@pytest.mark.parametrize("rule", RULES)
def test_no_rule_fires_before_every_dependency_is_finished(rule: TriggerRule) -> None:
    n = 1 if rule == "min_success" else None
    for pending in ("pending", "running"):
        d = decide(fan_in(rule, n), upstream("succeeded", "failed", pending))
        assert "join" not in d.start and d.skip == () and d.final is None


@pytest.mark.parametrize("rule", RULES)
def test_roots_always_pass_their_rule(rule: TriggerRule) -> None:
    step = DagStep(id="root", trigger_rule=rule)
    assert decide(DagDefinition(name="r", steps=(step,)), {}).start == ("root",)


# --- skip propagation ---------------------------------------------------------------------

CHAIN = """
name: chain
tasks:
  a: {script: a.sh}
  b: {script: b.sh, depends_on: [a]}
  c: {script: c.sh, depends_on: [b]}
  tolerant: {script: t.sh, depends_on: [c], trigger_rule: none_failed}
  alert: {script: x.sh, depends_on: [c], trigger_rule: one_failed}
  always: {script: y.sh, depends_on: [c], run_always: true}
"""


def test_skips_cascade_down_a_chain_in_one_decision() -> None:
    d = decide(parse_definition(CHAIN, format="yaml"), {"a": "failed"})
    assert skipped(d) == {
        "b": "upstream 'a' failed (all_success)",
        "c": "upstream 'b' skipped (all_success)",
        "alert": "no upstream failed (one_failed)",  # a skip is not a failure
    }
    # none_failed and all_done treat the skip as neutral and run.
    assert d.start == ("tolerant", "always")
    assert d.final is None


def test_final_counts_the_skips_of_the_same_decision() -> None:
    definition = parse_definition(CHAIN, format="yaml")
    states: dict[str, StepStatus] = {"a": "failed", "tolerant": "succeeded", "always": "failed"}
    d = decide(definition, states)
    assert [s.step for s in d.skip] == ["b", "c", "alert"]
    assert d.final == RunOutcome(
        status="partial", succeeded=1, failed=2, recovered=0, skipped=3, total=6
    )
    assert d.final.completed == 1


def test_conditions_are_inputs() -> None:
    definition = load_definition(EXAMPLES / "error_handling.yaml")
    ok: dict[str, StepStatus] = {"risky_operation": "succeeded", "process_data": "succeeded"}
    d = decide(definition, ok)
    # Both guarded steps passed their rule; their conditions must be evaluated first.
    assert d.start == ("recovery_task",) and d.evaluate == ("send_alert", "generate_report")
    d = decide(definition, ok, gates={"send_alert": False, "generate_report": True})
    assert d.start == ("recovery_task", "generate_report") and d.evaluate == ()
    assert skipped(d) == {"send_alert": "its condition/skip_if says skip"}
    # The trigger rule comes first: with the default all_success, a failed process_data
    # skips send_alert before its condition is ever asked (the seed would need one_failed).
    failed: dict[str, StepStatus] = {"risky_operation": "failed", "process_data": "failed"}
    d = decide(definition, failed)
    assert d.start == ("recovery_task",) and d.evaluate == ()  # run_always
    assert skipped(d) == {
        "send_alert": "upstream 'process_data' failed (all_success)",
        "generate_report": "upstream 'process_data' failed (all_success)",
    }


# --- the seed's ETL example ---------------------------------------------------------------


def test_etl_with_a_failed_branch_still_notifies_and_ends_partial() -> None:
    etl = load_definition(EXAMPLES / "etl.yaml")
    states, final, batches = run_to_end(etl, {"transform_api_data": "failed"})
    assert batches == [
        ("fetch_from_api", "fetch_from_db"),
        ("transform_api_data", "transform_db_data"),
        ("send_report",),  # run_always: runs although everything before it was skipped
    ]
    assert states["validate_and_merge"] == "skipped" and states["load_warehouse"] == "skipped"
    assert states["send_report"] == "succeeded"
    assert final == RunOutcome(
        status="partial", succeeded=4, failed=1, recovered=0, skipped=2, total=7
    )


def test_etl_outcomes() -> None:
    etl = load_definition(EXAMPLES / "etl.yaml")
    assert run_to_end(etl, {})[1].status == "succeeded"
    assert run_to_end(etl, {})[1].completed == 7
    everything_fails: dict[str, StepStatus] = {s.id: "failed" for s in etl.steps}
    _, final, _ = run_to_end(etl, everything_fails)
    assert final.status == "failed"
    assert (final.succeeded, final.failed, final.skipped) == (0, 3, 4)


# --- error handlers -----------------------------------------------------------------------

HANDLED = """
name: handled
tasks:
  extract: {script: e.sh, on_error: fallback}
  load: {script: l.sh, depends_on: [extract]}
  fallback: {script: f.sh}
"""


def test_a_handler_does_not_run_without_a_failure() -> None:
    definition = parse_definition(HANDLED, format="yaml")
    d = decide(definition, {})
    assert d.start == ("extract",)  # not the root-looking fallback
    d = decide(definition, {"extract": "succeeded"})
    assert d.start == ("load",)
    assert skipped(d) == {"fallback": "no step it handles failed ('extract'; on_error handler)"}
    _, final, _ = run_to_end(definition, {})
    assert final == RunOutcome(
        status="succeeded", succeeded=2, failed=0, recovered=0, skipped=1, total=3
    )


def test_a_successful_handler_recovers_the_failure() -> None:
    definition = parse_definition(HANDLED, format="yaml")
    d = decide(definition, {"extract": "failed"})
    assert d.start == ("fallback",) and d.skip == ()  # load waits for the handler
    d = decide(definition, {"extract": "failed", "fallback": "succeeded"})
    assert d.start == ("load",)  # extract counts as succeeded for its dependents
    _, final, batches = run_to_end(definition, {"extract": "failed"})
    assert batches == [("extract",), ("fallback",), ("load",)]
    assert final == RunOutcome(
        status="succeeded", succeeded=2, failed=1, recovered=1, skipped=0, total=3
    )


def test_a_failed_handler_leaves_the_failure() -> None:
    definition = parse_definition(HANDLED, format="yaml")
    d = decide(definition, {"extract": "failed", "fallback": "failed"})
    assert skipped(d) == {"load": "upstream 'extract' failed (all_success)"}
    assert d.final == RunOutcome(
        status="failed", succeeded=0, failed=2, recovered=0, skipped=1, total=3
    )


def test_handlers_can_have_handlers_and_share_steps() -> None:
    steps = (
        DagStep(id="a", on_error="h"),
        DagStep(id="b", on_error="h"),
        DagStep(id="after", depends_on=("a",)),
        DagStep(id="h", on_error="last_resort"),
        DagStep(id="last_resort"),
    )
    definition = validate_definition(DagDefinition(name="h", steps=steps))
    assert schedule_order(definition) == ["a", "b", "h", "last_resort", "after"]
    d = decide(definition, {"a": "failed", "b": "running"})
    assert d == Decision()  # h waits for every step it handles
    states, final, _ = run_to_end(definition, {"a": "failed", "h": "failed"})
    assert states == {
        "a": "failed",
        "b": "succeeded",
        "h": "failed",
        "last_resort": "succeeded",
        "after": "succeeded",
    }
    assert final.status == "succeeded" and final.recovered == 2


def test_circular_handler_waits_are_rejected() -> None:
    steps = (DagStep(id="a", on_error="h"), DagStep(id="h", depends_on=("a",)))
    definition = validate_definition(DagDefinition(name="c", steps=steps))
    with pytest.raises(ValueError, match="circular waits"):
        decide(definition, {})


# --- parallelism --------------------------------------------------------------------------

WIDE = DagDefinition(
    name="wide",
    parallelism=2,
    steps=(*(DagStep(id=f"s{i}") for i in range(5)), DagStep(id="z", depends_on=("s4",))),
)


def test_parallelism_caps_start_in_declaration_order() -> None:
    assert decide(WIDE, {}).start == ("s0", "s1")
    assert decide(WIDE, {}, parallelism=3).start == ("s0", "s1", "s2")
    assert decide(WIDE, {"s0": "running"}).start == ("s1",)
    assert decide(WIDE, {"s0": "running"}, running=1).start == ("s1",)  # not counted twice
    assert decide(WIDE, {}, running=2).start == ()
    assert decide(WIDE, {}, running=5).start == ()
    assert decide(WIDE, {}, parallelism=None).start == ("s0", "s1")  # the definition's limit
    unlimited = DagDefinition(name="u", steps=WIDE.steps)
    assert decide(unlimited, {}).start == ("s0", "s1", "s2", "s3", "s4")
    _, final, batches = run_to_end(WIDE, {})
    assert batches == [("s0", "s1"), ("s2", "s3"), ("s4",), ("z",)]
    assert final.status == "succeeded"
    with pytest.raises(ValueError, match="parallelism"):
        decide(WIDE, {}, parallelism=0)


def test_skips_are_not_capped() -> None:
    steps = (DagStep(id="a"), *(DagStep(id=f"d{i}", depends_on=("a",)) for i in range(4)))
    d = decide(DagDefinition(name="s", steps=steps), {"a": "failed"}, parallelism=1)
    assert [s.step for s in d.skip] == ["d0", "d1", "d2", "d3"]
    assert d.final is not None and d.final.status == "failed"


# --- determinism and input checks ---------------------------------------------------------


def test_same_states_same_decision() -> None:
    etl = load_definition(EXAMPLES / "etl.yaml")
    states: dict[str, StepStatus] = {"fetch_from_api": "failed", "fetch_from_db": "succeeded"}
    first = decide(etl, states, parallelism=1)
    shuffled = list(states.items())
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert decide(etl, dict(shuffled), parallelism=1) == first
    assert first == Decision(
        start=("transform_db_data",),
        skip=(Skip("transform_api_data", "upstream 'fetch_from_api' failed (all_success)"),),
    )


def test_schedule_order_is_topological_order_without_handlers() -> None:
    for name in ("etl.yaml", "deploy.yaml", "batch.yaml", "etl_pipeline.json"):
        definition = load_definition(EXAMPLES / name)
        assert schedule_order(definition) == topological_order(definition)


def test_bad_inputs() -> None:
    etl = load_definition(EXAMPLES / "etl.yaml")
    with pytest.raises(ValueError, match="unknown step 'nope'"):
        decide(etl, {"nope": "succeeded"})
    with pytest.raises(ValueError, match="unknown status 'done'"):
        decide(etl, {"fetch_from_db": "done"})  # type: ignore[dict-item]


# --- nothing hangs ------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> DagDefinition:
    n = draw(st.integers(1, 9))
    steps: list[DagStep] = []
    for i in range(n):
        picked = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        deps = tuple(f"s{j}" for j in sorted(picked))
        rule = draw(st.sampled_from(RULES))
        min_success = None
        if rule == "min_success":
            if deps:
                min_success = draw(st.integers(1, len(deps)))
            else:
                rule = "all_success"
        on_error = None
        if i < n - 1 and draw(st.integers(0, 3)) == 0:
            on_error = f"s{draw(st.integers(i + 1, n - 1))}"
        condition = "x > 1" if draw(st.integers(0, 4)) == 0 else None
        steps.append(
            DagStep(
                id=f"s{i}",
                depends_on=deps,
                trigger_rule=rule,
                min_success=min_success,
                on_error=on_error,
                condition=condition,
            )
        )
    definition = validate_definition(
        DagDefinition(
            name="random", steps=tuple(steps), parallelism=draw(st.none() | st.integers(1, 3))
        )
    )
    try:
        schedule_order(definition)
    except ValueError:  # circular handler waits: drop the handlers instead
        plain = tuple(msgspec.structs.replace(s, on_error=None) for s in definition.steps)
        definition = msgspec.structs.replace(definition, steps=plain)
    return definition


@settings(max_examples=300, deadline=None)
@given(definition=dags(), data=st.data())
def test_nothing_hangs(definition: DagDefinition, data: st.DataObject) -> None:
    states: dict[str, StepStatus] = {}
    gates: dict[str, bool] = {}
    started: set[str] = set()
    limit = definition.parallelism
    for _ in range(6 * len(definition.steps) + 6):
        decision = decide(definition, states, gates=gates)
        assert decide(definition, dict(reversed(states.items())), gates=gates) == decision
        if decision.final is not None:
            assert decision.start == () and decision.evaluate == ()
            states.update(dict.fromkeys((skip.step for skip in decision.skip), "skipped"))
            break
        assert decision.start or decision.skip or decision.evaluate or "running" in states.values()
        for skip in decision.skip:
            assert states.get(skip.step, "pending") == "pending"
            states[skip.step] = "skipped"
        for step_id in decision.evaluate:
            gates[step_id] = data.draw(st.booleans())
        for step_id in decision.start:
            assert step_id not in started
            started.add(step_id)
            states[step_id] = "running"
        running = [s for s, state in states.items() if state == "running"]
        assert limit is None or len(running) <= limit
        # Finish a random non-empty subset of the running steps, each with a random outcome.
        if running:
            done = data.draw(st.sets(st.sampled_from(running), min_size=1))
            for step_id in sorted(done):
                states[step_id] = data.draw(st.sampled_from(["succeeded", "failed"]))
    else:
        raise AssertionError(f"no final outcome: {states}")
    final = decision.final
    assert all(states.get(s.id) in {"succeeded", "failed", "skipped"} for s in definition.steps)
    assert final.total == len(definition.steps)
    assert final.succeeded + final.failed + final.skipped == final.total
    assert final.recovered <= final.failed
    if final.failed == final.recovered:
        assert final.status == "succeeded"
    else:
        assert final.status == ("partial" if final.succeeded else "failed")


@settings(max_examples=300, deadline=None)
@given(definition=dags(), data=st.data())
def test_incremental_decisions_equal_full_ones(
    definition: DagDefinition, data: st.DataObject
) -> None:
    """The executor's decide_some(), fed only the steps whose waits changed, decides exactly
    what a full decide(cap=False) over every step decides, pass after pass."""
    scheduler = Scheduler(definition)
    status: dict[str, str] = dict.fromkeys(scheduler.order, "pending")
    finished = 0
    dirty = set(scheduler.order)
    gates: dict[str, bool] = {}

    def mark(step_id: str, new: str) -> None:
        nonlocal finished
        if new in FINISHED and status[step_id] not in FINISHED:
            finished += 1
            dirty.update(scheduler.dependents[step_id])
        status[step_id] = new

    for _ in range(6 * len(definition.steps) + 6):
        full = scheduler.decide(
            {s: v for s, v in status.items() if v != "pending"},  # type: ignore[misc]
            gates=gates,
            cap=False,
        )
        candidates, dirty = dirty, set()
        some = scheduler.decide_some(status, candidates, gates, finished)
        assert some == full
        for skip in some.skip:
            status[skip.step] = "pending"  # decide_some() marked it; count it like the executor
            mark(skip.step, "skipped")
        for step_id in some.evaluate:
            gates[step_id] = data.draw(st.booleans())
            dirty.add(step_id)
        for step_id in some.start:
            mark(step_id, "running")
        if some.final is not None:
            break
        running = [s for s, v in status.items() if v == "running"]
        if running:
            for step_id in sorted(data.draw(st.sets(st.sampled_from(running), min_size=1))):
                mark(step_id, data.draw(st.sampled_from(["succeeded", "failed"])))
    else:
        raise AssertionError(f"no final outcome: {status}")
