"""What the cross-process external-wait tests share (not a test module): the workflows module
the worker processes import, a completer process, and process helpers."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from durable.runtime._external import decode_token

WORKFLOWS = """
import os
from sdk import App, Context, ExternalFailed

app = App(
    poll_interval=float(os.environ.get("POLL", "0.2")),
    lease_ttl=float(os.environ.get("LEASE_TTL", "5")),
)


@app.step()
def send_token(token: str) -> None:
    with open(os.environ["TOKENS"], "a") as out:  # the outside system gets the token
        out.write(token + "\\n")


@app.workflow
async def pay(ctx: Context, timeout: float | None) -> dict:
    wait = ctx.wait_external(timeout=timeout, name="payment")
    await send_token(wait.token)
    try:
        return {"paid": await wait, "token": wait.token}
    except TimeoutError:
        return {"timed_out": True, "token": wait.token}
    except ExternalFailed as exc:
        return {"failed": exc.error.message, "token": wait.token}
"""

# Completes every token given at the same instant (argv: url, start_at, value, tokens...), and
# prints one JSON line per token: {"run": ..., "won": bool, "error": str}.
COMPLETER = """
import asyncio, json, sys, time
from sdk import App
from durable.runtime._external import decode_token

async def main() -> None:
    url, start_at, value, tokens = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
    async with App(url, worker=False) as app:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        outcomes = await asyncio.gather(
            *(app.complete(t, value) for t in tokens), return_exceptions=True
        )
    for token, outcome in zip(tokens, outcomes):
        run_id = decode_token(token)[0]
        error = "" if outcome is None else f"{type(outcome).__name__}: {outcome}"
        print(json.dumps({"run": run_id, "won": outcome is None, "error": error}), flush=True)

asyncio.run(main())
"""


class Procs:
    def __init__(self, workdir: Path, url: str) -> None:
        self.dir = workdir
        self.url = url
        self.tokens = workdir / "tokens.txt"
        (workdir / "wfmod.py").write_text(textwrap.dedent(WORKFLOWS))
        (workdir / "completer.py").write_text(textwrap.dedent(COMPLETER))
        self.started: list[subprocess.Popen[str]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.dir), env.get("PYTHONPATH", "")])
        env["TOKENS"] = str(self.tokens)
        env["DURABLE_DATABASE_URL"] = self.url
        env.update(extra)
        return env

    def worker(self, *, poll: float = 0.2, lease_ttl: float = 5.0) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "durable", "worker", "wfmod:app", "--db", self.url,
             "--poll-interval", str(poll), "--lease-ttl", str(lease_ttl),
             "--log-level", "warning"],
            cwd=self.dir, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self.started.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert "durable worker" in line, line
        return proc

    def completer(self, start_at: float, value: str, tokens: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "completer.py", self.url, str(start_at), value, *tokens],
            cwd=self.dir, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.started.append(proc)
        return proc

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "durable", *args, "--db", self.url],
            cwd=self.dir, env=self.env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def tokens_by_run(self, count: int, timeout: float = 60) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.tokens.read_text().split() if self.tokens.exists() else []
            found = {decode_token(t)[0]: t for t in lines}
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"only {len(found)} of {count} tokens sent"
            time.sleep(0.05)

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def outcomes(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]
