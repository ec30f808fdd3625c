"""Mutation testing of the modules that carry the engine's guarantees, within a time budget.

    pip install -r requirements/mutation.txt        # cosmic-ray: not in the test extras
    python benchmarks/mutation.py --budget 20m [--module durable/api/_auth.py ...] [--seed N]
        [--markdown FILE] [--fresh]

The modules and the tests that must notice their mutants are in benchmarks/mutation.toml.
cosmic-ray makes the mutants (its operators, its session database, its mutate-and-test step:
apply one mutation to the file, run the test command in a subprocess, put the file back); this
script drives it so that a budget holds:

- It works in a copy of the tree (the tracked files and the untracked ones git does not ignore),
  so a run cut short never leaves a mutated file in yours, and the tests' subprocesses
  (`python -m durable`, workers) import the mutant too: they put the tree of the test file on
  PYTHONPATH, which is the copy's.
- The budget is shared among the modules (what one does not use passes to the next); a mutant
  is started only if a run of its tests (the unmutated run's time) still fits. What was not
  reached is reported as untested, and the score is over the tested mutants only. Mutants are
  taken in a fixed shuffled order (--seed), so a partial run is a sample, not the first
  operators; a later run with the same module source and tests resumes where it stopped
  (sessions in .mutation/, --fresh discards them).
- Mutations inside annotations and `if TYPE_CHECKING:` blocks, on lines marked
  `# pragma: no mutate`, and of the operators the toml excludes are skipped (counted).
- A mutant that `tests` do not detect is run against `confirm` before it counts as survived.

Each module's report: mutants, skipped, tested, killed, timed out, survived, score
((killed + timed out) / tested), then each survivor as file:line, operator and diff.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import importlib.metadata
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "mutation.toml"
SESSIONS = ROOT / ".mutation"
PACKAGES = ("durable", "storage", "sdk")
TIMEOUT_OUTPUT = "timeout"  # cosmic-ray's output for a test run it killed at the timeout
CONFIRMED = "[confirm] "  # prefixed to the output of a mutant only `confirm` detected
STOP = threading.Event()  # set by SIGTERM / SIGINT


class ConfigError(ValueError):
    """benchmarks/mutation.toml cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Module:
    path: str
    what: str
    tests: tuple[str, ...]
    confirm: tuple[str, ...] = ()
    postgres: bool = False


@dataclass(frozen=True)
class Settings:
    timeout_factor: float
    timeout_min: float
    exclude_operators: tuple[str, ...]


def load_config(path: Path = CONFIG) -> tuple[Settings, list[Module]]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    raw = data.get("settings", {})
    settings = Settings(
        float(raw.get("timeout-factor", 3.0)),
        float(raw.get("timeout-min", 30.0)),
        tuple(raw.get("exclude-operators", ())),
    )
    for pattern in settings.exclude_operators:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"exclude-operators: {pattern!r} is not a regex: {exc}") from None
    modules = []
    for entry in data.get("module", []):
        unknown = set(entry) - {"path", "what", "tests", "confirm", "postgres"}
        if unknown or "path" not in entry or not entry.get("tests"):
            raise ConfigError(f"module {entry.get('path')!r}: needs path and tests ({unknown})")
        modules.append(
            Module(
                entry["path"],
                entry.get("what", ""),
                tuple(entry["tests"]),
                tuple(entry.get("confirm", ())),
                bool(entry.get("postgres", False)),
            )
        )
    if len({m.path for m in modules}) != len(modules):
        raise ConfigError("a module is listed twice")
    return settings, modules


def test_targets(args: tuple[str, ...]) -> list[str]:
    """The paths and node ids among pytest arguments (not the options nor their values)."""
    targets, skip_next = [], False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg in ("-k", "-m", "--deselect"):
            skip_next = True
        elif not arg.startswith("-"):
            targets.append(arg)
    return targets


Span = tuple[tuple[int, int], tuple[int, int]]  # ((line, column), (line, column)), 1-based lines


