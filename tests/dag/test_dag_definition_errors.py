"""Definition errors a new user meets in the first hour: each at the right line, all at once,
under the right label."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable.dag import DagDefinitionError, load_definition


def problems(tmp_path: Path, name: str, text: str) -> DagDefinitionError:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DagDefinitionError) as info:
        load_definition(path)
    assert all(p.file == str(path) for p in info.value.problems)
    return info.value


@pytest.mark.parametrize("quote", ['"', "'"])
def test_an_unclosed_quote_is_reported_where_it_opens(tmp_path: Path, quote: str) -> None:
    text = (
        "name: q\n"
        "tasks:\n"
        "  a:\n"
        f"    script: {quote}echo hi\n"  # line 4: never closed
        "  b:\n"
        "    script: echo b\n"
        "    depends_on: [a]\n"
    )
    err = problems(tmp_path, "quote.yaml", text)
    assert err.line == 4
    assert "quoted string opened at line 4 is never closed" in err.message


def test_a_quote_closed_by_a_later_one_points_back_at_it(tmp_path: Path) -> None:
    text = (
        "name: q\n"
        "tasks:\n"
        "  a:\n"
        '    script: "echo hi\n'  # line 4: the closing quote is missing
        "  b:\n"
        '    script: "echo b"\n'  # line 6: the parser only notices here
    )
    err = problems(tmp_path, "quote.yaml", text)
    assert err.line == 6
    assert "the quoted string at line 4 runs on to line 6" in err.message
    assert "closing quote missing" in err.message


def test_every_unknown_key_is_reported_at_once_with_a_suggestion(tmp_path: Path) -> None:
    text = (
        "name: u\n"
        "tasks:\n"
        "  a:\n"
        "    scrpit: echo hi\n"  # 4
        "    dependson: [b]\n"  # 5
        "  b:\n"
        "    script: echo\n"
        "    retires: 3\n"  # 8
        "    loop:\n"
        "      until: 'true'\n"
        "      max_iteration: 3\n"  # 11
        "notifcations: {}\n"  # 12
    )
    err = problems(tmp_path, "unknown.yaml", text)
    found = [(p.line, p.path, p.message) for p in err.problems]
    assert found == [
        (4, "$.tasks.a.scrpit", "unknown key 'scrpit' (did you mean 'script'?)"),
        (5, "$.tasks.a.dependson", "unknown key 'dependson' (did you mean 'depends_on'?)"),
        (8, "$.tasks.b.retires", "unknown key 'retires' (did you mean 'retries'?)"),
        (
            11,
            "$.tasks.b.loop.max_iteration",
            "unknown key 'max_iteration' (did you mean 'max_iterations'?)",
        ),
        (12, "$.notifcations", "unknown key 'notifcations' (did you mean 'notifications'?)"),
    ], found
    assert not any("wrong type" in p.message for p in err.problems)


def test_unknown_keys_and_wrong_types_come_in_one_pass(tmp_path: Path) -> None:
    text = (
        "name: u\n"
        "tasks:\n"
        "  a:\n"
        "    script: echo\n"
        "    retries: three\n"  # 5: a wrong type
        "  b:\n"
        "    scirpt: echo\n"  # 7: an unknown key
    )
    err = problems(tmp_path, "mixed.yaml", text)
    assert [p.line for p in err.problems] == [5, 7]
    assert err.problems[0].message.startswith("wrong type: Expected `int`, got `str`")
    assert err.problems[1].message.startswith("unknown key 'scirpt'")


def test_every_unknown_key_in_json(tmp_path: Path) -> None:
    text = """{"id": "w", "nmae": "x",
 "steps": [
  {"id": "a", "scirpt": "echo",
   "retryPolicy": {"maxAtempts": 2}},
  {"id": "b", "dependencis": ["a"]}
 ]}"""
    err = problems(tmp_path, "unknown.json", text)
    found = [(p.line, p.message) for p in err.problems]
    assert found == [
        (1, "unknown key 'nmae' (did you mean 'name'?)"),
        (3, "unknown key 'scirpt' (did you mean 'script'?)"),
        (4, "unknown key 'maxAtempts' (did you mean 'maxAttempts'?)"),
        (5, "unknown key 'dependencis' (did you mean 'dependencies'?)"),
    ], found


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("", "a delay step needs params.duration"),
        ("    params: {}\n", "a delay step needs params.duration"),
        ("    params:\n      duration: -5\n", "params.duration must be a number of milliseconds"),
        ("    params:\n      duration: soon\n", "params.duration must be a number of milliseconds"),
    ],
)
def test_a_delay_without_a_duration_is_invalid(tmp_path: Path, params: str, expected: str) -> None:
    text = "name: d\ntasks:\n  wait:\n    action: delay\n" + params
    err = problems(tmp_path, "delay.yaml", text)
    assert expected in err.message, err.message
    assert err.line == (4 if params in ("", "    params: {}\n") else 6)


@pytest.mark.parametrize(
    "params",
    [
        "    params:\n      duration: 100\n",
        "    params:\n      ms: 0\n",
        "    params:\n      duration: '{{ input.wait }}'\n",
    ],
)
def test_a_delay_with_a_duration_is_valid(tmp_path: Path, params: str) -> None:
    path = tmp_path / "delay.yaml"
    path.write_text("name: d\ntasks:\n  wait:\n    action: delay\n" + params)
    assert load_definition(path).steps[0].action == "delay"


def test_keys_beside_a_workflow_key_are_unknown(tmp_path: Path) -> None:
    text = (
        "workflow:\n"
        "  name: w\n"
        "  tasks:\n"
        "    a:\n"
        "      script: echo\n"
        "notifications: {}\n"  # 6: belongs under `workflow:`
    )
    err = problems(tmp_path, "wrapped.yaml", text)
    assert [(p.line, p.path) for p in err.problems] == [(6, "$.notifications")]
    assert "unknown key 'notifications' beside `workflow:`" in err.message
