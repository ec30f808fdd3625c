"""DAG runs end to end on a real SQLite file: trigger rules, skips, conditions, branches,
loops, error handlers, matrix and run parallelism, results, and the event stream."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from durable import events
from durable.dag import DagResult, parse_definition
from sdk import App, RunFailed

pytestmark = pytest.mark.asyncio


async def run_yaml(
    tmp_path: Path, text: str, input: Any = None, *, app: App | None = None, **kw: Any
) -> DagResult:
    app = app or App(f"sqlite:///{tmp_path / 'runs.db'}")
    definition = parse_definition(
        textwrap.dedent(text), str(tmp_path / "wf.yaml"), known_actions=app.registry.actions
    )
    async with app:
        name = app.register_dag(definition)
        return await app.run_dag(name, input, timeout=120, **kw)


def statuses(result: DagResult) -> dict[str, str]:
    return {sid: r.status for sid, r in result.steps.items()}


async def test_failure_upstream_of_run_always_and_min_success(tmp_path: Path) -> None:
    result = await run_yaml(
        tmp_path,
        """
        name: partial
        tasks:
          ok1: {script: "echo one"}
          ok2: {script: "echo two"}
          bad: {script: "echo boom >&2; exit 3"}
          after_bad: {script: "echo never", depends_on: [bad]}
          after_after: {script: "echo never", depends_on: [after_bad]}
          cleanup: {script: "echo cleanup", depends_on: [bad, after_bad], run_always: true}
          quorum:
            script: "echo quorum"
            depends_on: [ok1, ok2, bad]
            trigger_rule: min_success
            min_success: 2
          strict_quorum:
            script: "echo strict"
            depends_on: [ok1, bad, after_bad]
            trigger_rule: min_success
            min_success: 2
        """,
    )
    assert statuses(result) == {
        "ok1": "succeeded",
        "ok2": "succeeded",
        "bad": "failed",
        "after_bad": "skipped",
        "after_after": "skipped",
        "cleanup": "succeeded",
        "quorum": "succeeded",
        "strict_quorum": "skipped",
    }
    assert result.status == "partial"
    assert (result.completed_count, result.failed_count, result.skipped_count) == (4, 1, 3)
    assert result.total_count == 8
    bad = result.steps["bad"]
    assert bad.details is not None and bad.details["exit_code"] == 3
    assert "boom" in (bad.error or "")
    assert "upstream 'bad' failed" in (result.steps["after_bad"].skip_reason or "")
    assert "needs 2" in (result.steps["strict_quorum"].skip_reason or "")
    assert result.steps["cleanup"].result["stdout"] == "cleanup\n"
    assert result.duration_seconds is not None and result.duration_seconds > 0


async def test_trigger_rules(tmp_path: Path) -> None:
    result = await run_yaml(
        tmp_path,
        """
        name: rules
        tasks:
          good: {script: "true"}
          bad: {script: "false"}
          skipped: {script: "true", depends_on: [bad]}
          any_ok: {script: "true", depends_on: [good, bad], trigger_rule: one_success}
          any_failed: {script: "true", depends_on: [good, bad], trigger_rule: one_failed}
          none_failed_ok: {script: "true", depends_on: [good, skipped], trigger_rule: none_failed}
          none_failed_no: {script: "true", depends_on: [good, bad], trigger_rule: none_failed}
          no_failure_seen: {script: "true", depends_on: [good], trigger_rule: one_failed}
        """,
    )
    assert statuses(result) == {
        "good": "succeeded",
        "bad": "failed",
        "skipped": "skipped",
        "any_ok": "succeeded",
        "any_failed": "succeeded",
        "none_failed_ok": "succeeded",
        "none_failed_no": "skipped",
        "no_failure_seen": "skipped",
    }


async def test_conditions_and_skip_if_are_javascript_over_results(tmp_path: Path) -> None:
    result = await run_yaml(
        tmp_path,
        """
        name: conditions
        tasks:
          process_data: {script: "echo 42"}
          alert:
            script: "echo alert"
            depends_on: [process_data]
            condition: '{{ process_data.exit_code != 0 }}'
          report:
            script: "echo report"
            depends_on: [process_data]
            condition: '{{ process_data.exit_code == 0 && input.report }}'
          maybe:
            script: "echo maybe"
            depends_on: [process_data]
            skip_if: 'steps.process_data.result.stdout.trim() === "42"'
          broken:
            script: "echo broken"
            depends_on: [process_data]
            condition: '{{ nosuchthing.field }}'
        """,
        {"report": True},
    )
    assert statuses(result) == {
        "process_data": "succeeded",
        "alert": "skipped",
        "report": "succeeded",
        "maybe": "skipped",
        "broken": "failed",
    }
    assert "condition" in (result.steps["alert"].skip_reason or "")
    # A condition that throws fails its step with the JavaScript error and the field.
    assert "condition" in (result.steps["broken"].error or "")
    assert "nosuchthing" in (result.steps["broken"].error or "")


async def test_condition_action_skips_the_branch_not_taken(tmp_path: Path) -> None:
    text = """
        name: branches
        tasks:
          check:
            action: condition
            params: {expression: "context.amount > 100", then: [review], else: [auto]}
          review: {script: "echo review", depends_on: [check]}
          auto: {script: "echo auto", depends_on: [check]}
          done: {script: "echo done", depends_on: [review, auto], trigger_rule: one_success}
        """
    (tmp_path / "big").mkdir()
    big = await run_yaml(tmp_path / "big", text, {"amount": 500})
    assert statuses(big) == {
        "check": "succeeded",
        "review": "succeeded",
        "auto": "skipped",
        "done": "succeeded",
    }
    assert big.steps["check"].result is True
    assert "branch not taken" in (big.steps["auto"].skip_reason or "")
    (tmp_path / "small").mkdir()
    small = await run_yaml(tmp_path / "small", text, {"amount": 5})
    assert statuses(small)["review"] == "skipped" and statuses(small)["auto"] == "succeeded"


async def test_loop_repeats_until_its_condition_holds(tmp_path: Path) -> None:
    result = await run_yaml(
        tmp_path,
        """
        name: loops
        tasks:
          poll:
            code: "return ctx.iteration * 10;"
            loop: {until: "result >= 30", max_iterations: 10}
          capped:
            code: "return ctx.iteration;"
            loop: {until: "false", max_iterations: 4}
          after: {code: "return deps.poll + deps.capped;", depends_on: [poll, capped]}
        """,
    )
    assert statuses(result) == {"poll": "succeeded", "capped": "succeeded", "after": "succeeded"}
    poll = result.steps["poll"]
    assert [i.name for i in poll.instances] == ["poll#1", "poll#2", "poll#3"]
    assert poll.result == 30
    assert [i.result for i in result.steps["capped"].instances] == [1, 2, 3, 4]
    assert result.steps["after"].result == 34


async def test_error_handler_recovers_a_failure(tmp_path: Path) -> None:
    result = await run_yaml(
        tmp_path,
        """
        name: handlers
        tasks:
          pay: {script: "exit 1", on_error: manual_review}
          manual_review: {script: "echo reviewed"}
          ship: {script: "echo shipped", depends_on: [pay]}
        """,
    )
    assert statuses(result) == {
        "pay": "failed",
        "manual_review": "succeeded",
        "ship": "succeeded",
    }
    # The fallback's success lets the run succeed.
    assert result.status == "succeeded"


async def test_unrecovered_failure_without_successes_fails_the_run(tmp_path: Path) -> None:
    text = """
        name: all_bad
        tasks:
          a: {script: "exit 2"}
          b: {script: "true", depends_on: [a]}
        """
    result = await run_yaml(tmp_path, text)
    assert result.status == "failed"
    assert statuses(result) == {"a": "failed", "b": "skipped"}
    assert result.error is not None and "1 of 2 steps failed" in result.error
    # app.run() raises for a failed DAG run, with the summary.
    app = App(f"sqlite:///{tmp_path / 'other.db'}")
    async with app:
        name = app.register_dag(parse_definition(textwrap.dedent(text), str(tmp_path / "w.yaml")))
        with pytest.raises(RunFailed, match="steps failed"):
            await app.run(name)


def _max_overlap(lines: list[str]) -> int:
    """The most intervals open at once, from `start`/`end` lines in log order."""
    current = peak = 0
    for line in lines:
        current += 1 if line.startswith("start") else -1
        peak = max(peak, current)
    return peak


async def test_matrix_fan_out_respects_its_parallelism(tmp_path: Path) -> None:
    log = tmp_path / "spans.log"
    result = await run_yaml(
        tmp_path,
        f"""
        name: matrix
        tasks:
          prepare: {{script: "true"}}
          batch:
            depends_on: [prepare]
            parallelism: 2
            matrix:
              n: [0, 1, 2, 3, 4, 5]
            environment:
              N: '{{{{ matrix.n }}}}'
            script: "echo start $N >> {log}; sleep 0.2; echo end $N >> {log}; echo $((N * N))"
          total:
            depends_on: [batch]
            code: "return deps.batch.map(r => Number(r.stdout.trim())).reduce((a, b) => a + b);"
        """,
    )
    assert result.status == "succeeded"
    batch = result.steps["batch"]
    assert [i.matrix for i in batch.instances] == [{"n": n} for n in range(6)]
    assert [r["stdout"] for r in batch.result] == [f"{n * n}\n" for n in range(6)]
    assert result.steps["total"].result == sum(n * n for n in range(6))
    lines = log.read_text().splitlines()
    assert len(lines) == 12
    assert _max_overlap(lines) == 2  # never more than 2, and the cap was actually reached


async def test_run_parallelism_caps_steps_across_the_run(tmp_path: Path) -> None:
    log = tmp_path / "spans.log"
    tasks = "\n".join(
        f"  s{i}: {{script: 'echo start >> {log}; sleep 0.1; echo end >> {log}'}}" for i in range(5)
    )
    definition = parse_definition(f"name: wide\ntasks:\n{tasks}\n", str(tmp_path / "w.yaml"))
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    async with app:
        name = app.register_dag(definition)
        one = await app.run_dag(name, parallelism=1, timeout=60)
        assert one.status == "succeeded"
        assert _max_overlap(log.read_text().splitlines()) == 1
        log.unlink()
        free = await app.run_dag(name, timeout=60)
        assert free.status == "succeeded"
        assert _max_overlap(log.read_text().splitlines()) > 1


async def test_watch_streams_the_run_as_it_happens(tmp_path: Path) -> None:
    definition = parse_definition(
        "name: watched\ntasks:\n  a: {script: 'echo a'}\n  b: {script: 'exit 1'}\n"
        "  c: {script: 'echo c', depends_on: [b]}\n",
        str(tmp_path / "w.yaml"),
    )
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    async with app:
        name = app.register_dag(definition)
        handle = await app.start(name)
        seen: list[tuple[str, str]] = []
        names: dict[int, str] = {}
        async for logged in app.watch(handle.run_id):
            event = logged.event
            if isinstance(event, events.StepStarted):
                names[event.pos] = event.name
                seen.append(("started", event.name))
            elif isinstance(event, events.StepCompleted):
                seen.append(("completed", names[event.pos]))
            elif isinstance(event, events.StepFailed):
                seen.append(("failed", names[event.pos]))
            elif isinstance(event, events.StepSkipped):
                seen.append(("skipped", event.name))
            elif isinstance(event, events.RunCompleted):
                seen.append(("run", event.status))
    assert sorted(seen[:2]) == [("started", "a"), ("started", "b")]
    assert set(seen[2:5]) == {("completed", "a"), ("failed", "b"), ("skipped", "c")}
    assert seen[-1] == ("run", "partial")


async def test_custom_actions_and_python_steps(tmp_path: Path) -> None:
    module = tmp_path / "dag_user_code.py"
    module.write_text(
        "def scale(values, factor, deps=None):\n    return [v * factor for v in deps['source']]\n"
    )
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def lookup(params: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        calls.append((params, context))
        await asyncio.sleep(0)
        return {"customer": params["id"], "tier": "gold"}

    sys.path.insert(0, str(tmp_path))
    try:
        app = App(f"sqlite:///{tmp_path / 'runs.db'}", allowed_function_modules=["dag_user_code"])
        app.register_action("crm.lookup", lookup)
        result = await run_yaml(
            tmp_path,
            """
            name: custom
            tasks:
              source: {code: "return [1, 2, 3];"}
              scaled:
                function: "dag_user_code:scale"
                params: {values: [], factor: 10}
                depends_on: [source]
              customer:
                action: crm.lookup
                params: {id: '{{ input.customer }}'}
            """,
            {"customer": "C-7"},
            app=app,
        )
    finally:
        sys.path.remove(str(tmp_path))
    assert result.status == "succeeded"
    assert result.steps["scaled"].result == [10, 20, 30]
    assert result.steps["customer"].result == {"customer": "C-7", "tier": "gold"}
    params, context = calls[0]
    assert params == {"id": "C-7"}
    assert context["run_id"] == result.run_id and context["step"] == "customer"
    assert context["idempotency_key"].startswith(result.run_id + ":")


async def test_retries_follow_the_policy(tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    result = await run_yaml(
        tmp_path,
        f"""
        name: retries
        tasks:
          flaky:
            script: "echo x >> {counter}; test $(wc -l < {counter}) -ge 3"
            retries: 3
            retry_backoff: fixed
            retry_delay_ms: 10
          hopeless:
            script: "exit 1"
            retries: 1
            retry_delay_ms: 10
        """,
    )
    assert result.steps["flaky"].status == "succeeded"
    assert result.steps["flaky"].attempts == 3
    assert result.steps["hopeless"].status == "failed"
    assert result.steps["hopeless"].attempts == 2


async def test_a_javascript_syntax_error_fails_the_run_before_anything_runs(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    result = await run_yaml(
        tmp_path,
        f"""
        name: broken_js
        tasks:
          first: {{script: "touch {marker}"}}
          second:
            script: "true"
            depends_on: [first]
            condition: '{{{{ first.exit_code == }}}}'
        """,
    )
    assert result.status == "failed"
    assert not marker.exists()
    assert result.error is not None
    # The file, the line of the field, and V8's own message.
    assert f"{tmp_path / 'wf.yaml'}:8: step 'second': bad JavaScript in condition" in result.error
    assert "Unexpected" in result.error


async def test_syntax_problems_point_at_each_field() -> None:
    from durable.dag._expr import syntax_problems
    from durable.js import JsSandboxPool

    text = textwrap.dedent(
        """
        name: x
        tasks:
          a:
            code: "return 1 +;"
          b:
            script: "true"
            environment:
              X: "{{ matrix.n ) }}"
            skip_if: "a.failed"
          c:
            action: transform
            params: {code: "return input.map(x => x * 2);"}
        notifications:
          on_success:
            - type: slack
              webhook: "{{ env.HOOK + }}"
        """
    )
    async with JsSandboxPool(1) as pool:
        problems = await syntax_problems(parse_definition(text, "x.yaml"), pool)
    assert [(p.line, p.path) for p in problems] == [
        (5, "$.tasks.a.code"),
        (9, "$.tasks.b.environment.X"),
        (17, "$.notifications.on_success[0].webhook"),
    ]


async def test_a_run_resumes_only_on_the_definition_it_started_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import durable._worker

    monkeypatch.setattr(durable._worker, "QUARANTINE_SECONDS", 0.3)
    original = "name: pinned\ntasks:\n  slow: {script: 'sleep 0.5; echo v1'}\n"
    edited = original.replace("echo v1", "echo edited")
    db = f"sqlite:///{tmp_path / 'runs.db'}"

    first = App(db, poll_interval=0.1)
    async with first:
        name = first.register_dag(parse_definition(original, str(tmp_path / "w.yaml")))
        handle = await first.start(name, run_id="pinned-run")
    # Stopped mid-step (the lease is given back); the file is then edited, version unchanged.
    second = App(db, poll_interval=0.1)
    async with second:
        second.register_dag(parse_definition(edited, str(tmp_path / "w.yaml")))
        before = len(await second.events(handle.run_id))
        await asyncio.sleep(1.0)  # several claim rounds: each refuses the run
        after = await second.events(handle.run_id)
        assert len(after) == before
        assert (await second.get_run(handle.run_id)).status == "running"
    third = App(db, poll_interval=0.1)
    async with third:
        third.register_dag(parse_definition(original, str(tmp_path / "w.yaml")))
        result = await third.run_dag(name, run_id="pinned-run", timeout=60)
    assert result.status == "succeeded"
    assert result.steps["slow"].result["stdout"] == "v1\n"
