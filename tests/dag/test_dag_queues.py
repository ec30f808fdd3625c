"""Queues in YAML and JSON definitions: `queues:` declares them (checked where written),
`queue:` is the definition's default queue, a step's `queue:` runs each of its instances as a
child run admitted by that queue. Loading, registration and in-process runs on SQLite; the
limits across runs and worker processes are in tests/queues/test_queues_dag.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from durable._events import ChildStarted
from durable._replay import replay
from durable.dag import DagDefinitionError, parse_definition
from sdk import App

GOOD = """
name: mail
queues:
  emails: {concurrency: 2, worker_concurrency: 1, rate_limit: [100, 60]}
  batch:
    partition_concurrency: 3
queue: batch
tasks:
  prep: {script: "echo ready"}
  send:
    depends_on: prep
    queue: emails
    matrix: {n: [1, 2]}
    environment: {N: "{{ matrix.n }}", FROM: "{{ deps.prep.stdout.trim() }}", K: "{{ input.k }}"}
    script: 'echo "$N from $FROM for $K"'
"""


def problems(text: str, file: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(DagDefinitionError) as caught:
        parse_definition(textwrap.dedent(text), file)
    return [(p.line, p.path, p.message) for p in caught.value.problems]


def test_yaml_declares_queues_and_uses_them() -> None:
    d = parse_definition(GOOD, "mail.yaml")
    assert d.queues == {
        "emails": {"concurrency": 2, "worker_concurrency": 1, "rate_limit": [100, 60]},
        "batch": {"partition_concurrency": 3},
    }
    assert d.queue == "batch"
    assert d.step("send").queue == "emails" and d.step("prep").queue is None
    # Declarations and the default queue are not behaviour of a run: the fingerprint (the
    # version's identity) ignores them, as it ignores `schedule:`. A step's queue changes how
    # the run executes (its instances are child runs): it counts.
    bare = GOOD.replace("queue: batch\n", "").replace(
        "  batch:\n    partition_concurrency: 3\n", ""
    )
    assert parse_definition(bare, "mail.yaml").fingerprint() == d.fingerprint()
    unqueued = GOOD.replace("    queue: emails\n", "")
    plain = parse_definition(unqueued, "mail.yaml")
    assert plain.fingerprint() != d.fingerprint()
    assert b"queue" not in plain.canonical_json()  # older definitions keep their fingerprint


def test_json_declares_queues_in_camel_case() -> None:
    text = """{
      "id": "mailjson",
      "queues": {"emails": {"workerConcurrency": 2, "rateLimit": [10, 1.5],
                            "partitionConcurrency": 1}},
      "queue": "emails",
      "steps": [{"id": "send", "queue": "emails", "script": "echo hi"}]
    }"""
    d = parse_definition(text, "mail.json")
    assert d.queues == {
        "emails": {"worker_concurrency": 2, "rate_limit": [10, 1.5], "partition_concurrency": 1}
    }
    assert d.queue == "emails" and d.steps[0].queue == "emails"


def test_bad_yaml_declarations_say_what_where_and_how() -> None:
    found = problems(
        """\
        name: mail
        queues:
          emails: {concurrency: 0, worker_concurency: 2}
          slow: {rate_limit: 5}
          odd: 3
        tasks:
          a: {script: "echo"}
        """,
        "mail.yaml",
    )
    assert found == [
        (
            3,
            "$.queues.emails.worker_concurency",
            "queue 'emails': unknown limit 'worker_concurency' (a queue takes concurrency, "
            "worker_concurrency, rate_limit, partition_concurrency)",
        ),
        (
            3,
            "$.queues.emails",
            "queue 'emails': concurrency must be a whole number >= 1 (or left out: no limit), "
            "not 0; fix it under `queues`",
        ),
        (
            4,
            "$.queues.slow",
            "queue 'slow': rate_limit must be [starts, seconds], e.g. [100, 60] for at most 100 "
            "starts in any 60 s, not 5; fix it under `queues`",
        ),
        (
            5,
            "$.queues.odd",
            "queue 'odd': its limits must be a mapping of concurrency, worker_concurrency, "
            "rate_limit, partition_concurrency, not int 3",
        ),
    ]
    found = problems(
        """\
        name: mail
        tasks:
          a: {script: "echo", queue: ""}
          group:
            queue: emails
            loop: {until: "true", max_iterations: 2, body: [b]}
          b: {script: "echo"}
        """,
        "mail.yaml",
    )
    assert found[0][:2] == (3, "$.tasks.a.queue")
    assert "invalid queue name ''" in found[0][2]
    assert found[1][:2] == (5, "$.tasks.group.queue")
    assert "put `queue` on the body's steps instead" in found[1][2]


def test_bad_json_declarations_use_the_json_spelling() -> None:
    found = problems(
        """{
          "id": "m",
          "queues": {"emails": {"workerConcurrency": -1, "worker_concurrency": 1}},
          "steps": [{"id": "a", "script": "echo"}]
        }""",
        "m.json",
    )
    assert found == [
        (
            3,
            "$.queues.emails.worker_concurrency",
            "queue 'emails': unknown limit 'worker_concurrency' (a queue takes concurrency, "
            "workerConcurrency, rateLimit, partitionConcurrency)",
        ),
        (
            3,
            "$.queues.emails",
            "queue 'emails': workerConcurrency must be a whole number >= 1 (or left out: no "
            "limit), not -1; fix it under `queues`",
        ),
    ]


def test_registration_needs_every_queue_declared_once(tmp_path: Path) -> None:
    file = tmp_path / "mail.yaml"
    file.write_text(
        textwrap.dedent("""\
        name: mail
        queue: nightly
        tasks:
          a: {script: "echo"}
          b: {script: "echo", queue: emails}
        """)
    )
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    with pytest.raises(DagDefinitionError) as caught:
        app.register_dag(file)
    found = [(p.line, p.path, p.message) for p in caught.value.problems]
    hint = (
        "declare it under `queues:` in the definition, or with app.queue(...) before the "
        "definition is registered (`durable validate --queue NAME` if the application does)"
    )
    assert found == [
        (1, "$.queue", f"queue 'nightly' is not declared: {hint}"),
        (5, "$.tasks.b.queue", f"step 'b': queue 'emails' is not declared: {hint}"),
    ]
    assert app.registry.names() == []  # nothing registered
    # Declared by the application: fine.
    app.queue("emails", concurrency=1)
    app.queue("nightly")
    assert app.register_dag(file) == "mail"
    assert "mail/b@1" in app.registry.names()  # the queued step's child workflow

    # The same name with other limits than the application's is refused, where written.
    other = tmp_path / "other.yaml"
    other.write_text(
        'name: other\nqueues:\n  emails: {concurrency: 5}\ntasks:\n  a: {script: "echo"}\n'
    )
    with pytest.raises(DagDefinitionError) as caught:
        app.register_dag(other)
    assert caught.value.problems[0].path == "$.queues.emails"
    assert "concurrency=5; already concurrency=1" in caught.value.problems[0].message
    # The same limits: one queue, declared twice alike.
    other.write_text(other.read_text().replace("concurrency: 5", "concurrency: 1"))
    assert app.register_dag(other) == "other"


@pytest.mark.asyncio
async def test_a_queued_step_runs_as_children_and_replays(tmp_path: Path) -> None:
    file = tmp_path / "mail.yaml"
    file.write_text(GOOD)
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.1)
    name = app.register_dag(file)
    async with app:
        assert {q.name for q in await app.list_queues()} == {"emails", "batch"}
        handle = await app.start(name, {"k": "x"}, run_id="m1")
        assert (await app.get_run("m1")).queue == "batch"  # the definition's default queue
        # The children saw what the step sees in its run: the matrix, its dependency, the input.
        result = await handle.result(timeout=30)
        events = await app.events("m1")
        children = {r.run_id: r for r in await app.list_runs(workflow="mail/send")}
    assert [r["stdout"] for r in result] == ["1 from ready for x\n", "2 from ready for x\n"]
    # One child per matrix instance, in the queue, named by the run and the position.
    assert sorted(children) == ["m1.1", "m1.2"]
    assert all(c.status == "succeeded" for c in children.values())
    started = [e.event for e in events if isinstance(e.event, ChildStarted)]
    assert [(s.pos, s.run_id, s.workflow) for s in started] == [
        (1, "m1.1", "mail/send"),
        (2, "m1.2", "mail/send"),
    ]
    report = await replay("m1", events, app.registry)
    assert report.deterministic, report.divergence


@pytest.mark.asyncio
async def test_a_queued_step_fails_with_its_own_error_after_its_retries(tmp_path: Path) -> None:
    file = tmp_path / "fail.yaml"
    file.write_text(
        textwrap.dedent("""\
        name: fail
        queues:
          emails: {concurrency: 1}
        tasks:
          send:
            queue: emails
            retries: 1
            retry_delay_ms: 10
            script: 'echo "no luck" >&2; exit 3'
          fallback:
            depends_on: send
            trigger_rule: all_done
            environment: {CODE: "{{ steps.send.exit_code }}"}
            script: 'echo "send ended $CODE"'
        """)
    )
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.1)
    name = app.register_dag(file)
    async with app:
        run = await app.run_dag(name, None, run_id="f1", timeout=30)
        child = await app.get_run("f1.0")
        child_events = await app.events("f1.0")
    assert child.status == "failed"
    assert run.steps["send"].status == "failed"
    # The step's retry policy ran in the child (two attempts); the parent waited once.
    assert len([e for e in child_events if e.type == "StepFailed"]) == 2
    assert run.steps["send"].attempts == 1
    assert run.steps["send"].error == (
        "durable.dag.QueuedStepFailed: durable.dag.ScriptFailed: script of step 'send' exited "
        "with code 3: no luck (in child run 'f1.0', queue 'emails', failed)"
    )
    # Expressions see the failure as if the step had failed here (its exit code).
    assert run.steps["fallback"].result["stdout"] == "send ended 3\n"


@pytest.mark.asyncio
async def test_retrying_a_run_resumes_its_failed_queued_child(tmp_path: Path) -> None:
    file = tmp_path / "flaky.yaml"
    marker = tmp_path / "fixed"
    file.write_text(
        textwrap.dedent(f"""\
        name: flaky
        queues:
          emails: {{concurrency: 1}}
        tasks:
          send:
            queue: emails
            script: 'test -f {marker} || exit 3; echo fixed'
        """)
    )
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.1)
    name = app.register_dag(file)
    async with app:
        failed = await app.run_dag(name, None, run_id="r1", timeout=30)
        assert failed.status == "failed"
        marker.touch()
        handle = await app.retry("r1")
        assert (await handle.result(timeout=30))["stdout"] == "fixed\n"
        runs = {r.run_id: r.status for r in await app.list_runs(workflow="flaky/send")}
        child_events = [e.type for e in await app.events("r1.0")]
    # The same child, resumed with its parent: no second child for the new attempt.
    assert runs == {"r1.0": "succeeded"}
    assert "RunResumed" in child_events


@pytest.mark.asyncio
async def test_each_loop_iteration_of_a_queued_step_is_a_child(tmp_path: Path) -> None:
    file = tmp_path / "poll.yaml"
    file.write_text(
        textwrap.dedent("""\
        name: poll
        queues:
          api: {rate_limit: [100, 1]}
        tasks:
          check:
            queue: api
            code: "return ctx.iteration * 10;"
            loop: {until: "result >= 30", max_iterations: 5}
        """)
    )
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.1)
    name = app.register_dag(file)
    async with app:
        run = await app.run_dag(name, None, run_id="p1", timeout=30)
        children = sorted(r.run_id for r in await app.list_runs(workflow="poll/check"))
    assert run.status == "succeeded" and run.steps["check"].result == 30
    assert children == ["p1.0", "p1.1", "p1.2"]  # one per iteration, each saw its number


@pytest.mark.asyncio
async def test_cancelling_the_run_cancels_its_queued_children(tmp_path: Path) -> None:
    file = tmp_path / "slow.yaml"
    file.write_text(
        textwrap.dedent("""\
        name: slow
        queues:
          one: {concurrency: 1}
        tasks:
          wait:
            queue: one
            matrix: {n: [1, 2]}
            script: "sleep 30"
        """)
    )
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.1)
    name = app.register_dag(file)
    async with app:
        handle = await app.start(name, None, run_id="c1")
        for _ in range(100):  # until the first child runs (the second waits for the slot)
            if (await app.queue_info("one")).running == 1:
                break
            await asyncio.sleep(0.05)
        await app.cancel("c1")
        for _ in range(200):
            runs = {r.run_id: r.status for r in await app.list_runs(limit=10)}
            if all(s not in ("pending", "running") for s in runs.values()):
                break
            await asyncio.sleep(0.05)
        assert (await app.get_run(handle.run_id)).status == "cancelled"
    assert runs == {"c1": "cancelled", "c1.0": "cancelled", "c1.1": "cancelled"}


def test_durable_validate_refuses_an_undeclared_queue_unless_named(tmp_path: Path) -> None:
    file = tmp_path / "mail.yaml"
    file.write_text('name: mail\ntasks:\n  a: {script: "echo", queue: emails}\n')

    def validate(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "durable", "validate", str(file), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    refused = validate()
    assert refused.returncode == 2
    assert f"{file}:3: step 'a': queue 'emails' is not declared" in refused.stderr
    assert "--queue NAME" in refused.stderr
    assert validate("--queue", "emails").returncode == 0


def test_a_step_on_the_queue_its_runs_start_in_is_refused(tmp_path: Path) -> None:
    # With concurrency 1, the run would hold the only slot while its step's instance waits
    # for it: a deadlock the definition can be refused for up front.
    file = tmp_path / "mail.yaml"
    file.write_text(
        "name: mail\nqueues:\n  emails: {concurrency: 1}\nqueue: emails\ntasks:\n"
        '  a: {script: "echo", queue: emails}\n'
    )
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    with pytest.raises(DagDefinitionError) as caught:
        app.register_dag(file)
    [problem] = caught.value.problems
    assert (problem.line, problem.path) == (6, "$.tasks.a.queue")
    assert problem.message.startswith(
        "step 'a': queue 'emails' is also the queue the runs of 'mail' start in (`queue:`)"
    )
    assert "put the step on another queue" in problem.message
