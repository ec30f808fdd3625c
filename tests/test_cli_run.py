"""`durable run FILE`: real `python -m durable` subprocesses on real SQLite files.

The definitions are small YAML files whose script steps leave traces next to them (a script
runs in its definition's directory), so the tests can check what ran, how often and when."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

FANOUT = """\
name: fanout
tasks:
  a:
    script: echo hi
  b:
    script: echo b >> side.txt
    depends_on: [a]
  c:
    depends_on: [a]
    matrix:
      x: [1, 2, 3]
  d:
    depends_on: [b, c]
"""

PARTIAL = """\
name: partial
tasks:
  a:
    script: echo a
  b:
    script: exit 3
    depends_on: [a]
  e:
    depends_on: [b]
  report:
    depends_on: [b]
    run_always: true
"""

# Three independent steps that each log their start and end (nanoseconds) and sleep between.
TIMED_STEP = (
    'script: echo "start {n} $(date +%s%N)" >> times.txt; sleep 0.2; '
    'echo "end {n} $(date +%s%N)" >> times.txt'
)
TIMED = "name: timed\ntasks:\n" + "".join(
    f"  s{n}:\n    {TIMED_STEP.format(n=n)}\n" for n in range(3)
)

# b waits for a file unless it is already there: a stop signal catches it in flight.
GATED = """\
name: gated
tasks:
  a:
    script: echo a >> side.txt
  b:
    script: echo started >> b.txt; while [ ! -f go ]; do sleep 0.05; done; echo b >> side.txt
    depends_on: [a]
