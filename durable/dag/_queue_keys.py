"""The `queues:` and `queue:` keys of a YAML or JSON definition.

`queues:` maps queue names to the limits app.queue() takes: concurrency, worker_concurrency,
rate_limit ([starts, seconds]) and partition_concurrency (workerConcurrency, rateLimit and
partitionConcurrency in JSON). `queue:` (top level) names the queue runs of the definition
start in. Checked when the definition is parsed, with the queue's own checks
(durable.queues._spec), so `durable validate` and a POST of the definition report a bad limit
where it is written. Whether a queue a step names is declared somewhere (here or by the
application) is known only when the definition is registered (Registry.add_dag). The Python
builder's `queues=` and `queue=` go through the same checks (`python=True`: the messages then
show Python's spelling).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durable._errors import InvalidIdError, QueueError
from durable._ids import check_id
from durable.queues._spec import queue_spec

from ._problems import Problem
from ._source import LineMap, Path, fail

_CAMEL = {
    "workerConcurrency": "worker_concurrency",
    "rateLimit": "rate_limit",
    "partitionConcurrency": "partition_concurrency",
}
_KEYS = ("concurrency", "worker_concurrency", "rate_limit", "partition_concurrency")


def check_queues(
    value: Any,
    *,
    camel: bool,
    file: str | None,
    lines: LineMap,
    at: Path,
    python: bool = False,
) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """The declared queues, each as app.queue's keyword arguments (snake_case), or the
    problems they have (one per queue, at the queue's own line)."""
    if value is None:
        return {}, []
    spell = {v: k for k, v in _CAMEL.items()} if camel else {}
    known = ", ".join(spell.get(k, k) for k in _KEYS)
    if python:
        example = 'queues={"emails": {"concurrency": 2, "rate_limit": (100, 60)}}'
    elif camel:
        example = '"queues": {"emails": {"concurrency": 2, "rateLimit": [100, 60]}}'
    else:
        example = "queues:\n  emails: {concurrency: 2, rate_limit: [100, 60]}"
    under = "in queues=" if python else "under `queues`"
    if not isinstance(value, Mapping):
        return {}, list(
            fail(
                f"`queues` must map queue names to their limits ({known}), e.g. {example}",
                file,
                lines,
                at,
            ).problems
        )
    queues: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for name, limits in value.items():
        here = (*at, str(name))
        if limits is None:
            limits = {}
        if not isinstance(limits, Mapping):
            problems.extend(
                fail(
                    f"queue {name!r}: its limits must be a mapping of {known}, not "
                    f"{type(limits).__name__} {limits!r}",
                    file,
                    lines,
                    here,
                ).problems
            )
            continue
        kwargs: dict[str, Any] = {}
        wrong = False
        for key, limit in limits.items():
            snake = _CAMEL.get(key, key) if camel else key
            if snake not in _KEYS or key in (spell if camel else _CAMEL):
                problems.extend(
                    fail(
                        f"queue {name!r}: unknown limit {key!r} (a queue takes {known})",
                        file,
                        lines,
                        (*here, str(key)),
                    ).problems
                )
                wrong = True
                continue
            kwargs[snake] = limit
        try:
            queue_spec(str(name), **kwargs)
        except (QueueError, InvalidIdError) as exc:
            message = str(exc)
            if not python:  # app.queue's words, in the file's spelling
                message = message.replace("(or None: no limit)", "(or left out: no limit)")
                message = message.replace("(starts, seconds)", "[starts, seconds]")
                message = message.replace("(100, 60.0)", "[100, 60]")
            for snake, source in spell.items():
                message = message.replace(snake, source)
            problems.extend(fail(f"{message}; fix it {under}", file, lines, here).problems)
            continue
        if not wrong:
            # Plain data, as a YAML or JSON file gives it (a tuple rate_limit as a list).
            queues[str(name)] = {
                k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()
            }
    return queues, problems


def check_queue_name(
    value: str | None, what: str, *, file: str | None, lines: LineMap, at: Path
) -> list[Problem]:
    """Problems with a `queue:` value (the definition's, or a step's): a queue name."""
    if value is None:
        return []
    try:
        check_id("queue name", value)
    except InvalidIdError as exc:
        return list(fail(f"{what}: {exc}", file, lines, at).problems)
    return []
