"""The `schedule:` key of a YAML or JSON definition: a cron text, or a mapping with `cron`
and the optional timezone, name, catchup, catchup_limit (catchupLimit in JSON), grace and
overlap. Checked when the definition is parsed, so `durable validate` and a POST of the
definition report a bad expression or timezone where it is written."""

from __future__ import annotations

from typing import Any

from durable._errors import ScheduleError
from durable.schedules._spec import schedule_from_mapping

from ._problems import Problem
from ._source import LineMap, Path, fail

_CAMEL = {"catchupLimit": "catchup_limit"}


def check_schedule(
    value: str | dict[str, Any] | None,
    workflow: str,
    *,
    file: str | None,
    lines: LineMap,
    at: Path,
) -> tuple[str | dict[str, Any] | None, list[Problem]]:
    """The schedule as the registry takes it (JSON's camelCase keys made snake_case), or the
    problems it has."""
    if value is None:
        return None, []
    if isinstance(value, dict):
        value = {_CAMEL.get(k, k): v for k, v in value.items()}
    try:
        schedule_from_mapping(value, workflow=workflow, where=f"workflow {workflow!r}")
    except ScheduleError as exc:
        return None, list(fail(str(exc), file, lines, at).problems)
    return value, []
