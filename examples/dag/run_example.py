"""Run one of the DAG examples and print its result, as 002's "Check results" does.

    python examples/dag/run_example.py examples/dag/etl.yaml --stub
    python examples/dag/run_example.py examples/dag/workflow.yaml --input '{"fail": "load_data"}'
    python examples/dag/run_example.py examples/dag/ecommerce_order.yaml

--input     the run input (JSON); merged over the example's own input: `inputs/<name>.json`
            beside FILE, else the tools module's EXAMPLE_INPUT, if either exists
--tools     a Python file with ACTIONS (registered actions) and FUNCTIONS (callable from the
            definition's JavaScript); by default FILE's companion `<name>_tools.py`, if any
--stub      serve the outside services the examples call (stub_services.py) on 127.0.0.1 and
            point the run at it: input `services` and `api_endpoint`, SLACK_WEBHOOK,
            PAGERDUTY_EVENTS_URL and PD_KEY (unless already set); prints what it received
--db        the database URL (default memory://, i.e. not durable)
--expose-env NAME
            an environment variable the definition's `{{ env.NAME }}` may read (repeatable);
            by default the ones these examples read: SLACK_WEBHOOK, PD_KEY, PAGERDUTY_EVENTS_URL
            (expressions see no environment variable the operator did not expose)

Exit status: 0 when the run succeeded, 2 when it was partial, 1 when it failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from stub_services import StubServices

from durable.dag import DagResult
from sdk import App

# What the examples' templates read (notifications.yaml): this runner is their operator.
EXAMPLE_ENV = ("SLACK_WEBHOOK", "PD_KEY", "PAGERDUTY_EVENTS_URL")
_MARKS = {"succeeded": "✅", "failed": "❌", "skipped": "⏭️ ", "running": "▶️ ", "pending": "…"}


def load_tools(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load tools from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def companion_input(file: Path) -> Any:
    """The input an example is meant to run with (`inputs/<name>.json` beside it), or None."""
    candidate = file.parent / "inputs" / f"{file.stem}.json"
    return json.loads(candidate.read_text()) if candidate.exists() else None


def companion_tools(file: Path) -> Path | None:
    candidate = file.with_name(f"{file.stem}_tools.py")
    return candidate if candidate.exists() else None


async def run_file(
    file: Path,
    run_input: Any = None,
    *,
    tools: ModuleType | None = None,
    db: str = "memory://",
    expose_env: tuple[str, ...] = EXAMPLE_ENV,
) -> DagResult:
    """Register the definition (and its tools) on a fresh App and run it to its end."""
    app = App(db, expose_env=expose_env)
    functions: dict[str, Any] = {}
    if tools is not None:
        for name, fn in getattr(tools, "ACTIONS", {}).items():
            app.register_action(name, fn)
        functions = dict(getattr(tools, "FUNCTIONS", {}))
    name = app.register_dag(file, functions=functions)
    async with app:
        return await app.run_dag(name, run_input)


def report(result: DagResult) -> str:
    lines = [
        f"Status: {result.status}",  # succeeded, failed, partial
        f"Duration: {result.duration_seconds}s",
        f"Tasks completed: {result.completed_count}/{result.total_count}"
        f" ({result.failed_count} failed, {result.skipped_count} skipped)",
    ]
    for step_id, step in result.steps.items():
        took = f" in {step.duration_seconds:.2f}s" if step.duration_seconds is not None else ""
        line = f"{_MARKS.get(step.status, '?')} {step_id}: {step.status}{took}"
        if step.status == "failed":
            line += f": {step.error}"
        elif step.status == "skipped":
            line += f" ({step.skip_reason})"
        elif isinstance(step.result, dict) and "stdout" in step.result:
            line += f": {str(step.result['stdout']).strip()[:120]}"
        elif step.result is not None:
            line += f": {json.dumps(step.result, default=str)[:120]}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--input", default=None, help="the run input, as JSON")
    parser.add_argument("--tools", type=Path, default=None)
    parser.add_argument("--stub", action="store_true")
    parser.add_argument("--db", default="memory://")
    parser.add_argument("--expose-env", action="append", metavar="NAME")
    args = parser.parse_args(argv)
    tools_path = args.tools or companion_tools(args.file)
    tools = load_tools(tools_path) if tools_path is not None else None
    run_input: Any = companion_input(args.file)
    if run_input is None:
        run_input = getattr(tools, "EXAMPLE_INPUT", None)
    if args.input is not None:
        given = json.loads(args.input)
        both_dicts = isinstance(run_input, dict) and isinstance(given, dict)
        run_input = {**run_input, **given} if both_dicts else given
    with contextlib.ExitStack() as stack:
        stub = None
        if args.stub:
            stub = stack.enter_context(StubServices())
            run_input = dict(run_input or {})
            run_input.setdefault("services", stub.url)
            run_input.setdefault("api_endpoint", f"{stub.url}/v1")
            os.environ.setdefault("SLACK_WEBHOOK", f"{stub.url}/slack/webhook")
            os.environ.setdefault("PAGERDUTY_EVENTS_URL", f"{stub.url}/pagerduty/v2/enqueue")
            os.environ.setdefault("PD_KEY", "example-routing-key")
        exposed = tuple(args.expose_env) if args.expose_env else EXAMPLE_ENV
        result = asyncio.run(
            run_file(args.file, run_input, tools=tools, db=args.db, expose_env=exposed)
        )
        print(report(result))
        if stub is not None:
            print(f"Stub services received {len(stub.requests)} request(s):")
            for request in stub.requests:
                print(f"  {request.method} {request.path}")
    return {"succeeded": 0, "partial": 2}.get(result.status, 1)


if __name__ == "__main__":
    sys.exit(main())
