"""Load on `durable serve`: POST /executions/start throughput and latency, and RSS under a soak.

    python benchmarks/api_load.py                    # median of 3 x 10 s per target, 5-min soak
    python benchmarks/api_load.py --quick            # 1 x 3 s per target, 20 s soak
    python benchmarks/api_load.py --soak 0 --json results.json

The load generator is wrk (Debian's `wrk`; installed with apt-get when missing and running as
root), one thread, keep-alive connections, against real server processes on loopback, each on
a fresh SQLite file. Targets, measured alternately in every round so drift hits them alike:

- durable, API only: `durable serve --no-worker` starting runs of a DAG definition registered
  through POST /workflows (003's flow; runs wait in the database for `durable worker`s).
- durable, API + worker: plain `durable serve`, whose in-process worker executes every run
  (ten Python steps, scaling_app.py) while starts keep coming.
- peer, Litestar + SQLite: the same body decoded on the same framework/server, one SQLite
  commit (WAL, synchronous=FULL) per request and nothing else (api_peer.py).
- peer, Litestar only: the same without a database: the framework's ceiling.

Every response must be a 2xx and every one must have created a run (counted in the database),
or the benchmark fails instead of printing a number. The soak runs wrk against `durable serve`
(with its worker) for --soak seconds and samples the server's RSS every 5 s; growth is the last
sample against the one at the end of the first tenth (caches and pools filled by then).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULT_PREFIX = "BENCH_WRK "

# wrk's Lua: POST the body from the environment, and print the summary as one JSON line
# (its own text report rounds latencies and hides the error counts).
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d,'
    .. ' "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\\n',
    "BENCH_WRK ", summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""

DAG_DEFINITION = {
    "id": "bench",
    "name": "bench",
    "description": "one transform; the API-only target never executes it",
    "steps": [{"id": "a", "action": "transform", "params": {"code": "return 1"}}],
}


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "durable" or "peer"
    args: tuple[str, ...]
    body: dict[str, object]
    database: bool = True
    worker_process: bool = False  # a `durable worker` process beside the server

    @property
    def executes(self) -> bool:
        return self.worker_process or ("--app" in self.args and "--no-worker" not in self.args)


TARGETS = (
    Target(
        "durable serve, API only (DAG)",
        "durable",
        ("--no-worker",),
        {"workflowId": "bench", "context": {"n": 1}},
    ),
    Target(
        "durable serve, API + worker (Python)",
        "durable",
        ("--app", "scaling_app:app"),
        {"workflowId": "ten_steps", "context": 1},
    ),
    Target(
        "durable serve + a durable worker process",
        "durable",
        ("--no-worker", "--app", "scaling_app:app"),
        {"workflowId": "ten_steps", "context": 1},
        worker_process=True,
    ),
    Target("peer: Litestar + SQLite commit", "peer", (), {"workflowId": "bench", "context": {}}),
    Target(
        "peer: Litestar only", "peer", (), {"workflowId": "bench", "context": {}}, database=False
    ),
)


@dataclass
class Measured:
    target: str
    rounds: list[dict[str, float]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.rounds)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install wrk) ...", file=sys.stderr, flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed: `apt-get install wrk` (Debian) or build it from source")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def request(url: str, body: object | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


class Server:
    """One server process on a free loopback port, with a fresh SQLite file in `workdir`."""

    def __init__(self, target: Target, workdir: Path) -> None:
        self.target = target
        self.db = workdir / f"{target.kind}-{time.monotonic_ns()}.db"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
        env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), str(REPO_ROOT)])
        if target.kind == "durable":
            command = [sys.executable, "-m", "durable", "serve", "--db", f"sqlite:///{self.db}"]
            command += ["--port", str(port), *target.args]
        else:
            command = [sys.executable, str(BENCH_DIR / "api_peer.py"), "--port", str(port)]
            command += ["--db", str(self.db)] if target.database else []
        self.log = workdir / f"{target.kind}-{port}.log"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(command, cwd=workdir, env=env, stdout=sink, stderr=sink)
        self.worker: subprocess.Popen[bytes] | None = None
        self._wait_healthy()
        if target.worker_process:
            command = [sys.executable, "-m", "durable", "worker", "scaling_app:app"]
            command += ["--db", f"sqlite:///{self.db}"]
            with (workdir / f"worker-{port}.log").open("wb") as sink:
                self.worker = subprocess.Popen(
                    command, cwd=workdir, env=env, stdout=sink, stderr=sink
                )
        if target.kind == "durable" and target.body["workflowId"] == "bench":
            status, text = request(f"{self.url}/workflows", DAG_DEFINITION)
            if status not in (200, 201):
                self.stop()
                sys.exit(f"registering the definition failed ({status}): {text!r}")

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"{self.target.name} exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if request(f"{self.url}/health")[0] == 200:
                    return
            time.sleep(0.1)
        self.stop()
        sys.exit(f"{self.target.name} did not answer /health in 30 s")

    def rss_kib(self) -> int:
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def rows(self) -> int:
        """Runs (or peer rows) in the database so far."""
        if not self.target.database:
            return 0
        table = "durable_runs" if self.target.kind == "durable" else "runs"
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            return int(count)
        finally:
            conn.close()

    def settled_rows(self) -> int:
        """Rows once the requests wrk left in flight when it stopped have been answered."""
        # Unchanged for a whole second: a write can wait that long for the SQLite lock when
        # a worker process shares the file.
        count, stable_since = self.rows(), time.monotonic()
        while time.monotonic() - stable_since < 1.0:
            time.sleep(0.2)
            again = self.rows()
            if again != count:
                count, stable_since = again, time.monotonic()
        return count

    def finished_runs(self) -> int:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            query = "SELECT count(*) FROM durable_runs WHERE status = 'succeeded'"
            (count,) = conn.execute(query).fetchone()
            return int(count)
        finally:
            conn.close()

    def stop(self) -> None:
        for process in filter(None, [self.worker, self.process]):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def start_wrk(
    wrk: str, script: Path, server: Server, connections: int, seconds: float
) -> subprocess.Popen[str]:
    env = {**os.environ, "BENCH_BODY": json.dumps(server.target.body)}
    command = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    command += ["-s", str(script), f"{server.url}/executions/start"]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wrk_result(process: subprocess.Popen[str], what: str) -> dict[str, float]:
    out, err = process.communicate()
    if process.returncode != 0:
        sys.exit(f"wrk failed against {what} ({process.returncode}): {err}")
    for line in out.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, float] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    sys.exit(f"wrk printed no result for {what}:\n{out}\n{err}")


def measure(
    wrk: str, script: Path, target: Target, workdir: Path, connections: int, seconds: float
) -> dict[str, float]:
    server = Server(target, workdir)
    try:
        # Warm-up: imports, the thread pool, SQLite's page cache and the first checkpoint.
        wrk_result(start_wrk(wrk, script, server, connections, 2), target.name)
        before = server.settled_rows()
        done_before = server.finished_runs() if target.executes else 0
        result = wrk_result(start_wrk(wrk, script, server, connections, seconds), target.name)
        created = server.settled_rows() - before
        executed = server.finished_runs() - done_before if target.executes else 0
    finally:
        server.stop()
    ok = result["requests"] - result["status_errors"]
    if result["status_errors"] or result["socket_errors"]:
        sys.exit(
            f"{target.name}: {result['status_errors']:.0f} non-2xx responses and "
            f"{result['socket_errors']:.0f} socket errors; see {server.log}"
        )
    # A response answered within the window created its row; a request still in flight when
    # wrk stopped may have created one more per connection. Anything else is a lost start.
    if target.database and not ok <= created <= ok + connections:
        sys.exit(f"{target.name}: {ok:.0f} 2xx answers but {created} rows were created")
    seconds_run = result["duration_us"] / 1e6
    return {
        "starts_per_s": ok / seconds_run,
        "p50_ms": result["p50_us"] / 1000,
        "p90_ms": result["p90_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "requests": ok,
        "executed_per_s": executed / seconds_run,
    }


def soak(
    wrk: str, script: Path, workdir: Path, connections: int, seconds: float
) -> dict[str, object]:
    target = TARGETS[1]
    server = Server(target, workdir)
    samples: list[tuple[float, int]] = []
    try:
        samples.append((0.0, server.rss_kib()))
        load = start_wrk(wrk, script, server, connections, seconds)
        started = time.monotonic()
        while load.poll() is None:
            time.sleep(min(5.0, max(0.5, seconds / 20)))
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                samples.append((time.monotonic() - started, server.rss_kib()))
        result = wrk_result(load, "the soak")
        runs, finished = server.rows(), server.finished_runs()
    finally:
        server.stop()
    if result["status_errors"] or result["socket_errors"]:
        sys.exit(
            f"soak: {result['status_errors']:.0f} non-2xx, {result['socket_errors']:.0f} errors"
        )
    baseline = next(rss for t, rss in samples if t >= seconds / 10)
    final = samples[-1][1]
    return {
        "seconds": seconds,
        "requests": result["requests"],
        "starts_per_s": result["requests"] / (result["duration_us"] / 1e6),
        "p99_ms": result["p99_us"] / 1000,
        "runs_created": runs,
        "runs_finished": finished,
        "rss_idle_kib": samples[0][1],
        "rss_baseline_kib": baseline,
        "rss_max_kib": max(rss for _, rss in samples),
        "rss_final_kib": final,
        "growth": final / baseline - 1,
        "samples": samples,
    }


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    if keep:
        yield Path(tempfile.mkdtemp(prefix="durable-api-load-"))
        return
    with tempfile.TemporaryDirectory(prefix="durable-api-load-") as tmp:
        yield Path(tmp)


def report(results: dict[str, Measured], soaked: dict[str, object] | None) -> None:
    cpus = os.cpu_count()
    print(f"\nPOST /executions/start, wrk -t1 (keep-alive), {cpus} CPUs, SQLite, median of rounds")
    print(f"{'target':42} {'starts/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  executed/s")
    for target in TARGETS:
        name, m = target.name, results[target.name]
        executed = f"{m.median('executed_per_s'):10.0f}" if target.executes else ""
        print(
            f"{name:42} {m.median('starts_per_s'):9.0f} {m.median('p50_ms'):7.1f} "
            f"{m.median('p99_ms'):7.1f} {m.median('max_ms'):7.1f}  {executed}"
        )
    rate = {t.name: results[t.name].median("starts_per_s") for t in TARGETS}
    api, peer_db, peer_bare = rate[TARGETS[0].name], rate[TARGETS[3].name], rate[TARGETS[4].name]
    print()
    for target in TARGETS[:3]:
        print(f"{target.name} / peer Litestar + SQLite commit: {rate[target.name] / peer_db:.2f}x")
    print(f"{TARGETS[0].name} / peer Litestar only: {api / peer_bare:.2f}x")
    print(f"target >= 1000 starts/s (API only): {'met' if api >= 1000 else 'NOT met'}")
    if soaked is not None:
        growth = float(str(soaked["growth"]))
        print(
            f"\nsoak: durable serve + worker, {soaked['seconds']:.0f} s, "
            f"{soaked['starts_per_s']:.0f} starts/s, p99 {soaked['p99_ms']:.1f} ms, "
            f"{soaked['runs_created']} runs created, {soaked['runs_finished']} finished"
        )
        print(
            f"RSS: idle {soaked['rss_idle_kib']} KiB, after the first tenth "
            f"{soaked['rss_baseline_kib']} KiB, max {soaked['rss_max_kib']} KiB, final "
            f"{soaked['rss_final_kib']} KiB: growth {growth:+.1%} (target < 10%: "
            f"{'met' if growth < 0.10 else 'NOT met'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="per target and round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--soak", type=float, default=300.0, help="seconds; 0 skips the soak")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s, a 20 s soak")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the databases and logs")
    ns = parser.parse_args()
    if ns.quick:
        ns.rounds, ns.seconds, ns.soak = 1, 3.0, min(ns.soak, 20.0)
    wrk = ensure_wrk()
    results = {t.name: Measured(t.name) for t in TARGETS}
    with workspace(ns.keep) as workdir:
        script = workdir / "start.lua"
        script.write_text(WRK_SCRIPT)
        for round_no in range(ns.rounds):
            for target in TARGETS:
                print(f"round {round_no + 1}/{ns.rounds}: {target.name} ...", flush=True)
                figures = measure(wrk, script, target, workdir, ns.connections, ns.seconds)
                results[target.name].rounds.append(figures)
        soaked = None
        if ns.soak > 0:
            print(f"soak: {ns.soak:.0f} s ...", flush=True)
            soaked = soak(wrk, script, workdir, ns.connections, ns.soak)
    report(results, soaked)
    if ns.json:
        payload = {"targets": {n: asdict(m) for n, m in results.items()}, "soak": soaked}
        ns.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
