"""An engine bug the workflow fuzzer found, as the smallest test that shows it.

The fuzzer found six (docs/fuzzing.md lists them and where each one's test lives); this is the
one whose test has no other home: a run cancelled before any worker executed it never ended."""

from __future__ import annotations

from pathlib import Path

from sdk import App, Context


async def test_a_run_cancelled_before_it_is_picked_up_ends(tmp_path: Path) -> None:
    """Found by the fuzzer, fixed: a run cancelled before a worker executes it never ends:
    its first step awaits the durability barrier (RunLog.all_durable) unshielded, the
    cancellation delivered there cancels the store's write future, the RunLog takes that for
    a failed write and stops the execution; every later claim does the same (one more
    StepStarted each time)"""
    url = f"sqlite:///{tmp_path / 'found.db'}"

    def build(worker: bool) -> App:
        app = App(url, lease_ttl=1.0, poll_interval=0.05, worker=worker)

        @app.step()
        async def work() -> str:
            return "w"

        @app.workflow(name="wf")
        async def wf(ctx: Context) -> str:
            await work()
            return str(await ctx.wait_for_signal("never"))

        return app

    async with build(worker=False) as client:
        await client.start("wf", run_id="r")
        await client.cancel("r")
    async with build(worker=True) as app:
        try:
            status = "ended"
            await app.handle("r").result(timeout=5)
        except TimeoutError:
            status = await app.handle("r").status()
        except Exception:
            status = await app.handle("r").status()
    assert status == "cancelled", status


CANCEL_DURING_REPLAY = (
    '{"prog":{"type":"Seq","items":[{"type":"Try","body":{"type":"Seq","items":['
    '{"type":"Child","body":{"type":"Seq","items":[]},"abandon":false,"id":2},'
    '{"type":"Select","fast":{"type":"Child","body":{"type":"Seq","items":[]},'
    '"abandon":false,"id":4},"rivals":1,"timeout_ms":null,"as_completed":false,"id":3},'
    '{"type":"Hold","id":5}]},"comp":{"type":"Step","retries":1,"fail_first":0,'
    '"sync":false,"ms":0,"id":6},"swallow":true,"id":1}]},"schedule":{"signal_ms":{},'
    '"cancel_ms":0,"random_cancel_ms":null,"kills":[{"kind":"time","n":300}],'
    '"park_after":1.0}}'
)


async def test_a_cancel_recorded_before_a_crash_reaches_the_wait_it_reached_live(
    tmp_path: Path,
) -> None:
    """Found by the fuzzer (the README's run), fixed: a run cancelled while it held at a
    signal wait, its worker then killed; the next worker's replay paused between recorded
    outcomes (the replay order's settle) and the recorded cancel was delivered there, before
    the replay reached the wait: its compensation step asked for the wait's position
    (NonDeterminismError). A recorded cancel now waits until the replay has caught up."""
    from fuzz_harness import example_from_json, run_example

    counts = await run_example(example_from_json(CANCEL_DURING_REPLAY), tmp_path, None)
    assert counts["ended cancelled"] == 1, counts
