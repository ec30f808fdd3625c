"""A damaged event seen through the HTTP API: the server's data is at fault, not the request,
so the answer is a 500, but one that names the run and the event (never the generic "internal
server error"), and the rest of the API keeps working."""

from __future__ import annotations

from pathlib import Path

from serving import serve
from test_sqlite_integrity import finished_run, flip_a_byte


async def test_a_damaged_event_is_named_by_the_api(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    _, run_id = await finished_run(path, tmp_path)
    flip_a_byte(path, run_id, 3)
    with serve(tmp_path, "--no-worker", db=f"sqlite:///{path}") as served, served.client() as api:
        answer = api.get(f"/executions/{run_id}")
        assert answer.status_code == 500, answer.text
        error = answer.json()["error"]
        assert f"run {run_id!r}: event #3" in error and "backup" in error, error
        listed = api.get("/executions")
        assert listed.status_code == 200 and run_id in listed.text
