"""Updates over HTTP (a real `durable serve` whose worker runs the app) and from the CLI
(`durable runs update`, a process of its own, the run executed by the server's worker):
admin token to send, read token to list; 200 answered, 202 still running, 422 rejected, 409
ended, 404 missing, 400 bad bodies."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from serving import serve, server_env, wait_status

ADMIN, READER = "a" * 32, "r" * 32
TOKENS = {"DURABLE_API_TOKEN": ADMIN, "DURABLE_API_READ_TOKEN": READER}

APP = """
import asyncio
from sdk import App, Context

app = App(poll_interval=0.05)


@app.step()
async def price(item: str, qty: int) -> int:
    return len(item) * qty


@app.workflow
async def shop(ctx: Context) -> list[str]:
    basket: list[str] = []

    async def add(item: str, qty: int) -> dict:
        cost = await price(item, qty)
        basket.append(item)
        return {"item": item, "cost": cost, "size": len(basket)}

    def check(item: str, qty: int) -> None:
        if qty <= 0:
            raise ValueError(f"qty must be positive, not {qty}")

    async def slow(seconds: float) -> str:
        await ctx.sleep(seconds)
        return "slept"

    async def boom() -> None:
        raise RuntimeError("the handler broke")

    ctx.on_update("add", add, validator=check)
    ctx.on_update("slow", slow)
    ctx.on_update("boom", boom)
    await ctx.wait_for_signal("checkout")
    return basket


@app.workflow
async def other(ctx: Context) -> None:
    await ctx.wait_for_signal("never")
"""


def post_update(api: httpx.Client, run: str, name: str, **body: Any) -> httpx.Response:
    return api.post(f"/executions/{run}/updates/{name}", json=body)


def test_updates_over_http(tmp_path: Path) -> None:
    (tmp_path / "shopapp.py").write_text(APP)
    with (
        serve(tmp_path, "--app", "shopapp:app", env=TOKENS) as server,
        server.client(ADMIN) as admin,
        server.client(READER) as reader,
        server.client() as anonymous,
    ):
        start = {"workflowId": "shop", "executionId": "s1"}
        assert admin.post("/executions/start", json=start).status_code == 201
        assert post_update(anonymous, "s1", "add", args=["tea", 1]).status_code == 401
        read_only = post_update(reader, "s1", "add", args=["tea", 1])
        assert read_only.status_code == 403

        done = post_update(admin, "s1", "add", args=["tea", 2], updateId="u1")
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["status"] == "completed" and body["updateId"] == "u1"
        assert body["result"] == {"item": "tea", "cost": 6, "size": 1}
        again = post_update(admin, "s1", "add", args=["tea", 2], updateId="u1")
        assert again.status_code == 200 and again.json()["result"] == body["result"]

        rejected = post_update(admin, "s1", "add", args=["jam", 0], updateId="u2")
        assert rejected.status_code == 422, rejected.text
        assert rejected.json()["status"] == "rejected"
        assert rejected.json()["error"]["type"] == "ValueError"
        assert "qty must be positive" in rejected.json()["error"]["message"]

        failed = post_update(admin, "s1", "boom")
        assert failed.status_code == 200 and failed.json()["status"] == "failed"
        assert failed.json()["error"] == {"type": "RuntimeError", "message": "the handler broke"}

        running = post_update(admin, "s1", "slow", args=[1.0], updateId="u3", wait=0.1)
        assert running.status_code == 202, running.text
        assert running.json()["status"] in ("requested", "accepted")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            one = reader.get("/executions/s1/updates/u3")
            assert one.status_code == 200
            if one.json()["status"] == "completed":
                break
            time.sleep(0.1)
        assert one.json()["result"] == "slept"

        listed = reader.get("/executions/s1/updates").json()["updates"]
        assert [(u["updateId"], u["status"]) for u in listed][:3] == [
            ("u1", "completed"),
            ("u2", "rejected"),
            (listed[2]["updateId"], "failed"),
        ]
        assert reader.get("/executions/s1/updates/nope").status_code == 404
        assert reader.get("/executions/missing/updates").status_code == 404
        assert post_update(admin, "missing", "add", args=[]).status_code == 404
        for bad in ({"args": "x"}, {"extra": 1}, {"wait": 999}, {"updateId": ""}):
            answer = admin.post("/executions/s1/updates/add", json=bad)
            assert answer.status_code == 400, (bad, answer.text)

        # Update-with-start: the run is started under the URL's id if absent, then updated.
        shop = {"workflowId": "shop"}
        fresh = post_update(admin, "w1", "add", args=["fig", 1], start=shop)
        assert fresh.status_code == 200 and fresh.json()["result"]["size"] == 1, fresh.text
        existing = post_update(admin, "w1", "add", args=["nut", 1], start=shop)
        assert existing.status_code == 200 and existing.json()["result"]["size"] == 2
        clash = post_update(admin, "w1", "add", args=["x", 1], start={"workflowId": "other"})
        assert clash.status_code == 409 and "already names a run" in clash.json()["error"]
        assert reader.get("/executions/w1").json()["status"] == "running"

        assert admin.post("/executions/s1/signals/checkout", json=None).status_code == 202
        assert wait_status(reader, "s1", {"succeeded"})["status"] == "succeeded"
        ended = post_update(admin, "s1", "add", args=["tea", 1])
        assert ended.status_code == 409 and "already ended" in ended.json()["error"]
        assert "/executions/{run_id}/updates/{name}" in reader.get("/openapi.json").json()["paths"]


def durable_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable", *args, "--db", f"sqlite:///{tmp_path / 'runs.db'}"],
        cwd=tmp_path,
        env=server_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_updates_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "shopapp.py").write_text(APP)
    with serve(tmp_path, "--app", "shopapp:app") as server, server.client() as api:
        assert api.post("/executions/start", json={"workflowId": "shop", "executionId": "c1"})
        wait_status(api, "c1", {"running", "pending"})
        sent = durable_cli(tmp_path, "runs", "update", "c1", "add", "--args", '["oat", 3]')
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout) == {"item": "oat", "cost": 9, "size": 1}
        same = durable_cli(
            tmp_path, "runs", "update", "c1", "add", "--args", '["rye", 1]', "--id", "k"
        )
        twice = durable_cli(
            tmp_path, "runs", "update", "c1", "add", "--args", '["rye", 1]', "--id", "k"
        )
        assert (
            json.loads(same.stdout)
            == json.loads(twice.stdout)
            == {
                "item": "rye",
                "cost": 3,
                "size": 2,
            }
        )
        rejected = durable_cli(tmp_path, "runs", "update", "c1", "add", "--args", '["x", -1]')
        assert rejected.returncode == 1 and "qty must be positive" in rejected.stderr
        assert "Traceback" not in rejected.stderr
        slow = durable_cli(
            tmp_path, "runs", "update", "c1", "slow", "--args", "[5]", "--timeout", "0.2"
        )
        assert slow.returncode == 3 and "call again with update_id=" in slow.stderr
        bad = durable_cli(tmp_path, "runs", "update", "c1", "add", "--args", "{oops")
        assert bad.returncode == 2 and "--args is not valid JSON" in bad.stderr
        missing = durable_cli(tmp_path, "runs", "update", "nope", "add")
        assert missing.returncode == 2 and "nope" in missing.stderr