"""


def durable(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "durable", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_dry_run_prints_the_plan_and_touches_no_database(tmp_path: Path) -> None:
    flow = write(tmp_path, FANOUT)
    proc = durable("run", str(flow), "--dry-run", "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "  1. a" in lines
    assert "  2. b, c ×3" in lines
    assert lines[-1] == "  3. d"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow.yaml"]  # no db, no side.txt
    as_json = durable("run", str(flow), "--dry-run", "--json", cwd=tmp_path)
    report = json.loads(as_json.stdout)
    assert report["levels"] == [["a"], ["b", "c"], ["d"]] and report["matrix"] == {"c": 3}
    assert not (tmp_path / "durable.db").exists()


def test_a_successful_run_exits_0_and_writes_its_result(tmp_path: Path) -> None:
    flow = write(tmp_path, FANOUT)
    db = str(tmp_path / "runs.db")
    proc = durable(
        "run", str(flow), "--db", db, "--output", "out.json", "--input", '{"k": 1}', cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert re.match(r"run [0-9a-f]{32} \(fanout@1\) on ", proc.stdout)
    assert "succeeded — 4/4 completed, 0 failed, 0 skipped" in proc.stdout
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["status"] == "succeeded"
    assert (result["completed_count"], result["total_count"]) == (4, 4)
    assert result["steps"]["a"]["result"]["stdout"] == "hi\n"
    assert [i["matrix"] for i in result["steps"]["c"]["instances"]] == [
        {"x": 1},
        {"x": 2},
        {"x": 3},
    ]
    assert (tmp_path / "side.txt").read_text() == "b\n"


def test_a_failed_upstream_with_run_always_is_partial_and_exits_1(tmp_path: Path) -> None:
    flow = write(tmp_path, PARTIAL)
    proc = durable("run", str(flow), "--db", "p.db", "--output", "out.json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "partial — 2/4 completed, 1 failed, 1 skipped" in proc.stdout
    assert "exited with code 3" in proc.stdout
    result = json.loads((tmp_path / "out.json").read_text())
    statuses = {k: s["status"] for k, s in result["steps"].items()}
    assert statuses == {"a": "succeeded", "b": "failed", "e": "skipped", "report": "succeeded"}
    assert result["steps"]["b"]["details"]["exit_code"] == 3
    assert (result["status"], result["failed_count"], result["skipped_count"]) == ("partial", 1, 1)


def test_follow_prints_starts_and_ends_in_order(tmp_path: Path) -> None:
    flow = write(tmp_path, PARTIAL)
    proc = durable("run", str(flow), "--db", "f.db", "--follow", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    at = {line: i for i, line in enumerate(lines)}

    def find(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.fullmatch(pattern, line)]
        assert len(found) == 1, (pattern, lines)
        return found[0]

    start_a, end_a = at["▶ a (attempt 1)"], find(r"✓ a \d+\.\d\ds")
    start_b = at["▶ b (attempt 1)"]
    fail_b = find(r"✗ b: durable\.dag\.ScriptFailed: script of step 'b' exited with code 3")
    skip_e = find(r"↷ e skipped: .*'b' failed.*")
    start_r, end_r = at["▶ report (attempt 1)"], find(r"✓ report \d+\.\d\ds")
    assert start_a < end_a < start_b < fail_b < min(skip_e, start_r)
    assert start_r < end_r < find(r"run \S+ \(partial@1\): partial — .*")


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    flow = write(tmp_path, FANOUT)
    bad_input = durable("run", str(flow), "--input", '{"k":\n  nope}', cwd=tmp_path)
    assert bad_input.returncode == 2
    assert bad_input.stderr == (
        "error: --input is not valid JSON: Expecting value at line 2, column 3\n"
    )
    missing = durable("run", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1
    assert missing.stderr.startswith(f"error: {tmp_path / 'missing.yaml'}")
    assert "cannot read the definition" in missing.stderr
    broken = write(tmp_path, "name: broken\ntasks:\n  a:\n    depends_on: [nope]\n", "bad.yaml")
    invalid = durable("run", str(broken), cwd=tmp_path)
    assert invalid.returncode == 2 and invalid.stdout == ""
    assert re.fullmatch(rf"error: {re.escape(str(broken))}:4: .*'nope'.*\n", invalid.stderr)
    assert "Traceback" not in bad_input.stderr + missing.stderr + invalid.stderr
    assert not (tmp_path / "durable.db").exists()  # nothing was opened


def _spans(path: Path) -> list[tuple[int, int]]:
    marks: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines():
        kind, step, ns = line.split()
        marks.setdefault(step, {})[kind] = int(ns)
    return sorted((m["start"], m["end"]) for m in marks.values())


def test_parallelism_1_never_runs_two_scripts_at_once(tmp_path: Path) -> None:
    flow = write(tmp_path, TIMED)
    # Uncapped first: proves the trace would show an overlap if there was one.
    free = durable("run", str(flow), "--db", "free.db", cwd=tmp_path)
    assert free.returncode == 0, free.stderr
    spans = _spans(tmp_path / "times.txt")
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans)), spans
    (tmp_path / "times.txt").unlink()
    capped = durable("run", str(flow), "--db", "capped.db", "--parallelism", "1", cwd=tmp_path)
    assert capped.returncode == 0, capped.stderr
    spans = _spans(tmp_path / "times.txt")
    assert len(spans) == 3
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans


def test_rerunning_a_finished_run_id_executes_nothing(tmp_path: Path) -> None:
    flow = write(tmp_path, FANOUT)
    first = durable("run", str(flow), "--db", "r.db", "--run-id", "nightly", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("run nightly (fanout@1) on ")
    again = durable("run", str(flow), "--db", "r.db", "--run-id", "nightly", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "side.txt").read_text() == "b\n"  # b did not run a second time
    summary = [line for line in first.stdout.splitlines() if "completed" in line]
    assert summary and summary[0] in again.stdout.splitlines()
    # A changed file must not resume the old log under the same id.
    write(tmp_path, FANOUT.replace("echo hi", "echo bye"))
    changed = durable("run", str(flow), "--db", "r.db", "--run-id", "nightly", cwd=tmp_path)
    assert changed.returncode == 2
    assert changed.stderr.startswith("error: run 'nightly' was started from a different")


def test_a_stop_signal_releases_the_run_and_the_same_id_resumes_it(tmp_path: Path) -> None:
    flow = write(tmp_path, GATED)
    args = [sys.executable, "-m", "durable", "run", str(flow), "--db", "g.db", "--run-id", "g"]
    args += ["--lease-ttl", "60"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DURABLE_DATABASE_URL", None)
    with subprocess.Popen(
        [*args, "--follow"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("▶ b"):
                break
        # "▶ b" is the step's start in the log; its script starts a moment later (through
        # the launcher that measures its resources): stop the run once the script runs.
        deadline = time.monotonic() + 20
        while not (tmp_path / "b.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    assert (tmp_path / "side.txt").read_text() == "a\n"
    (tmp_path / "go").touch()
    began = time.monotonic()
    resumed = durable("run", str(flow), "--db", "g.db", "--run-id", "g", cwd=tmp_path)
    # The lease was given back, so this did not wait for it to expire (60 s).
    assert time.monotonic() - began < 30
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "b.txt").read_text() == "started\nstarted\n"
    assert (tmp_path / "side.txt").read_text() == "a\nb\n"  # a ran once, b finished now


LOOPED = """\
name: looped
tasks:
  start:
    script: echo go
  rounds:
    depends_on: [start]
    loop:
      body: [work, check_a, check_b, tally]
      until: "{{ tally.result.stdout.trim() == '3' }}"
      max_iterations: 5
  work:
    script: echo "round $N" >> side.txt
    environment: {N: "{{ iteration }}"}
  check_a: {script: echo a, depends_on: [work]}
  check_b: {script: echo b, depends_on: [work]}
  tally:
    script: wc -l < side.txt | tr -d ' '
    depends_on: [check_a, check_b]
  done:
    script: echo done
    depends_on: [rounds]
