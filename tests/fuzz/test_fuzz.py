"""The workflow fuzzer, a bounded number of examples (benchmarks/fuzz.py runs it for longer).

Hypothesis draws a program (fuzz_program's grammar) and a schedule of signals, cancels and
SIGKILLs; fuzz_harness executes it on a real database with worker subprocesses that are killed,
and crash-free in this process, and checks termination, exactly-once recording, the outcome
against the crash-free run and the model, and a clean replay of every log.

Derandomized: the suite runs the same examples every time, so a red run means the code changed,
not that a new program was drawn (timing still varies: where kills land, how branches
interleave). Exploring new programs is benchmarks/fuzz.py's job (--seed S). FUZZ_EXAMPLES=N
and FUZZ_SEED=S change the count and draw fresh examples from seed S.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

# Imported now, not in the middle of a draw: Hypothesis's scan of loaded modules for constants
# touches a lazy import of httpx, whose rich import calls random.getrandbits, which Hypothesis
# reports as a strategy using the random module.
import httpx  # noqa: F401
import pytest
from fuzz_harness import Example, example_json, examples, run_example
from fuzz_program import render
from hypothesis import HealthCheck, given, note, seed, settings
from pgserver import PgSession

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
PG_EXAMPLES = int(os.environ.get("FUZZ_PG_EXAMPLES", "5"))
SEED = os.environ.get("FUZZ_SEED")

# function_scoped_fixture: the fixtures used hand out a fresh directory or schema per call.
SETTINGS = settings(
    deadline=None,
    derandomize=SEED is None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def _run(ex: Example, workdir: Path, url: str | None = None) -> None:
    note(f"program:\n{render(ex.prog, 1)}\nexample: {example_json(ex)}")
    asyncio.run(run_example(ex, workdir, url))


@seed(int(SEED or 0))
@settings(SETTINGS, max_examples=EXAMPLES)
@given(ex=examples())
def test_fuzz_sqlite(ex: Example, tmp_path_factory: pytest.TempPathFactory) -> None:
    _run(ex, tmp_path_factory.mktemp("fuzz"))


@seed(int(SEED or 0) + 1)
@settings(SETTINGS, max_examples=PG_EXAMPLES)
@given(ex=examples())
def test_fuzz_postgres(
    ex: Example, tmp_path_factory: pytest.TempPathFactory, pg_schema_factory: PgSession
) -> None:
    _run(ex, tmp_path_factory.mktemp("fuzz-pg"), pg_schema_factory.fresh_url())