def skipped_spans(source: str) -> list[Span]:
    """Where a mutation changes nothing that runs: annotations (this tree postpones them, and
    mypy is what checks them) and `if TYPE_CHECKING:` blocks. Columns in characters, as
    cosmic-ray's parser counts them (ast counts UTF-8 bytes)."""
    lines = source.splitlines()

    def col(line: int, byte_col: int) -> int:
        return len(lines[line - 1].encode()[:byte_col].decode(errors="ignore"))

    def span(node: ast.AST) -> Span:
        start = (node.lineno, col(node.lineno, node.col_offset))  # type: ignore[attr-defined]
        end_line = node.end_lineno  # type: ignore[attr-defined]
        return start, (end_line, col(end_line, node.end_col_offset))  # type: ignore[attr-defined]

    spans: list[Span] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            spans.append(span(node.returns))
        elif isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            spans.append(span(node.annotation))
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            spans.append(span(node))
    return spans


def within(spans: list[Span], start: tuple[int, int], end: tuple[int, int]) -> bool:
    return any(s <= tuple(start) and tuple(end) <= e for s, e in spans)


def parse_budget(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration such as 90s, 20m or 1.5h")
    return float(match.group(1)) * {"": 60, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@dataclass
class Report:
    module: Module
    mutants: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    survivors: list[tuple[int, str, str]] = field(default_factory=list)  # line, operator, diff
    untested: int = 0
    baseline: float = 0.0
    problem: str = ""

    @property
    def tested(self) -> int:
        return sum(self.outcomes[k] for k in ("killed", "confirm", "timeout", "survived"))

    @property
    def score(self) -> float | None:
        detected = self.tested - self.outcomes["survived"]
        return detected / self.tested if self.tested else None

    def summary(self) -> str:
        score = "-" if self.score is None else f"{100 * self.score:.1f}%"
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        text = (
            f"{self.module.path}: {self.mutants} mutants (skipped: {skipped}); "
            f"tested {self.tested}, killed {self.outcomes['killed'] + self.outcomes['confirm']} "
            f"({self.outcomes['confirm']} only by the confirm tests), timed out "
            f"{self.outcomes['timeout']}, survived {self.outcomes['survived']}; score {score}"
        )
        if self.untested:
            text += f"; NOT TESTED within the budget: {self.untested}"
        if self.outcomes["error"]:
            text += f"; cosmic-ray errors: {self.outcomes['error']}"
        return text + (f"; {self.problem}" if self.problem else "")


def copy_tree(dest: Path) -> None:
    """The tracked files and the untracked ones git does not ignore (uncommitted work counts)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def pytest_command(args: tuple[str, ...]) -> str:
    # -x: a detected mutant costs only the tests up to the first failure. The plugins that
    # load by entry point are off (PYTEST_DISABLE_PLUGIN_AUTOLOAD in the environment): loading
    # hypothesis', schemathesis' and faker's takes seconds per mutant; pytest-asyncio is named.
    base = [sys.executable, "-m", "pytest", "-x", "-q", "--no-header", "-p", "no:cacheprovider"]
    return shlex.join([*base, "-p", "pytest_asyncio.plugin", *args])


class Runner:
    def __init__(self, settings: Settings, seed: int, fresh: bool) -> None:
        self.settings = settings
        self.seed = seed
        self.fresh = fresh

    def run(self, module: Module, deadline: float) -> Report:
        from cosmic_ray.commands import init
        from cosmic_ray.tools.filters.pragma_no_mutate import PragmaNoMutateFilter
        from cosmic_ray.work_db import WorkDB, use_db

        report = Report(module)
        source = Path(module.path).read_text(encoding="utf-8")
        key = hashlib.sha256(
            "\0".join(
                [
                    importlib.metadata.version("cosmic-ray"),
                    source,
                    *module.tests,
                    "|",
                    *module.confirm,
                ]
            ).encode()
        ).hexdigest()[:12]
        SESSIONS.mkdir(exist_ok=True)
        session = SESSIONS / f"{module.path.replace('/', '.')}-{key}.sqlite"
        if self.fresh:
            session.unlink(missing_ok=True)
        new = not session.exists()
        with use_db(str(session), WorkDB.Mode.create) as db:
            if new:
                init([Path(module.path)], db, {})
                PragmaNoMutateFilter().filter(db, None)
            spans = skipped_spans(source)
            self._test(db, module, report, deadline, spans)
            self._tally(db, report, spans)
        return report

    def _skipped(self, mutation: Any, spans: list[Span]) -> str:
        """Why a mutation is not tried (decided anew each run: a session outlives a change of
        the exclusions), or ''."""
        if any(re.search(p, mutation.operator_name) for p in self.settings.exclude_operators):
            return "operator excluded"
        if within(spans, mutation.start_pos, mutation.end_pos):
            return "in an annotation or TYPE_CHECKING"
        return ""

    def _order(self, item: Any) -> str:
        (m,) = item.mutations
        return hashlib.sha256(f"{self.seed}:{m.operator_name}:{m.occurrence}".encode()).hexdigest()

    def _baseline(self, args: tuple[str, ...]) -> float | str:
        """The unmutated run's duration, or why it cannot serve (its output's tail)."""
        from cosmic_ray.testing import run_tests
        from cosmic_ray.work_item import TestOutcome

        started = time.monotonic()
        outcome, output = run_tests(pytest_command(args), 3600)
        if outcome != TestOutcome.SURVIVED:
            return "the unmutated tests fail:\n" + "\n".join(str(output).splitlines()[-15:])
        return time.monotonic() - started

    def _canary(self, module: Module, baseline: float) -> bool:
        """Whether the tests fail when the module cannot even be imported: if not, they run
        some other copy of it, and every mutant would survive for that reason alone."""
        from cosmic_ray.testing import run_tests
        from cosmic_ray.util import restore_contents
        from cosmic_ray.work_item import TestOutcome

        path = Path(module.path)
        with restore_contents(path):
            with path.open("a", encoding="utf-8") as file:
                file.write("\nraise RuntimeError('mutation canary')\n")
            outcome, _ = run_tests(pytest_command(module.tests), self._timeout(baseline))
        return bool(outcome == TestOutcome.KILLED)

    def _timeout(self, baseline: float) -> float:
        return max(self.settings.timeout_min, self.settings.timeout_factor * baseline)

    def _test(
        self, db: Any, module: Module, report: Report, deadline: float, spans: list[Span]
    ) -> None:
        from cosmic_ray.mutating import mutate_and_test
        from cosmic_ray.work_item import TestOutcome, WorkResult

        pending = [i for i in db.pending_work_items if not self._skipped(i.mutations[0], spans)]
        pending.sort(key=self._order)
        if not pending or STOP.is_set() or time.monotonic() >= deadline:
            return  # (--budget 0: only the report of what the sessions hold)
        baseline = self._baseline(module.tests)
        if isinstance(baseline, str):
            report.problem = baseline
            return
        report.baseline = baseline
        if not self._canary(module, baseline):
            report.problem = (
                "the tests pass with the module made unimportable: they do not run it from the "
                "copy (a subprocess importing another tree?); no mutant would be detected"
            )
            return
        print(f"  unmutated tests: {baseline:.1f} s; {len(pending)} mutants to test", flush=True)
        confirm_baseline: float | str | None = None
        for item in pending:
            if STOP.is_set() or time.monotonic() + baseline > deadline:
                break
            result = mutate_and_test(
                item.mutations, pytest_command(module.tests), self._timeout(baseline)
            )
            if result.test_outcome == TestOutcome.SURVIVED and module.confirm:
                if confirm_baseline is None:
                    confirm_baseline = self._baseline(module.confirm)
                if isinstance(confirm_baseline, str):
                    # No survivor is recorded unconfirmed: the module stops here.
                    report.problem = "confirm: " + confirm_baseline
                    break
                if time.monotonic() + confirm_baseline > deadline:
                    break  # left untested: the next run confirms it
                second = mutate_and_test(
                    item.mutations,
                    pytest_command(module.confirm),
                    self._timeout(confirm_baseline),
                )
                if second.test_outcome == TestOutcome.KILLED:
                    result = WorkResult(
                        second.worker_outcome,
                        output=CONFIRMED + str(second.output),
                        test_outcome=second.test_outcome,
                        diff=second.diff,
                    )
            db.set_result(item.job_id, result)
            print(_mark(result), end="", flush=True)
        print(flush=True)

    def _tally(self, db: Any, report: Report, spans: list[Span]) -> None:
        from cosmic_ray.work_item import TestOutcome, WorkerOutcome

        done = {job: result for job, result in db.results}
        for item in db.work_items:
            (m,) = item.mutations
            result = done.get(item.job_id)
            if why := self._skipped(m, spans):
                report.mutants += 1
                report.skipped[why] += 1
                continue
            if result is None:
                report.mutants += 1
                report.untested += 1
                continue
            if result.worker_outcome == WorkerOutcome.NO_TEST:
                continue  # the operator found nothing to change there: not a mutant
            report.mutants += 1
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                report.skipped[result.output or "pragma: no mutate"] += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                report.outcomes["survived"] += 1
                report.survivors.append((m.start_pos[0], m.operator_name, result.diff or ""))
            elif result.worker_outcome != WorkerOutcome.NORMAL or result.test_outcome in (
                None,
                TestOutcome.INCOMPETENT,
            ):
                report.outcomes["error"] += 1
            elif result.output == TIMEOUT_OUTPUT:
                report.outcomes["timeout"] += 1
            elif str(result.output).startswith(CONFIRMED):
                report.outcomes["confirm"] += 1
            else:
                report.outcomes["killed"] += 1
        report.survivors.sort()


def _mark(result: Any) -> str:
    if result.test_outcome is None:
        return "-"  # nothing to mutate there after all
    if result.output == TIMEOUT_OUTPUT:
        return "T"
    if str(result.output).startswith(CONFIRMED):
        return "c"
    return {"killed": ".", "survived": "S"}.get(str(result.test_outcome.value), "E")


def print_report(report: Report) -> None:
    print(report.summary())
    for line, operator, diff in report.survivors:
        print(f"  SURVIVED {report.module.path}:{line} {operator}")
        body = [d for d in diff.splitlines() if d[:1] in "+-" and d[:3] not in ("+++", "---")]
        for text in body:
            print(f"      {text}")
    print(flush=True)


def markdown(reports: list[Report], command: str) -> str:
    out = [
        f"Command: `{command}`",
        "",
        "| module | mutants | skipped | tested | killed | "
        "timed out | survived | untested | score |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        score = "-" if r.score is None else f"{100 * r.score:.1f}%"
        killed = r.outcomes["killed"] + r.outcomes["confirm"]
        out.append(
            f"| {r.module.path} | {r.mutants} | {sum(r.skipped.values())} | {r.tested} | "
            f"{killed} | {r.outcomes['timeout']} | {r.outcomes['survived']} | {r.untested} | "
            f"{score} |"
        )
    for r in reports:
        if r.problem:
            out += ["", f"{r.module.path}: {r.problem}"]
        if not r.survivors:
            continue
        out += ["", f"### Survivors in {r.module.path}", ""]
        for line, operator, diff in r.survivors:
            changed = [
                d for d in diff.splitlines() if d[:1] in "+-" and d[:3] not in ("+++", "---")
            ]
            out.append(
                f"- `{r.module.path}:{line}` {operator}: "
                + " / ".join(f"`{c.strip()}`" for c in changed)
            )
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def postgres_server() -> Iterator[None]:
    """$DURABLE_TEST_PG_URL, else a throwaway server for the whole run (tests/pgserver.py)."""
    if os.environ.get("DURABLE_TEST_PG_URL"):
        yield
        return
    state = Path(tempfile.mkstemp(prefix="durable-mutation-pg.")[1])
    try:
        started = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "pgserver.py"), "start", str(state)],
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            raise SystemExit(f"no PostgreSQL server for the PostgreSQL modules: {started.stderr}")
        os.environ["DURABLE_TEST_PG_URL"] = started.stdout.strip()
        yield
    finally:
        subprocess.run([sys.executable, str(ROOT / "tests" / "pgserver.py"), "stop", str(state)])


def _interrupt(signum: int, frame: object) -> None:
    # Stop starting mutants; the one in hand ends (at most its timeout), cosmic-ray puts the
    # file back, and what was done is reported. The tests run in a session of their own, so a
    # Ctrl-C reaches only this process.
    print("\nstopping after the mutant in hand", file=sys.stderr, flush=True)
    STOP.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--budget",
        type=parse_budget,
        default=parse_budget("20m"),
        help="time for the whole run: 90s, 20m, 1.5h (default 20m)",
    )
    parser.add_argument(
        "--module",
        action="append",
        default=[],
        help="a module of benchmarks/mutation.toml (default: all, in its order)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the order in which mutants are tried")
    parser.add_argument("--markdown", type=Path, help="also write the results there")
    parser.add_argument("--fresh", action="store_true", help="discard the saved sessions")
    parser.add_argument("--config", type=Path, default=CONFIG, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    deadline = started + args.budget
    settings, modules = load_config(args.config.resolve())
    by_path = {m.path: m for m in modules}
    unknown = [m for m in args.module if m not in by_path]
    if unknown:
        parser.error(f"not in benchmarks/mutation.toml: {', '.join(unknown)}")
    selected = [by_path[m] for m in args.module] if args.module else modules
    try:
        import cosmic_ray  # noqa: F401
    except ImportError:
        parser.error("cosmic-ray is not installed: pip install -r requirements/mutation.txt")

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    reports: list[Report] = []
    with (
        tempfile.TemporaryDirectory(prefix="durable-mutation.") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        # Readable by all, as a checkout is: some tests run a child as an unprivileged user.
        work.chmod(0o755)
        copy_tree(work)
        # Compiled once: each test run reads these (PYTHONDONTWRITEBYTECODE, set by cosmic-ray,
        # only stops writing). The mutated module's own is removed: a mutant of the same size
        # written in the same second would otherwise run the original's bytecode.
        for package in (*PACKAGES, "tests"):
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", str(work / package)], check=True
            )
        os.chdir(work)
        stack.callback(os.chdir, ROOT)
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        paths = [p for p in paths if Path(p).resolve() != ROOT]
        os.environ["PYTHONPATH"] = os.pathsep.join([str(work), *paths])
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        if any(m.postgres for m in selected):
            stack.enter_context(postgres_server())
        runner = Runner(settings, args.seed, args.fresh)
        for i, module in enumerate(selected):
            if STOP.is_set():
                break
            target = work / module.path
            for pyc in (target.parent / "__pycache__").glob(f"{target.stem}.*.pyc"):
                pyc.unlink()
            share = (deadline - time.monotonic()) / (len(selected) - i)
            print(f"{module.path} ({module.what}): {share / 60:.1f} min", flush=True)
            report = runner.run(module, time.monotonic() + share)
            reports.append(report)
            print_report(report)
    print(f"{len(reports)} modules in {(time.monotonic() - started) / 60:.1f} min")
    for report in reports:
        print(report.summary())
    if args.markdown:
        command = shlex.join(["python", "benchmarks/mutation.py", *(argv or sys.argv[1:])])
        args.markdown.write_text(markdown(reports, command), encoding="utf-8")
    return 1 if any(r.problem for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