"""


def test_a_loop_over_a_body_plans_runs_and_reports_every_iteration(tmp_path: Path) -> None:
    flow = write(tmp_path, LOOPED)
    plan = durable("validate", str(flow), cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines()[-3:] == [
        "  1. start",
        "  2. rounds (loop over work → check_a, check_b → tally, at most 5 times)",
        "  3. done",
    ]
    proc = durable("run", str(flow), "--db", "l.db", "--output", "out.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "succeeded — 3/3 completed, 0 failed, 0 skipped" in proc.stdout
    assert (tmp_path / "side.txt").read_text() == "round 1\nround 2\nround 3\n"
    result = json.loads((tmp_path / "out.json").read_text())
    rounds = result["steps"]["rounds"]
    assert [i["name"] for i in rounds["instances"]] == ["rounds#1", "rounds#2", "rounds#3"]
    assert rounds["result"]["stdout"] == "3\n"
    assert [i["name"] for i in result["steps"]["check_b"]["instances"]] == [
        "check_b#1",
        "check_b#2",
        "check_b#3",
    ]


BAD_BEFORE_RUN = """\
name: refused
tasks:
  a:
    script: echo a >> side.txt
  b:
    script: ./missing.sh
    depends_on: [a]
  c:
    script: echo c >> side.txt
    skip_if: "a.failed &&"
"""


def test_a_definition_that_cannot_run_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    flow = write(tmp_path, BAD_BEFORE_RUN)
    db = tmp_path / "runs.db"
    for extra in ([], ["--dry-run"], ["--json"]):
        proc = durable("run", str(flow), "--db", str(db), *extra, cwd=tmp_path)
        assert proc.returncode == 2, (extra, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        if "--json" in extra:
            report = json.loads(proc.stdout)
            assert report["valid"] is False and len(report["problems"]) == 2
            continue
        errors = proc.stderr.splitlines()
        assert errors[0].startswith(f"error: {flow}:6: step 'b': script file './missing.sh'")
        assert errors[1].startswith(f"error: {flow}:10: step 'c': bad JavaScript in skip_if")
        assert len(errors) == 2, errors
    # Nothing ran and nothing was recorded: no database, no run, no side effect.
    assert not db.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow.yaml"]


UNDELIVERABLE = """\
name: notified
tasks:
  a:
    script: echo a
notifications:
  on_success:
    - type: slack
      webhook: '{{ env.SLACK_WEBHOOK }}'
"""


def test_a_notification_that_cannot_be_delivered_is_in_the_summary_and_fails_fast(
    tmp_path: Path,
) -> None:
    flow = write(tmp_path, UNDELIVERABLE)
    started = time.monotonic()
    proc = durable("run", str(flow), "--db", "n.db", "--output", "out.json", cwd=tmp_path)
    elapsed = time.monotonic() - started
    # The run itself succeeded; its notification could not go anywhere.
    assert proc.returncode == 0, proc.stderr
    assert "succeeded — 1/1 completed, 0 failed, 0 skipped, 1 notification failed" in proc.stdout
    assert (
        "notification failed: @notify.on_success[0] (slack): SLACK_WEBHOOK is not set"
        in proc.stdout
    ), proc.stdout
    # A configuration error is not retried: no 30 s of backoff for an empty URL.
    assert elapsed < 15, elapsed
    result = json.loads((tmp_path / "out.json").read_text())
    [delivery] = result["notifications"]
    assert delivery["name"] == "@notify.on_success[0]"
    assert (delivery["channel"], delivery["status"], delivery["attempts"]) == ("slack", "failed", 1)
    assert "SLACK_WEBHOOK is not set" in delivery["error"]
    assert result["notifications_failed"] == 1


def test_a_variable_that_is_set_but_not_exposed_says_how_to_expose_it(tmp_path: Path) -> None:
    flow = write(tmp_path, UNDELIVERABLE)
    env = {**os.environ, "SLACK_WEBHOOK": "http://127.0.0.1:9/hook"}
    env.pop("DURABLE_DATABASE_URL", None)
    env.pop("DURABLE_EXPOSE_ENV", None)
    proc = subprocess.run(
        [sys.executable, "-m", "durable", "run", str(flow), "--db", "n.db"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "SLACK_WEBHOOK is set but not exposed to templates" in proc.stdout, proc.stdout
    assert "--expose-env SLACK_WEBHOOK" in proc.stdout
