"""Cost and usage, read off a run's log: a pure view over the folded state.

Two kinds of figures are recorded in step results, and this module needs neither Pydantic AI
nor the DAG interpreter to read them:

- Tokens. A durable agent's model request step (durable.agents._records) records the envelope
  `{"usage": {"requests": 1, "input_tokens": .., "output_tokens": .., ...}, "model_name": ..,
  "response": ...}`. A step's `usage` is that object's integer counters; a run's is their sum
  over its steps, counter by counter (so `requests` counts the model requests). Any step whose
  result has that shape counts, whatever its name: the envelope is the contract.
- Resources. A DAG script step's result (or, when it failed, its error's details) carries
  `cpu_seconds` (user + system) and `max_rss_kb` (peak resident set, KiB) of the script's own
  process tree (durable.dag._script). A run's CPU is their sum; its peak, the largest.

What is read is each step's recorded outcome: a step retried after a failure shows its last
attempt. A child run's figures are its own (ask for the child's run id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from durable._codec import decode_value
from durable._state import RunState, StepState

Usage = dict[str, int]


class StepUsage(msgspec.Struct, frozen=True):
    """One step's figures: its tokens (a model request) or its resources (a script)."""

    position: int
    name: str
    usage: Usage | None = None
    model_name: str | None = None
    cpu_seconds: float | None = None
    max_rss_kb: int | None = None


class RunUsage(msgspec.Struct, frozen=True):
    """A run's totals, and the steps they come from (in order; steps with no figure are left
    out). `usage` is None when the run made no model request; `cpu_seconds` and `max_rss_kb`
    are None when it ran no script that reported them."""

    run_id: str
    usage: Usage | None
    cpu_seconds: float | None
    max_rss_kb: int | None
    steps: list[StepUsage]


def _counter(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def model_usage(result: object) -> Usage | None:
    """The token counters of a model request's recorded envelope; None for any other result."""
    if not isinstance(result, Mapping) or "response" not in result:
        return None
    usage = result.get("usage")
    if not isinstance(usage, Mapping) or not _counter(usage.get("requests")):
        return None
    return {str(k): v for k, v in usage.items() if _counter(v)}


def model_name(result: object) -> str | None:
    name = result.get("model_name") if isinstance(result, Mapping) else None
    return name if isinstance(name, str) else None


def script_resources(result: object) -> tuple[float, int] | None:
    """(cpu_seconds, max_rss_kb) of a script step's result or error details; None if absent."""
    if not isinstance(result, Mapping):
        return None
    cpu, rss = result.get("cpu_seconds"), result.get("max_rss_kb")
    if not isinstance(cpu, int | float) or isinstance(cpu, bool) or cpu < 0:
        return None
    if not isinstance(rss, int) or isinstance(rss, bool) or rss < 0:
        return None
    return float(cpu), rss


def add_usage(total: Usage | None, more: Usage | None) -> Usage | None:
    """The counter-by-counter sum; None + None is None (no model request at all)."""
    if more is None:
        return total
    summed = dict(total or {})
    for key, value in more.items():
        summed[key] = summed.get(key, 0) + value
    return summed


def step_usage(pos: int, step: StepState) -> StepUsage:
    result: Any = decode_value(step.result) if step.result is not None else None
    resources = script_resources(result)
    if resources is None and step.error is not None:
        resources = script_resources(step.error.details)  # a script that failed
    return StepUsage(
        position=pos,
        name=step.name,
        usage=model_usage(result),
        model_name=model_name(result) if model_usage(result) is not None else None,
        cpu_seconds=resources[0] if resources is not None else None,
        max_rss_kb=resources[1] if resources is not None else None,
    )


def has_figures(step: StepUsage) -> bool:
    return step.usage is not None or step.cpu_seconds is not None


class Totals(msgspec.Struct, frozen=True):
    """Several steps' figures together: summed tokens and CPU, the largest peak."""

    usage: Usage | None = None
    cpu_seconds: float | None = None
    max_rss_kb: int | None = None


def totals(steps: Iterable[StepUsage]) -> Totals:
    usage: Usage | None = None
    cpu: float | None = None
    rss: int | None = None
    for step in steps:
        usage = add_usage(usage, step.usage)
        if step.cpu_seconds is not None:
            cpu = round((cpu or 0.0) + step.cpu_seconds, 6)
        if step.max_rss_kb is not None:
            rss = max(rss or 0, step.max_rss_kb)
    return Totals(usage=usage, cpu_seconds=cpu, max_rss_kb=rss)


def steps_usage(state: RunState) -> list[StepUsage]:
    """Every step's figures, by position (steps with none included)."""
    return [step_usage(pos, step) for pos, step in sorted(state.steps.items())]


def run_usage(state: RunState) -> RunUsage:
    steps = [s for s in steps_usage(state) if has_figures(s)]
    total = totals(steps)
    return RunUsage(
        run_id=state.run_id,
        usage=total.usage,
        cpu_seconds=total.cpu_seconds,
        max_rss_kb=total.max_rss_kb,
        steps=steps,
    )
