"""Loops over a sub-graph (`loop.body`): each iteration runs the body's steps as a graph of
their own, `until` is checked after the whole iteration, what the body steps did in the last
iteration is what the next one (and the rest of the run) sees, and the run's log records every
iteration as the loop's `id#n` instance and every body step as `step#n`."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from loopback import Seen, Web

from durable.dag import DagDefinitionError, DagResult, parse_definition
from durable.dag._replay import check_dag_log
from sdk import App

pytestmark = pytest.mark.asyncio


async def run_yaml(
    tmp_path: Path, text: str, input: Any = None, *, app: App | None = None
) -> tuple[DagResult, list[Any]]:
    app = app or App(f"sqlite:///{tmp_path / 'runs.db'}")
    definition = parse_definition(textwrap.dedent(text), str(tmp_path / "wf.yaml"))
    async with app:
        name = app.register_dag(definition)
        result = await app.run_dag(name, input, timeout=120)
        events = await app.events(result.run_id)
    return result, events


def started(events: list[Any]) -> list[str]:
    return [e.event.name for e in events if e.type == "StepStarted"]


PAGINATE = """
    name: paginate
    tasks:
      setup:
        code: "return {per_page: 2}"
      pages:
        depends_on: [setup]
        loop:
          body: [fetch, keep]
          until: "{{ fetch.result.body.next == null }}"
          max_iterations: 10
      fetch:
        action: http.request
        params:
          url: "{{ input.base }}/items?page={{ iteration }}&per_page={{ deps.setup.per_page }}"
      keep:
        depends_on: [fetch]
        code: |
          const before = params.before || [];
          return before.concat(deps.fetch.body.items);
        params:
          before: "{{ steps.keep ? steps.keep.result : null }}"
      report:
        depends_on: [pages]
        code: "return {count: deps.pages.length, items: deps.pages}"
