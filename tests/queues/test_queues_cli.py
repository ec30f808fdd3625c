"""`durable queues list|show` against a real SQLite file holding waiting and running runs, and
`durable runs show` of a waiting run saying why it waits; an unknown queue gets a one-line
error and exit code 2, never a traceback."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from procenv import Env

from sdk import App, Context


async def fill(url: str) -> None:
    """Queue "emails" (limit 1) with one run admitted (held by a worker that then went away)
    and two waiting."""
    app = App(url, worker=False)
    app.queue("emails", concurrency=1, worker_concurrency=1, rate_limit=(5, 60.0))

    @app.workflow
    async def email(ctx: Context, n: int) -> int:
        return n

    async with app:
        for n in range(3):
            await app.start("email", n, queue="emails", run_id=f"q{n}")
        store = app.engine.client.store
        claims = await store.claim_runs("gone", limit=5, lease_ttl=300.0, now=time.time())
        assert len(claims) == 1


def test_list_and_show(tmp_path: Path) -> None:
    env = Env(tmp_path, "")
    asyncio.run(fill(env.db))
    done = env.cli("queues", "list", "--json")
    assert done.returncode == 0, done.stderr
    (emails,) = json.loads(done.stdout)
    assert (emails["name"], emails["waiting"], emails["running"]) == ("emails", 2, 1)
    assert (emails["concurrency"], emails["rate_limit"], emails["rate_period"]) == (1, 5, 60.0)
    table = env.cli("queues", "list")
    assert table.returncode == 0 and "emails" in table.stdout and "5/60s" in table.stdout
    shown = env.cli("queues", "show", "emails")
    assert shown.returncode == 0, shown.stderr
    assert "queued: emails is at its limit 1" in shown.stdout
    as_json = json.loads(env.cli("queues", "show", "emails", "--json").stdout)
    assert as_json["why_waiting"] == "queued: emails is at its limit 1"
    # A waiting run says why it waits, and its place.
    run = env.cli("runs", "show", "q2")
    assert run.returncode == 0, run.stderr
    assert "queued: emails is at its limit 1; 1 run ahead" in " ".join(run.stdout.split())
    as_json = json.loads(env.cli("runs", "show", "q1", "--json").stdout)
    assert as_json["queue"] == "emails"
    assert as_json["queued"] == "queued: emails is at its limit 1; no run ahead"
    admitted = json.loads(env.cli("runs", "show", "q0", "--json").stdout)
    assert (admitted["queue"], admitted["queued"]) == ("emails", None)
    missing = env.cli("queues", "show", "nope")
    assert missing.returncode == 2
    assert "no queue 'nope'" in missing.stderr and "declared: emails" in missing.stderr
    assert "Traceback" not in missing.stderr


# The application of fill(), for `durable replay --app wfmod:app`.
WFMOD = """
from sdk import App, Context

app = App()
app.queue("emails", concurrency=1, worker_concurrency=1, rate_limit=(5, 60.0))


@app.workflow
async def email(ctx: Context, n: int) -> int:
    return n
"""


def test_cancelling_a_waiting_run_ends_it_and_it_shows_and_replays(tmp_path: Path) -> None:
    """`durable cancel` of a run waiting behind the full queue ends it at once (no worker
    runs); `runs show`, `queues show` and `replay` read it as any cancelled run. A run the
    queue admitted only gets the request, for its executor."""
    env = Env(tmp_path, WFMOD)
    asyncio.run(fill(env.db))
    done = env.cli("cancel", "q2", "--reason", "not needed")
    assert done.returncode == 0, done.stderr
    assert "run q2 cancelled (it was waiting in its queue)" in done.stdout
    shown = json.loads(env.cli("runs", "show", "q2", "--json").stdout)
    assert (shown["status"], shown["queued"]) == ("cancelled", None)
    assert shown["finished_at"] is not None
    text = env.cli("runs", "show", "q2")
    assert text.returncode == 0 and "cancelled" in text.stdout, text.stderr
    queue = json.loads(env.cli("queues", "show", "emails", "--json").stdout)
    assert (queue["waiting"], queue["running"]) == (1, 1)  # q1 waits, q0 holds the slot
    replayed = env.cli("replay", "q2", "--app", "wfmod:app")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "deterministic" in replayed.stdout and "NOT" not in replayed.stdout
    events = [e["type"] for e in env.events("q2")]
    assert events == ["RunStarted", "CancelRequested", "RunCancelled"]
    admitted = env.cli("cancel", "q0")
    assert admitted.returncode == 0, admitted.stderr
    assert "cancellation of run q0 requested" in admitted.stdout
    assert json.loads(env.cli("runs", "show", "q0", "--json").stdout)["status"] == "pending"
    again = env.cli("cancel", "q2")
    assert again.returncode != 0 and "already ended cancelled" in again.stderr
    assert "Traceback" not in again.stderr
