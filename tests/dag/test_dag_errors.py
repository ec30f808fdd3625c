"""Every kind of definition error names the problem, the file and the line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from durable._errors import WorkflowDefinitionError
from durable.dag import DagDefinitionError, load_definition


def error_for(
    tmp_path: Path, name: str, text: str, known_actions: Iterable[str] = ()
) -> DagDefinitionError:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DagDefinitionError) as info:
        load_definition(path, known_actions=known_actions)
    err = info.value
    assert err.file == str(path)
    assert str(path) in str(err)
    return err


def test_cycle_prints_the_cycle(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "cycle.yaml",
        """\
name: c
tasks:
  start:
    script: s.py
  a:
    script: a.py
    depends_on: [start, c]
  b:
    script: b.py
    depends_on: [a]
  c:
    script: c.py
    depends_on: [b]
""",
    )
    assert "dependency cycle: a → b → c → a" in err.message
    assert err.line == 10  # where b waits for a, the first link of the cycle
    assert isinstance(err, WorkflowDefinitionError)


def test_cycle_in_json(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "cycle.json",
        """{"id": "w", "steps": [
  {"id": "x", "dependencies": ["y"]},
  {"id": "y", "dependencies": ["x"]}
]}""",
    )
    assert "x → y → x" in err.message
    assert err.line == 3


def test_unknown_dependency_suggests_a_close_name(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "dep.yaml",
        """\
name: d
tasks:
  extract:
    script: e.py
  transform:
    script: t.py
    depends_on:
      - extract
      - extrakt
""",
    )
    assert "step 'transform' depends on unknown step 'extrakt'" in err.message
    assert "did you mean 'extract'?" in err.message
    assert err.line == 9
    assert err.path == "$.tasks.transform.depends_on[1]"


def test_duplicate_task_key_in_yaml(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "dup.yaml",
        "name: d\ntasks:\n  a:\n    script: a.py\n  b:\n    script: b.py\n  a:\n    script: c.py\n",
    )
    assert "duplicate step id 'a' (first declared at line 3)" in err.message
    assert err.line == 7


def test_duplicate_step_id_in_json(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "dup.json",
        '{"id": "w", "steps": [\n  {"id": "a"},\n  {"id": "b"},\n  {"id": "a"}\n]}',
    )
    assert "duplicate step id 'a' (first declared at line 2)" in err.message
    assert err.line == 4


UNKNOWN_ACTION = """{
  "id": "w",
  "steps": [
    {"id": "call", "action": "http.requst", "params": {"url": "http://x"}},
    {"id": "mine", "action": "crm.update", "dependencies": ["call"]}
  ]
}"""


def test_unknown_action(tmp_path: Path) -> None:
    err = error_for(tmp_path, "act.json", UNKNOWN_ACTION, known_actions={"crm.update"})
    assert "step 'call' uses unknown action 'http.requst'" in err.message
    assert "did you mean 'http.request'?" in err.message
    assert err.line == 4
    assert len(err.problems) == 1  # the user-registered crm.update is known


def test_unregistered_user_action_is_unknown(tmp_path: Path) -> None:
    err = error_for(tmp_path, "act.json", UNKNOWN_ACTION)
    assert [p.line for p in err.problems] == [4, 5]
    assert "'crm.update'" in err.problems[1].message


@pytest.mark.parametrize(
    ("field", "value", "expected", "line"),
    [
        ("condition", "'{{ a.exit_code != 0 }'", "bad condition expression: unclosed '{{'", 7),
        ("skip_if", "'{{ a.failed }} and {{ b.failed }}'", "must be one expression", 7),
        ("skip_if", "'  '", "empty expression", 7),
        ("environment", "\n      X: '{{ }}'", "bad template in environment.X: empty template", 8),
        ("params", "\n      url: 'http://h/{{ id }}}}'", "'}}' without a matching '{{'", 8),
    ],
)
def test_bad_expressions(tmp_path: Path, field: str, value: str, expected: str, line: int) -> None:
    text = f"""\
name: e
tasks:
  a:
    script: a.py
  b:
    script: b.py
    {field}: {value}
