"""The kill test of streams: a `durable worker` process runs examples/stream_tokens.py's
workflow, a reader follows the token stream over HTTP (a `durable serve` process, Server-Sent
Events, reconnecting with Last-Event-ID, once on purpose mid-stream), the test SIGKILLs the
worker after some tokens and starts another. The reader sees every token exactly once, in
order, then the end. On SQLite and on PostgreSQL."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from streamkit import APP, Reader, example, serving, stored, worker

PROMPT = "why do streams survive a crash?"
KILL_AFTER = 12  # tokens stored before the SIGKILL


# (backend, how the retried step avoids repeating tokens): the store's dedupe of what it writes
# again on both backends; stream_resume (writing only the rest) on SQLite.
CASES = [("sqlite", False), ("postgres", False), ("sqlite", True)]


@pytest.mark.parametrize(
    ("backend", "resume"), CASES, ids=["sqlite-dedupe", "postgres-dedupe", "sqlite-resume"]
)
def test_a_killed_worker_loses_and_repeats_no_token(
    backend: str, resume: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    if backend == "postgres":
        url = request.getfixturevalue("pg_fresh_url")
    tokens = example().tokens_for(PROMPT)
    assert len(tokens) > KILL_AFTER + 10
    with serving(url, tmp_path, "--app", APP, "--no-worker") as (base, api, _):
        body = {"workflowId": "answer", "context": PROMPT, "executionId": "k1"}
        started = api.post("/executions/start", json=body)
        assert started.status_code in (200, 201), started.text
        reader = Reader(base, "/executions/k1/streams/tokens")
        reader.start()
        with worker(url, tmp_path / "worker1.log", resume=resume) as first:
            deadline = time.monotonic() + 60
            while (count := stored(api, "k1")) < KILL_AFTER:
                assert first.poll() is None, (tmp_path / "worker1.log").read_text()
                assert time.monotonic() < deadline, f"only {count} tokens stored"
                time.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        at_kill = stored(api, "k1")
        assert at_kill < len(tokens), "the kill came too late: the reply was complete"
        with worker(url, tmp_path / "worker2.log", resume=resume):
            reader.join(timeout=90)
            assert not reader.is_alive(), f"the reader never ended: {reader.values}"
            assert reader.failure is None, reader.failure
            run = api.get("/executions/k1").json()
            deadline = time.monotonic() + 30
            while run["status"] != "succeeded":
                assert time.monotonic() < deadline, run
                time.sleep(0.1)
                run = api.get("/executions/k1").json()
        events = api.get("/executions/k1/events").json()["events"]
    # Every token once, in order, at offsets 1..n; then the end (the step closed the stream).
    assert [v for _, v in reader.values] == tokens
    assert [i for i, _ in reader.values] == list(range(1, len(tokens) + 1))
    assert reader.end == {"reason": "closed"}
    assert reader.connections >= 2  # the drop on purpose at least
    # The generation really ran twice: the killed attempt and the one that finished.
    starts = [e["fields"].get("name") for e in events if e["type"] == "StepStarted"]
    assert starts.count("generate") == 2, starts
