"""schemathesis, driven by the server's own /openapi.json, against a running `durable serve`:
whatever it generates (valid and invalid bodies, paths, queries), the server never answers
with a 5xx, and what it answers is JSON of the documented content type, with a status code the
operation documents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance
from serving import Served, serve

DEFINITION = {
    "id": "fuzzed",
    "name": "Fuzzed",
    "steps": [
        {"id": "a", "action": "transform", "params": {"code": "return 1"}},
        {"id": "b", "action": "delay", "params": {"duration": 10}, "dependencies": ["a"]},
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    with serve(workdir, "--max-body", "65536") as served:
        # Something to find: a workflow and a couple of runs under known ids.
        with served.client() as api:
            assert api.post("/workflows", json=DEFINITION).status_code == 201
            for run_id in ("run-1", "run-2"):
                body = {"workflowId": "fuzzed", "executionId": run_id}
                assert api.post("/executions/start", json=body).status_code == 201
        yield served


@pytest.fixture(scope="module")
def api_schema(server: Served) -> schemathesis.schemas.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    schema.config.base_url = server.url
    return schema


# schemathesis's Python API, not its pytest plugin: the plugin's `from_fixture` reaches into
# pytest internals (`Function._nodeid`) that pytest 9.2 removed. A strategy per operation and
# a plain Hypothesis test over it cover the same ground and survive pytest upgrades.
def test_no_input_makes_the_server_fail(
    api_schema: schemathesis.schemas.BaseSchema, server: Served
) -> None:
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), f"the server's schema is invalid: {result.err()}"
        operations.append(result.ok())
    assert len(operations) >= 10, "the schema lost operations"
    for operation in operations:
        # Valid and invalid input alike: bad input must get a 4xx, never a 5xx.
        cases = st.one_of(
            operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
        )

        @given(case=cases)
        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same cases every run: a failure here reproduces
            database=None,
        )
        def no_server_error(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=server.url, timeout=30)
            case.validate_response(
                response,
                checks=[not_a_server_error, content_type_conformance, status_code_conformance],
            )

        no_server_error()


def test_the_schema_covers_every_route(server: Served) -> None:
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert set(paths) == {
        "/health",
        "/workflows",
        "/workflows/{workflow_id}",
        "/executions/start",
        "/executions",
        "/executions/{run_id}",
        "/executions/{run_id}/visualize",
        "/executions/{run_id}/cancel",
        "/executions/{run_id}/signals/{name}",
        "/executions/{run_id}/events",
        "/executions/{run_id}/streams",
        "/executions/{run_id}/streams/{key}",
        "/executions/{run_id}/approvals",
        "/executions/{run_id}/approvals/{tool_call_id}",
        "/queues",
        "/queues/{name}",
        "/executions/{run_id}/values",
        "/executions/{run_id}/values/{key}",
        "/executions/{run_id}/queries/{name}",
        "/executions/{run_id}/histories",
        "/executions/{run_id}/external",
        "/completions",
        "/completions/fail",
        "/executions/{run_id}/updates",
        "/executions/{run_id}/updates/{name}",
        "/executions/{run_id}/updates/{update_id}",
        "/schedules",
        "/schedules/{name}",
        "/schedules/{name}/pause",
        "/schedules/{name}/resume",
        "/schedules/{name}/trigger",
        "/schedules/{name}/backfill",
    }