"""
    err = error_for(tmp_path, "expr.yaml", text)
    assert expected in err.message
    assert err.line == line


def test_wrong_type_in_yaml(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "type.yaml",
        "name: t\ntasks:\n  a:\n    script: a.py\n    retries: three\n",
    )
    assert "wrong type: Expected `int`, got `str`" in err.message
    assert err.path == "$.tasks.a.retries"
    assert err.line == 5


def test_wrong_type_in_json(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "type.json",
        """{"id": "w", "steps": [
  {"id": "a", "action": "delay",
   "retryPolicy": {
     "maxAttempts": "5"
   }}
]}""",
    )
    assert "Expected `int`, got `str`" in err.message
    assert err.path == "$.steps[0].retryPolicy.maxAttempts"
    assert err.line == 4


def test_unknown_field_suggests_the_real_one(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "typo.yaml",
        "name: t\ntasks:\n  a:\n    script: a.py\n  b:\n    script: b.py\n    depend_on: [a]\n",
    )
    assert "unknown key 'depend_on'" in err.message
    assert "did you mean 'depends_on'?" in err.message
    assert err.line == 7


def test_negative_number_is_out_of_range(tmp_path: Path) -> None:
    err = error_for(
        tmp_path, "neg.yaml", "name: t\ntasks:\n  a:\n    script: a.py\n    memory_mb: -5\n"
    )
    assert "Expected `int` >= 1" in err.message and err.line == 5


@pytest.mark.parametrize("n", [0, 3])
def test_min_success_out_of_range(tmp_path: Path, n: int) -> None:
    err = error_for(
        tmp_path,
        "min.json",
        f"""{{"id": "w", "steps": [
  {{"id": "crm"}}, {{"id": "billing"}},
  {{"id": "join", "dependencies": ["crm", "billing"],
   "triggerRule": "min_success",
   "minSuccess": {n}}}
]}}""",
    )
    assert f"min_success must be between 1 and its 2 dependencies, got {n}" in err.message
    assert err.line == 5


def test_fallback_to_unknown_step(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "fallback.yaml",
        """\
name: f
tasks:
  pay:
    script: pay.py
    on_error: manual_reveiw
  manual_review:
    script: review.py
""",
    )
    assert "step 'pay' falls back to unknown step 'manual_reveiw'" in err.message
    assert "did you mean 'manual_review'?" in err.message
    assert err.line == 5


def test_more_than_one_thing_to_run(tmp_path: Path) -> None:
    err = error_for(
        tmp_path, "two.yaml", "name: t\ntasks:\n  a:\n    script: a.py\n    action: delay\n"
    )
    assert "sets script and action" in err.message and err.line == 3


def test_notification_without_its_target(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "note.yaml",
        """\
name: n
tasks:
  a: {script: a.py}
notifications:
  on_failure:
    - type: pagerduty
      message: down
""",
    )
    assert "on_failure pagerduty notification needs `integration_key`" in err.message
    assert err.line == 6


@pytest.mark.parametrize(
    ("name", "text", "expected", "line"),
    [
        # The line of the `[` that is never closed, not the end of the file after it.
        ("bad.yaml", "name: x\ntasks:\n  a: [unclosed\n", "invalid YAML", 3),
        ("bad.json", '{"id": "w",\n "steps": [\n  {"id": "a",}\n]}', "invalid JSON", 3),
    ],
)
def test_syntax_errors(tmp_path: Path, name: str, text: str, expected: str, line: int) -> None:
    err = error_for(tmp_path, name, text)
    assert expected in err.message and err.line == line


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "many.yaml",
        """\
name: m
tasks:
  a:
    action: nope
  b:
    depends_on: [zzz]
    condition: '{{ }}'
""",
    )
    assert [p.line for p in err.problems] == [4, 6, 7]
    assert str(err).count("also:") == 2


def test_cycle_is_reported_alongside_other_problems(tmp_path: Path) -> None:
    err = error_for(
        tmp_path,
        "both.yaml",
        "name: b\ntasks:\n  a:\n    depends_on: [b, nope]\n  b:\n    depends_on: [a]\n",
    )
    assert "unknown step 'nope'" in err.problems[0].message and err.problems[0].line == 4
    assert "a → b → a" in err.problems[1].message and err.problems[1].line == 6


def test_recursive_yaml_alias_is_an_error_not_a_hang(tmp_path: Path) -> None:
    err = error_for(tmp_path, "alias.yaml", "name: r\ntasks:\n  a: &x\n    params: *x\n")
    assert "recursive YAML alias" in err.message and err.line == 4