"""


async def test_a_body_runs_per_iteration_until_its_condition_holds(
    tmp_path: Path, web: Web
) -> None:
    items = ["a", "b", "c", "d", "e"]

    def page(request: Seen) -> dict[str, Any]:
        query = dict(parse_qsl(urlsplit(request.path).query))
        n, per = int(query["page"]), int(query["per_page"])
        chunk = items[(n - 1) * per : n * per]
        return {"items": chunk, "next": n + 1 if n * per < len(items) else None}

    web.compute("/items", page)
    result, events = await run_yaml(tmp_path, PAGINATE, {"base": web.url})

    assert result.status == "succeeded", result.error
    # Every page was fetched once, in order, and the body's steps ran in dependency order.
    pages_asked = [dict(parse_qsl(urlsplit(r.path).query)) for r in web.seen("/items")]
    assert pages_asked == [{"page": str(n), "per_page": "2"} for n in (1, 2, 3)]
    assert started(events) == [
        "setup",
        "pages#1",
        "fetch#1",
        "keep#1",
        "pages#2",
        "fetch#2",
        "keep#2",
        "pages#3",
        "fetch#3",
        "keep#3",
        "report",
    ]
    # The next iteration saw the last one's `keep`, so the pages accumulate.
    assert result.steps["report"].result == {"count": 5, "items": items}
    pages = result.steps["pages"]
    assert pages.status == "succeeded" and pages.result == items
    assert [i.name for i in pages.instances] == ["pages#1", "pages#2", "pages#3"]
    assert [i.result for i in pages.instances] == [items[:2], items[:4], items]
    keep = result.steps["keep"]
    assert keep.status == "succeeded" and keep.result == items
    assert [i.iteration for i in keep.instances] == [1, 2, 3]
    # A loop counts as one step: setup, pages, report.
    assert (result.completed_count, result.total_count) == (3, 3)
    assert result.output == {"count": 5, "items": items}


async def test_max_iterations_ends_a_body_loop(tmp_path: Path) -> None:
    result, events = await run_yaml(
        tmp_path,
        """
        name: bounded
        tasks:
          spin:
            loop: {body: [one, two], until: "false", max_iterations: 3}
          one:
            code: "return ctx.iteration"
          two:
            code: "return deps.one * 10"
            depends_on: [one]
        """,
    )
    assert result.status == "succeeded"
    assert started(events).count("spin#3") == 1 and "spin#4" not in started(events)
    assert result.steps["spin"].result == 30
    assert result.steps["two"].result == 30


async def test_a_failing_body_step_fails_its_iteration_and_the_loop(tmp_path: Path) -> None:
    result, events = await run_yaml(
        tmp_path,
        """
        name: failing
        tasks:
          retrying:
            loop: {body: [work, check, tidy], until: "false", max_iterations: 5}
          work:
            script: 'if [ "$N" = 2 ]; then echo "page $N broke" >&2; exit 4; fi; echo ok'
            environment: {N: "{{ iteration }}"}
          check:
            depends_on: [work]
            script: "echo checked"
          tidy:
            depends_on: [work]
            run_always: true
            script: "echo tidied"
          after:
            depends_on: [retrying]
            script: "echo never"
          finally:
            depends_on: [retrying]
            run_always: true
            script: "echo finally"
        """,
    )
    names = started(events)
    # Iteration 2's failure ends the loop: no third iteration; inside the iteration the
    # trigger rules still hold (check skipped, tidy ran).
    assert "retrying#3" not in names and "work#3" not in names
    assert "check#2" not in names and "tidy#2" in names
    skipped = [e.event.name for e in events if e.type == "StepSkipped"]
    assert skipped == ["check#2", "after"]
    loop = result.steps["retrying"]
    assert loop.status == "failed"
    assert loop.error is not None and "iteration 2" in loop.error and "work" in loop.error
    assert "page 2 broke" in loop.error
    assert result.steps["work"].status == "failed"
    details = result.steps["work"].details
    assert details is not None
    assert (details["exit_code"], details["stderr"]) == (4, "page 2 broke\n")
    assert result.steps["check"].status == "skipped"
    assert result.steps["after"].status == "skipped"
    assert result.steps["finally"].status == "succeeded"
    assert result.status == "partial"
    assert (result.completed_count, result.failed_count, result.skipped_count) == (1, 1, 1)


async def test_conditions_inside_a_body_see_the_iteration(tmp_path: Path) -> None:
    result, events = await run_yaml(
        tmp_path,
        """
        name: odd_even
        tasks:
          each:
            loop: {body: [n, odd], until: "iteration >= 4", max_iterations: 9}
          n:
            code: "return ctx.iteration"
          odd:
            depends_on: [n]
            condition: "{{ n.result % 2 == 1 }}"
            code: "return 'odd ' + deps.n"
        """,
    )
    assert result.status == "succeeded"
    names = started(events)
    assert [n for n in names if n.startswith("odd")] == ["odd#1", "odd#3"]
    skipped = [e.event.name for e in events if e.type == "StepSkipped"]
    assert skipped == ["odd#2", "odd#4"]
    # The body's last iteration skipped `odd`: that is what the run reports for it.
    assert result.steps["odd"].status == "skipped"
    assert [i.status for i in result.steps["odd"].instances] == [
        "succeeded",
        "skipped",
        "succeeded",
        "skipped",
    ]
    # Each iteration's result is its body's sink's: `odd`'s, null where it was skipped.
    each = result.steps["each"].instances
    assert [i.result for i in each] == ["odd 1", None, "odd 3", None]


async def test_a_body_loop_replays_against_its_definition(tmp_path: Path) -> None:
    text = """
        name: replayed
        tasks:
          first:
            code: "return 1"
          repeat:
            depends_on: [first]
            loop: {body: [a, b], until: "iteration >= 2", max_iterations: 5}
          a:
            code: "return ctx.iteration"
          b:
            depends_on: [a]
            code: "return deps.a + 1"
        """
    result, events = await run_yaml(tmp_path, text)
    assert result.status == "succeeded"
    definition = parse_definition(textwrap.dedent(text), "wf.yaml")
    assert check_dag_log(definition, result.run_id, events) == (0, None)

    # The same log against a definition whose body lost `b`: b#1 is not the body's any more.
    changed = parse_definition(
        textwrap.dedent(text)
        .replace("body: [a, b]", "body: [a]")
        .replace("depends_on: [a]\n", "depends_on: [repeat]\n"),
        "wf.yaml",
    )
    seq, why = check_dag_log(changed, result.run_id, events)
    b1 = next(e for e in events if e.type == "StepStarted" and e.event.name == "b#1")
    assert seq == b1.seq
    assert why is not None and "b" in why


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (
            "l: {loop: {body: [x, nope], until: 'true', max_iterations: 2}}\nx: {code: 'return 1'}",
            "loop.body names unknown step 'nope'",
        ),
        (
            "l: {script: 'true', loop: {body: [x], until: 'true', max_iterations: 2}}\n"
            "x: {code: 'return 1'}",
            "does no work itself",
        ),
        (
            "l: {loop: {body: [x], until: 'true', max_iterations: 2}}\n"
            "x: {code: 'return 1'}\n"
            "y: {code: 'return 2', depends_on: [x]}",
            "step 'y' depends on 'x', in the body of loop 'l': depend on the loop step 'l'",
        ),
        (
            "s: {code: 'return 0'}\n"
            "l: {loop: {body: [x], until: 'true', max_iterations: 2}}\n"
            "x: {code: 'return 1', depends_on: [s]}",
            "make loop 'l' depend on 's'",
        ),
        (
            "l: {loop: {body: [x], until: 'true', max_iterations: 2}}\n"
            "m: {loop: {body: [x], until: 'true', max_iterations: 2}}\n"
            "x: {code: 'return 1'}",
            "step 'x' is already in the body of loop 'l'",
        ),
        (
            "l: {loop: {body: [x], until: 'true', max_iterations: 2}}\n"
            "x: {code: 'return 1', matrix: {k: [1, 2]}}",
            "cannot have a matrix itself",
        ),
        (
            "l: {loop: {body: [x], until: 'true', max_iterations: 2}}\n"
            "x: {code: 'return 1', on_error: h}\n"
            "h: {code: 'return 2'}",
            "falls back to 'h', which is not in the same loop body",
        ),
    ],
)
async def test_loop_body_mistakes_are_precise(tasks: str, message: str) -> None:
    text = "name: bad\ntasks:\n" + textwrap.indent(tasks, "  ")
    with pytest.raises(DagDefinitionError) as caught:
        parse_definition(text, "wf.yaml")
    assert message in str(caught.value)
    assert "wf.yaml:" in str(caught.value)


async def test_the_python_builder_declares_a_loop_over_a_body(tmp_path: Path) -> None:
    seen: list[int] = []

    async def record(n: int) -> int:
        seen.append(n)
        return n * n

    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    flow = app.dag("squares", api={"record": record})

    @flow.do("square")
    def square() -> None:
        """return await record(ctx.iteration);"""

    @flow.do("label", depends=[square])
    def label() -> None:
        """return `${ctx.iteration}^2=${deps.square}`;"""

    rounds = flow.loop("rounds", [square, label], until="iteration >= 3", max_iterations=9)
    flow.js("summary", "return deps.rounds.toUpperCase();", depends=[rounds])

    async with app:
        name = app.register_dag(flow)
        result = await app.run_dag(name, None, timeout=60)
    assert result.status == "succeeded", result.error
    assert seen == [1, 2, 3]
    assert [i.result for i in result.steps["rounds"].instances] == ["1^2=1", "2^2=4", "3^2=9"]
    assert result.output == "3^2=9"


async def test_a_builder_loop_body_must_stay_inside(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    flow = app.dag("leaky")
    inner = flow.js("inner", "return 1")
    flow.loop("rounds", [inner], until="true", max_iterations=2)
    flow.js("outside", "return 2", depends=[inner])
    with pytest.raises(DagDefinitionError) as caught:
        flow.definition()
    assert "depend on the loop step 'rounds' instead" in str(caught.value)
    assert "test_dag_loop_body.py" in str(caught.value)
