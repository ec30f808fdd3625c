"""POST /executions/start checks the input against the workflow's annotation: 422 at start,
naming the workflow, the type and where the value differs, and nothing is created."""

from __future__ import annotations

import textwrap
from pathlib import Path

from serving import serve, wait_status

APP = textwrap.dedent(
    """
    from sdk import App, Context

    app = App("sqlite:///unused.db")

    @app.workflow(name="tally")
    async def tally(ctx: Context, context: dict[str, int]) -> int:
        return sum(context.values())
    """
)


def test_the_api_answers_422_for_an_input_that_does_not_fit(tmp_path: Path) -> None:
    (tmp_path / "typed.py").write_text(APP)
    with serve(tmp_path, "--app", "typed:app") as server, server.client() as api:
        bad = api.post("/executions/start", json={"workflowId": "tally", "context": "bad"})
        assert bad.status_code == 422, bad.text
        error = bad.json()["error"]
        assert "the input of workflow 'tally' does not match its annotation" in error
        assert "dict[str, int]" in error and "Expected `object`, got `str`" in error
        assert api.get("/executions").json()["executions"] == []
        ok = api.post("/executions/start", json={"workflowId": "tally", "context": {"a": 2}})
        assert ok.status_code == 201, ok.text
        done = wait_status(api, ok.json()["executionId"], {"succeeded", "failed"})
        assert done["status"] == "succeeded"
