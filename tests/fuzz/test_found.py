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
