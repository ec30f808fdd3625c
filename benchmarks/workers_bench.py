"""Worker scaling: N `durable worker` processes on one database, one driver starting runs.

    python benchmarks/workers_bench.py --db PATH_OR_URL --workers N --runs K

The driver (this process) opens the database with App(worker=False), starts N workers
through the CLI (`python -m durable worker scaling_app:app --db URL`, from this directory), waits
until each says it is serving, then starts K runs of ten steps at once and measures the
time until none is pending or running. Afterwards it reads, from the run rows, which
worker executed each run (the owner column keeps the last lease holder; owner ids contain
the worker's pid), and how busy the machine's CPUs were during the measured interval:
on a 2-core machine the CPUs, not the database, are what more workers compete for.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import bench_common as bc
import scaling_app

import sdk
from storage import DatabaseURLError, RunQuery

BENCH_DIR = Path(__file__).resolve().parent
READY_TIMEOUT_S = 60.0
DONE_TIMEOUT_S = 600.0
# How often the driver looks for unfinished runs: short against the measured interval,
# long enough that its reads cost the workers little.
POLL_S = 0.02
# Which tree the driver and the workers ran: PYTHONPATH may point at a branch's work tree.
SOURCE = str(Path(sdk.__file__).resolve().parent.parent)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat (Linux only)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_worker(
    url: str, poll_interval: float, log: Path
) -> tuple[asyncio.subprocess.Process, str]:
    cmd = [sys.executable, "-m", "durable", "worker", "scaling_app:app", "--db", url]
    cmd += ["--log-level", "warning", "--poll-interval", str(poll_interval)]
    with log.open("wb") as err:
        # cwd = this directory, not the repository root: `-m` puts the cwd first on
        # sys.path, and the root's own durable/ would then shadow a PYTHONPATH work tree.
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=BENCH_DIR, stdout=asyncio.subprocess.PIPE, stderr=err
        )
    assert proc.stdout is not None
    # The CLI prints "durable worker OWNER on URL running ..." once it is open and serving.
    line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
    text = line.decode(errors="replace")
    if not text.startswith("durable worker "):
        await proc.wait()
        raise RuntimeError(f"worker did not start: {text}{_tail(log)}")
    return proc, text.split()[2]


async def stop_workers(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)  # graceful: leases are given back
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def measure(ns: argparse.Namespace, logs: Path) -> dict[str, object]:
    url = ns.db if bc.is_postgres(ns.db) else f"sqlite:///{ns.db}"
    app = scaling_app.build(url, worker=False)
    # Opened first so that the schema exists before N workers race to create it.
    async with app:
        procs: list[asyncio.subprocess.Process] = []
        owners: list[str] = []
        try:
            for n in range(ns.workers):
                proc, owner = await start_worker(url, ns.poll_interval, logs / f"w{n}.log")
                procs.append(proc)
                owners.append(owner)
            cpu_before = [process_cpu_s(p.pid) for p in procs]
            driver_before = time.process_time()
            busy0, total0 = cpu_ticks()
            start = time.perf_counter()
            await asyncio.gather(*(app.start(scaling_app.WORKFLOW, i) for i in range(ns.runs)))
            created = time.perf_counter() - start
            deadline = start + DONE_TIMEOUT_S
            while await app.list_runs(status="pending", limit=1) or await app.list_runs(
                status="running", limit=1
            ):
                dead = [i for i, p in enumerate(procs) if p.returncode is not None]
                if dead or time.perf_counter() > deadline:
                    why = f"worker {dead[0]} exited" if dead else "timed out"
                    tail = _tail(logs / f"w{dead[0] if dead else 0}.log")
                    raise RuntimeError(f"{why} before all runs finished:\n{tail}")
                await asyncio.sleep(POLL_S)
            elapsed = time.perf_counter() - start
            busy1, total1 = cpu_ticks()
            worker_cpu = [process_cpu_s(p.pid) - c for p, c in zip(procs, cpu_before, strict=True)]
            driver_cpu = time.process_time() - driver_before
        finally:
            await stop_workers(procs)
        done = await app.engine.store.list_runs(RunQuery(status="succeeded", limit=ns.runs + 1))
        if len(done) != ns.runs:
            raise RuntimeError(f"expected {ns.runs} succeeded runs, found {len(done)}")
        # Every run returns the same sum: one decoded result and identical bytes for the rest.
        if len({r.result for r in done}) != 1 or await app.handle(done[0].run_id).result() != (
            bc.EXPECTED_RESULT
        ):
            raise RuntimeError("runs returned a wrong result")
    per_owner = collections.Counter(r.owner for r in done)
    cpus = os.cpu_count() or 1
    return {
        "kind": "workers",
        "workers": ns.workers,
        "runs": ns.runs,
        "steps": ns.runs * bc.STEPS_PER_WORKFLOW,
        "seconds": elapsed,
        "create_seconds": created,
        "rate": ns.runs * bc.STEPS_PER_WORKFLOW / elapsed,
        "peak_rss_kib": bc.peak_rss_kib(),
        "info": {
            "durable_version": bc.project_version(),
            "source": SOURCE,
            "runs_per_worker": [per_owner.get(o, 0) for o in owners],
            "worker_pids": [o.split(":")[1] if o.count(":") >= 2 else o for o in owners],
            # CPU seconds over the measured interval, to tell who used the cores: the
            # rest of the machine's busy time is the database server, the kernel and
            # whatever else runs on this machine.
            "interval_s": elapsed,
            "worker_cpu_s": worker_cpu,
            "driver_cpu_s": driver_cpu,
            "machine_cpu_busy": (busy1 - busy0) / max(1, total1 - total0),
            "cpus": cpus,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="SQLite file path or postgresql:// URL")
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.05,
        help="the workers' look for new runs (default 1 s would dominate a short measurement)",
    )
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="durable-bench-workers-") as logs:
        try:
            result = asyncio.run(measure(ns, Path(logs)))
        except DatabaseURLError as exc:
            if bc.NO_STORE_MESSAGE not in str(exc):
                raise
            bc.emit_unavailable(
                str(exc), {"durable_version": bc.project_version(), "source": SOURCE}
            )
            return
    bc.emit(result)


if __name__ == "__main__":
    main()
