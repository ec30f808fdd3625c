"""python-script-runner's side of the DAG benchmark (seed 002's engine): one fresh process.

Runs only under its private virtual environment (see psr_venv.py), which is why its import
is unchecked. Times a chain of N tasks, each depending on the one before, two ways:

  process   every task runs `true` through the package's default executor (a real
            subprocess per task, as the seed document's `script:` tasks do);
  noop      the same chain with a task_executor that returns success at once: what the
            engine itself costs per task, with no process at all.

Prints one BENCH_RESULT line (bench_common.emit) with seconds per chain for each.

The released package differs from the document's spelling: it imports as
`runners.workflows` (not `runner.workflows`), WorkflowParser.parse_file reads `tasks` as a
list of mappings with an `id` (not the document's mapping of task ids), and the engine runs
a DAG with `run_workflow(dag)` (there is no `run(workflow)`). The workload uses what exists.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import bench_common as bc
from runners.workflows import (  # type: ignore[import-not-found]
    WorkflowEngine,
    WorkflowParser,
)
from runners.workflows.workflow_engine import (  # type: ignore[import-not-found]
    TaskResult,
    TaskStatus,
)


def chain_yaml(n: int) -> str:
    lines = ["name: chain", "tasks:"]
    for i in range(n):
        lines.append(f"  - id: t{i}")
        lines.append('    script: "true"')
        if i:
            lines.append(f"    depends_on: [t{i - 1}]")
    return "\n".join(lines) + "\n"


def noop_executor(task: Any, context: Any) -> Any:
    return TaskResult(task_id=task.id, status=TaskStatus.COMPLETED, exit_code=0)


def run_chain(path: Path, n: int, *, noop: bool) -> float:
    dag = WorkflowParser().parse_file(str(path))
    engine = WorkflowEngine()
    start = time.perf_counter()
    result = engine.run_workflow(dag, task_executor=noop_executor if noop else None)
    elapsed = time.perf_counter() - start
    results = result["results"]
    ok = sum(1 for r in results if r["success"])
    if not result["success"] or len(results) != n or ok != n:
        raise RuntimeError(f"chain of {n}: success={result['success']}, {ok}/{len(results)} ok")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="durable-bench-psr-") as tmp:
        warm, path = Path(tmp) / "warm.yaml", Path(tmp) / "chain.yaml"
        warm.write_text(chain_yaml(2))
        path.write_text(chain_yaml(args.tasks))
        run_chain(warm, 2, noop=False)
        process, noop = [], []
        for _ in range(args.repeats):
            process.append(run_chain(path, args.tasks, noop=False))
            noop.append(run_chain(path, args.tasks, noop=True))
    bc.emit(
        {
            "tasks": args.tasks,
            "process_seconds": process,
            "noop_seconds": noop,
            "info": {"python_script_runner": version("python-script-runner")},
        }
    )


if __name__ == "__main__":
    main()
