"""`durable run --follow`: the steps of a DAG run starting and finishing, as they happen.

On a terminal: a rich Live table, one row per step instance (matrix instance, loop
iteration, notification delivery), refreshed while it runs. Anywhere else: one plain line per
change, so logs and tests can read it:

    ▶ fetch_a (attempt 1)
    ✓ fetch_a 0.12s
    ✗ b: durable.dag.ScriptFailed: script of step 'b' exited with code 3
    ↷ e skipped: upstream 'b' failed (all_success)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from durable._events import LoggedEvent, StepCompleted, StepFailed, StepSkipped, StepStarted
from durable.cli._render import duration, status_text


@dataclass(slots=True)
class _Row:
    name: str
    status: str = "running"
    attempt: int = 0
    started: float | None = None
    finished: float | None = None
    note: str = ""

    def seconds(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.finished if self.finished is not None else now) - self.started


class Follower:
    """Folds the run's events into one row per instance and shows each change."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.rows: dict[str, _Row] = {}
        # StepCompleted/StepFailed carry only the position: its name comes from StepStarted.
        self._by_pos: dict[int, _Row] = {}

    async def follow(self, events: AsyncIterator[LoggedEvent]) -> None:
        if not self.live:
            async for logged in events:
                line = self.apply(logged)
                if line is not None:
                    self.console.print(line, highlight=False, markup=False, soft_wrap=True)
            return
        # transient: the final summary table repeats these rows, so the live one goes away.
        with Live(get_renderable=self.table, console=self.console, transient=True):
            async for logged in events:
                self.apply(logged)

    def apply(self, logged: LoggedEvent) -> str | None:
        """Update the rows; the plain line describing the change, if it is one to show."""
        event = logged.event
        if isinstance(event, StepStarted):
            row = self.rows.setdefault(event.name, _Row(event.name))
            row.status, row.attempt, row.note = "running", event.attempt, ""
            row.started, row.finished = logged.at, None
            self._by_pos[event.pos] = row
            return f"▶ {row.name} (attempt {event.attempt})"
        if isinstance(event, StepSkipped):
            row = self.rows.setdefault(event.name, _Row(event.name))
            row.status, row.note, row.finished = "skipped", event.reason, logged.at
            return f"↷ {row.name} skipped: {event.reason}"
        row_or_none = self._by_pos.get(getattr(event, "pos", -1))
        if row_or_none is None:
            return None
        row = row_or_none
        row.finished = logged.at
        elapsed = row.seconds(logged.at) or 0.0
        if isinstance(event, StepCompleted):
            row.status = "succeeded"
            return f"✓ {row.name} {elapsed:.2f}s"
        if isinstance(event, StepFailed):
            error = " ".join(str(event.error).split())
            if event.retryable and event.next_attempt_at is not None:
                wait = max(event.next_attempt_at - logged.at, 0.0)
                row.status, row.note = "retrying", f"retry in {wait:.1f}s after {error}"
                return f"✗ {row.name}: {error} (attempt {event.attempt}; retrying in {wait:.1f}s)"
            row.status, row.note = "failed", error
            return f"✗ {row.name}: {error}"
        return None

    def table(self) -> Table:
        now = time.time()
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("step", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("attempt", justify="right")
        table.add_column("duration", justify="right")
        table.add_column("note", overflow="ellipsis", no_wrap=True)
        for row in self.rows.values():
            table.add_row(
                Text(row.name),
                status_text(row.status),
                str(row.attempt or "-"),
                duration(row.seconds(now)),
                Text(row.note, style="dim"),
            )
        return table
