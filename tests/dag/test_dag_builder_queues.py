"""Queues in the Python DAG builder: `queues=` and `queue=` on app.dag, `queue=` (and `matrix=`)
on a step. The built definition means what the equivalent YAML means (same model, same
fingerprint, same registration); bad values get the YAML loader's errors in Python's spelling,
at the line that wrote them. Limits across worker processes: tests/queues/test_queues_builder.py.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from durable._definitions import content_fingerprint
from durable.dag import DagBuilder, DagDefinitionError, parse_definition
from sdk import App

YAML = """
name: mail
queues:
  emails: {concurrency: 1, worker_concurrency: 1, rate_limit: [100, 60]}
  batch: {partition_concurrency: 3}
queue: batch
tasks:
  prep: {code: "return 'ready'"}
  send:
    depends_on: prep
    queue: emails
    matrix: {n: [1, 2, 3]}
    code: "return await send(`${input.k}-${matrix.n}-${deps.prep}`);"
  done:
    depends_on: send
    code: "return deps.send.length;"
"""


def build(app: App) -> DagBuilder:
    flow = app.dag(
        "mail",
        queues={
            "emails": {"concurrency": 1, "worker_concurrency": 1, "rate_limit": (100, 60)},
            "batch": {"partition_concurrency": 3},
        },
        queue="batch",
    )
    prep = flow.js("prep", "return 'ready'")

    @flow.do("send", depends=[prep], queue="emails", matrix={"n": [1, 2, 3]})
    def send() -> None:
        """return await send(`${input.k}-${matrix.n}-${deps.prep}`);"""

    flow.js("done", "return deps.send.length;", depends=[send])
    return flow


def test_the_built_definition_is_the_yaml_one() -> None:
    built = build(App("memory://")).definition()
    loaded = parse_definition(YAML, "mail.yaml")
    assert built.queues == loaded.queues  # a tuple rate_limit is kept as the file's list
    assert built.queue == loaded.queue == "batch"
    assert [s.queue for s in built.steps] == [None, "emails", None]
    assert built.step("send").matrix == loaded.step("send").matrix == {"n": (1, 2, 3)}
    assert built.canonical_json() == loaded.canonical_json()
    assert built.fingerprint() == loaded.fingerprint()
    assert content_fingerprint(built) == content_fingerprint(loaded)  # queues included
    # The step's queue counts in the fingerprint (it changes how a run executes).
    plain = App("memory://").dag("mail")
    plain.js("prep", "return 'ready'")
    assert plain.definition().fingerprint() != built.fingerprint()

    # Registered, both declare the same queues and the same child workflow of the step.
    from_code, from_file = App("memory://"), App("memory://")
    assert from_code.register_dag(build(from_code)) == from_file.register_dag(loaded) == "mail"
    assert from_code.registry.queues == from_file.registry.queues
    assert sorted(from_code.registry.names()) == sorted(from_file.registry.names())
    assert "mail/send@1" in from_code.registry.names()


def test_bad_queue_values_say_what_where_and_how() -> None:
    app = App("memory://")
    with pytest.raises(DagDefinitionError) as caught:
        app.dag(
            "mail",
            queues={
                "emails": {"concurrency": 0, "worker_concurency": 2},
                "slow": {"rate_limit": 5},
                "odd": 3,  # type: ignore[dict-item]
            },
            queue="",
        )
    line = caught.value.problems[0].line
    assert caught.value.file == __file__ and line is not None
    found = [(p.line, p.path, p.message) for p in caught.value.problems]
    assert found == [
        (
            line,
            "$.queues.emails.worker_concurency",
            "queue 'emails': unknown limit 'worker_concurency' (a queue takes concurrency, "
            "worker_concurrency, rate_limit, partition_concurrency)",
        ),
        (
            line,
            "$.queues.emails",
            "queue 'emails': concurrency must be a whole number >= 1 (or None: no limit), "
            "not 0; fix it in queues=",
        ),
        (
            line,
            "$.queues.slow",
            "queue 'slow': rate_limit must be (starts, seconds), e.g. (100, 60.0) for at most "
            "100 starts in any 60 s, not 5; fix it in queues=",
        ),
        (
            line,
            "$.queues.odd",
            "queue 'odd': its limits must be a mapping of concurrency, worker_concurrency, "
            "rate_limit, partition_concurrency, not int 3",
        ),
        (line, "$.queue", found[4][2]),
    ]
    assert "the workflow: invalid queue name ''" in found[4][2]
    with pytest.raises(DagDefinitionError, match=r"e\.g\. queues=\{\"emails\""):
        app.dag("mail", queues=["emails"])  # type: ignore[arg-type]

    # A step's queue name and its matrix, checked as the YAML loader checks them.
    flow = app.dag("mail")
    flow.js("a", "return 1", queue="")
    with pytest.raises(DagDefinitionError, match="step 'a': invalid queue name ''"):
        flow.definition()
    with pytest.raises(DagDefinitionError, match="matrix 'n' must be a non-empty list") as bad:
        app.dag("mail").js("a", "return 1", matrix={"n": []})
    assert bad.value.file == __file__  # the js() call, not the builder's own code
    with pytest.raises(DagDefinitionError, match="matrix 'n' must be a non-empty list"):
        app.dag("mail").js("a", "return 1", matrix={"n": "abc"})


def test_registration_needs_every_queue_declared_once() -> None:
    app = App("memory://")
    flow = app.dag("mail", queue="nightly")
    flow.js("a", "return 1")
    flow.js("b", "return 2", queue="emails")
    with pytest.raises(DagDefinitionError) as caught:
        app.register_dag(flow)
    messages = [p.message for p in caught.value.problems]
    assert messages[0].startswith("queue 'nightly' is not declared: declare it under")
    assert messages[1].startswith("step 'b': queue 'emails' is not declared")
    assert caught.value.problems[1].file == __file__
    assert app.registry.names() == []
    # Declared by the application (app.queue): fine.
    app.queue("emails", concurrency=1)
    app.queue("nightly")
    assert app.register_dag(flow) == "mail"
    # The same name declared by a builder with other limits than the application's: refused.
    other = app.dag("other", queues={"emails": {"concurrency": 5}})
    other.js("a", "return 1")
    with pytest.raises(DagDefinitionError, match="concurrency=5; already concurrency=1"):
        app.register_dag(other)


@pytest.mark.asyncio
async def test_a_builder_started_while_open_declares_its_queues(tmp_path: Path) -> None:
    """app.start(flow) registers the builder then, after the engine declared the queues it
    knew: its queues must still reach the database, or its runs would wait for ever."""
    spans: list[tuple[float, float]] = []

    async def send(key: str) -> str:
        start = time.time()
        await asyncio.sleep(0.1)
        spans.append((start, time.time()))
        return f"sent {key}"

    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.1)
    flow = app.dag(
        "mail",
        api={"send": send},
        queues={"emails": {"concurrency": 1}, "batch": None},
        queue="batch",
    )
    prep = flow.js("prep", "return 'ready'")
    flow.js(
        "send",
        "return await send(`${input.k}-${matrix.n}-${deps.prep}`);",
        depends=[prep],
        queue="emails",
        matrix={"n": [1, 2, 3]},
    )
    async with app:
        handle = await app.start(flow, {"k": "x"}, run_id="m1")
        assert (await app.get_run("m1")).queue == "batch"
        result = await handle.result(timeout=20)
        children = {r.run_id: r.status for r in await app.list_runs(workflow="mail/send")}
        assert {q.name for q in await app.list_queues()} == {"emails", "batch"}
    assert result == ["sent x-1-ready", "sent x-2-ready", "sent x-3-ready"]
    assert children == {"m1.1": "succeeded", "m1.2": "succeeded", "m1.3": "succeeded"}
    spans.sort()
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans)), spans
