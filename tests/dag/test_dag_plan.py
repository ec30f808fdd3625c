"""Dry-run plans (order, levels), fingerprints, and the model as the Python builder fills it."""

from __future__ import annotations

from pathlib import Path

import pytest

import durable.dag
from durable.dag import (
    DagDefinition,
    DagDefinitionError,
    DagStep,
    Location,
    Loop,
    load_definition,
    parallel_levels,
    parse_definition,
    topological_order,
    validate_definition,
)

EXAMPLES = Path(__file__).parent / "examples"


def test_etl_order_and_levels() -> None:
    d = load_definition(EXAMPLES / "etl.yaml")
    assert topological_order(d) == [
        "fetch_from_api",
        "fetch_from_db",
        "transform_api_data",
        "transform_db_data",
        "validate_and_merge",
        "load_warehouse",
        "send_report",
    ]
    assert parallel_levels(d) == [
        ["fetch_from_api", "fetch_from_db"],
        ["transform_api_data", "transform_db_data"],
        ["validate_and_merge"],
        ["load_warehouse"],
        ["send_report"],
    ]


def test_ties_break_by_declaration_order() -> None:
    # Declared out of dependency order: `late` is ready first but declared last.
    d = validate_definition(
        DagDefinition(
            name="ties",
            steps=(
                DagStep(id="b", depends_on=("late",)),
                DagStep(id="a"),
                DagStep(id="c", depends_on=("a",)),
                DagStep(id="late"),
            ),
        )
    )
    assert topological_order(d) == ["a", "c", "late", "b"]
    assert parallel_levels(d) == [["a", "late"], ["b", "c"]]


def test_model_features_from_004_as_a_builder_would_fill_them() -> None:
    d = validate_definition(
        DagDefinition(
            name="orders",
            steps=(
                DagStep(id="pay", kind="python", function="shop.payments:charge"),
                DagStep(
                    id="review",
                    kind="script",
                    script="review.sh",
                    trigger_rule="one_failed",
                    depends_on=("pay",),
                ),
                DagStep(
                    id="crm",
                    kind="action",
                    action="crm.update",
                    depends_on=("pay",),
                    on_error="review",
                ),
                DagStep(id="billing", kind="javascript", code="return 1", depends_on=("pay",)),
                DagStep(
                    id="poll",
                    kind="action",
                    action="http.request",
                    depends_on=("pay",),
                    loop=Loop(until="{{ result.status == 'done' }}", max_iterations=10),
                ),
                DagStep(
                    id="fulfil",
                    depends_on=("crm", "billing", "poll"),
                    trigger_rule="min_success",
                    min_success=2,
                ),
            ),
        ),
        known_actions={"crm.update"},
    )
    assert d.step("poll").loop == Loop(until="result.status == 'done'", max_iterations=10)
    assert parallel_levels(d) == [["pay"], ["review", "crm", "billing", "poll"], ["fulfil"]]


def test_builder_errors_have_no_file_but_still_a_path() -> None:
    with pytest.raises(DagDefinitionError) as info:
        validate_definition(
            DagDefinition(
                name="x",
                steps=(DagStep(id="a", depends_on=("b",), location=Location(path="steps[0]")),),
            )
        )
    assert info.value.file is None and info.value.line is None
    assert info.value.path == "steps[0]"
    assert str(info.value).startswith("<definition>: step 'a' depends on unknown step 'b'")


YAML_A = """\
name: fp
version: "2"
tasks:
  a:
    script: a.py
    environment: {X: "1", Y: "2"}
  b:
    depends_on: [a]
    script: b.py
    condition: '{{ a.exit_code == 0 }}'
"""

# The same definition: keys reordered, flow style, comments, other spacing and file name.
YAML_B = """\
# comment
tasks:
  a: {environment: {Y: "2", X: "1"},   script: a.py}
  b:
    condition: "{{a.exit_code == 0}}"
    script: b.py
    depends_on:
      - a
version: "2"
name: fp
"""


def test_fingerprint_ignores_layout_and_location() -> None:
    a = parse_definition(YAML_A, "one/a.yaml")
    b = parse_definition(YAML_B, "two/b.yaml")
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("script: b.py", "script: b2.py"),
        ('version: "2"', 'version: "3"'),
        ("depends_on: [a]", "depends_on: []"),
        ('Y: "2"', 'Y: "3"'),
        ("== 0", "!= 0"),
    ],
)
def test_fingerprint_changes_with_a_real_change(old: str, new: str) -> None:
    changed = YAML_A.replace(old, new)
    assert changed != YAML_A
    assert parse_definition(changed).fingerprint() != parse_definition(YAML_A).fingerprint()


def test_json_fingerprint_ignores_whitespace_and_key_order() -> None:
    one = '{"id": "w", "steps": [{"id": "a", "action": "delay", "params": {"duration": 5}}]}'
    two = (
        '{\n  "steps": [\n    {"params": {"duration": 5},\n "action": "delay", "id": "a"}\n'
        '  ],\n  "id": "w"\n}'
    )
    assert parse_definition(one, "x.json").fingerprint() == parse_definition(two).fingerprint()


def test_public_surface() -> None:
    assert set(durable.dag.__all__) == {
        "BUILTIN_ACTIONS", "DagDefinition", "DagDefinitionError", "DagStep", "Decision",
        "FieldSpot", "Location", "Loop", "Notification", "Notifications", "Problem",
        "Resources", "RetryPolicy", "RunOutcome", "RunStatus", "Skip", "StepStatus",
        "Webhooks", "decide", "expression_of", "find_cycle", "load_definition",
        "parallel_levels", "parse_definition", "parse_json", "parse_yaml", "schedule_order",
        "template_errors", "topological_order", "validate_definition",
        "ScriptResult", "run_script", "DagBuilder", "DagProgram", "DagResult",
        "InstanceReport", "StepRef", "StepReport",
        "body_definition", "loop_owners", "top_level", "CodeStep", "code_steps",
        "DeliveryReport",
    }  # fmt: skip
    assert all(hasattr(durable.dag, name) for name in durable.dag.__all__)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (DagStep(id="a", kind="action"), "a action step sets exactly `action`"),
        (DagStep(id="a", kind="noop", script="x.sh"), "sets none of script/code/function/action"),
        (DagStep(id="a", kind="python", function="no_colon"), "must be 'module:function'"),
    ],
)
def test_builder_kind_must_match_its_fields(step: DagStep, expected: str) -> None:
    with pytest.raises(DagDefinitionError, match=expected):
        validate_definition(DagDefinition(name="k", steps=(step,)))
