"""Human output: rich tables and short previews. Every user-provided value is wrapped in a
rich Text, never passed as markup: a result containing "[bold]" must print as itself; and
nothing the CLI did not write reaches the terminal as a control sequence (durable.cli._escape):
values are escaped where they become Text here, and the console escapes whatever else is
printed through it."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from rich import box
from rich.console import Console
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from durable._errors import ErrorInfo
from durable._usage import script_resources
from durable._views import EventView, StepInfo, plain
from durable.cli._escape import escape_controls

STATUS_STYLES = {
    "pending": "yellow",
    "running": "cyan",
    "retrying": "yellow",
    "succeeded": "green",
    "partial": "bold yellow",
    "skipped": "dim",
    "failed": "bold red",
    "cancelled": "magenta",
}
PREVIEW = 60
# Piped output has no terminal width; rich would assume 80 columns and fold run ids.
PIPE_WIDTH = 200


class SafeConsole(Console):
    """A Console that escapes control characters in the text it outputs (its own styles and
    cursor controls are added after, untouched): a command that prints a stored value as a
    plain rich Text still cannot emit a raw ESC. Values escaped before layout (`safe_text`)
    keep tables aligned; this is the backstop for every other path."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(escape_controls(segment.text), segment.style)
            for segment in buffer
        )


def safe_text(text: str, style: str = "") -> Text:
    """A rich Text of a value the CLI did not write, control characters escaped."""
    return Text(escape_controls(text), style=style)


def make_console(*, stderr: bool = False) -> Console:
    console = SafeConsole(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def when(value: dt.datetime | None, *, millis: bool = False) -> Text:
    if value is None:
        return Text("-", style="dim")
    local = value.astimezone()
    text = local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if millis else f"{local:%Y-%m-%d %H:%M:%S}"
    return Text(text)


def duration(seconds: float | None) -> Text:
    if seconds is None:
        return Text("-", style="dim")
    if seconds < 1:
        return Text(f"{seconds * 1000:.0f}ms")
    if seconds < 60:
        return Text(f"{seconds:.2f}s")
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return Text(f"{minutes}m{secs:02d}s")
    hours, minutes = divmod(minutes, 60)
    return Text(f"{hours}h{minutes:02d}m")


def preview(value: Any, limit: int = PREVIEW) -> str:
    text = msgspec.json.encode(plain(value)).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_line(error: ErrorInfo) -> Text:
    return safe_text(str(error), style="red")


def events_table(views: Sequence[EventView]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("seq", justify="right")
    table.add_column("time", no_wrap=True)
    table.add_column("type", no_wrap=True, style="bold")
    table.add_column("fields", overflow="fold")
    for view in views:
        parts = []
        for key, value in view.fields.items():
            shown = str(value) if isinstance(value, ErrorInfo) else preview(value, 80)
            parts.append(f"{key}={shown}")
        table.add_row(
            str(view.seq),
            when(view.at, millis=True),
            Text(view.type),
            safe_text("  ".join(parts)),
        )
    return table


def _extras(usage: dict[str, int]) -> str:
    """The counters beyond requests/input/output (cache reads, audio...), as `name value`."""
    known = ("requests", "input_tokens", "output_tokens")
    return "".join(f", {k} {v}" for k, v in usage.items() if k not in known)


def usage_text(usage: dict[str, int]) -> str:
    """A run's token total: `2 model requests, 43 tokens (31 input, 12 output)`."""
    requests = usage.get("requests", 0)
    inp, out = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    plural = "" if requests == 1 else "s"
    return (
        f"{requests} model request{plural}, {inp + out} tokens ({inp} input, {out} output)"
        + _extras(usage)
    )


def resources_text(cpu_seconds: float, max_rss_kb: int) -> str:
    return f"cpu {cpu_seconds:.2f}s, peak {max_rss_kb / 1024:.1f} MiB"


def step_usage_text(step: StepInfo) -> Text:
    """A step's cost: a model request's tokens (`16 tokens (11 in, 5 out)`), a script's CPU
    time and peak memory, or nothing."""
    if step.usage is not None:
        inp, out = step.usage.get("input_tokens", 0), step.usage.get("output_tokens", 0)
        return safe_text(f"{inp + out} tokens ({inp} in, {out} out){_extras(step.usage)}")
    resources = step_resources(step)
    if resources is not None:
        return Text(resources_text(*resources))
    return Text("")


def step_resources(step: StepInfo) -> tuple[float, int] | None:
    """A script step's (cpu_seconds, max_rss_kb): from its result, or its error's details."""
    found = script_resources(step.result)
    if found is None and step.error is not None:
        found = script_resources(step.error.details)
    return found


def steps_table(steps: Sequence[StepInfo]) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title="steps", title_justify="left"
    )
    table.add_column("#", justify="right")
    table.add_column("step", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right")
    costs = [step_usage_text(step) for step in steps]
    if any(cost.plain for cost in costs):  # only runs with model requests or scripts
        table.add_column("usage", no_wrap=True)
    table.add_column("result")
    for step, cost in zip(steps, costs, strict=True):
        outcome: Text
        if step.error is not None and step.status == "retrying":
            at = when(step.next_attempt_at).plain
            outcome = safe_text(f"retry at {at} after {step.error}", style="yellow")
        elif step.error is not None:
            outcome = error_line(step.error)
        elif step.status == "succeeded":
            outcome = safe_text(preview(step.result))
        else:
            outcome = Text("-", style="dim")
        cells = [
            Text(str(step.position)),
            safe_text(step.name),
            status_text(step.status),
            Text(str(step.attempts)),
            duration(step.duration),
        ]
        if len(table.columns) == 7:
            cells.append(cost)
        table.add_row(*cells, outcome)
    return table
