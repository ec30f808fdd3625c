"""YAML workflow files (the `tasks:` mapping format) -> DagDefinition, with line numbers."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import yaml
from msgspec.structs import replace

from ._cron_key import check_schedule
from ._model import (
    BackoffKind,
    DagDefinition,
    DagStep,
    Location,
    Loop,
    Notification,
    Notifications,
    NotificationType,
    Resources,
    RetryPolicy,
    TriggerRule,
)
from ._problems import DagDefinitionError, Problem
from ._queue_keys import check_queue_name, check_queues
from ._source import (
    MAX_DEPTH,
    MAX_VALUES,
    Amount,
    Count,
    LineMap,
    Path,
    Positive,
    check_size,
    convert,
    fail,
    field_names,
    group_lines,
    in_order,
    kind_of,
    line_of,
    location,
    path_str,
    too_deep,
    too_many,
    unknown_keys,
    without_echoes,
)


class _Loop(msgspec.Struct, forbid_unknown_fields=True):
    until: str
    max_iterations: Positive
    body: list[str] = []


class _Task(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str | None = None
    script: str | None = None
    code: str | None = None
    function: str | None = None
    action: str | None = None
    params: dict[str, Any] = {}
    depends_on: list[str] | str = []
    timeout_minutes: Amount | None = None
    retries: Count = 0
    retry_backoff: BackoffKind = "exponential"
    retry_delay_ms: Count = 1000
    max_retry_delay_ms: Count | None = None
    environment: dict[str, str | int | float | bool] = {}
    cpu_cores: Amount | None = None
    memory_mb: Positive | None = None
    disk_gb: Amount | None = None
    skip_if: str | None = None
    condition: str | None = None
    run_always: bool = False
    trigger_rule: TriggerRule | None = None
    min_success: int | None = None
    parallelism: Positive | None = None
    matrix: dict[str, Annotated[list[Any], msgspec.Meta(min_length=1)]] = {}
    loop: _Loop | None = None
    on_error: str | None = None
    inherit_environment: bool | None = None
    queue: str | None = None


class _Note(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    type: NotificationType
    webhook: str | None = None
    url: str | None = None
    recipients: list[str] = []
    subject: str | None = None
    message: str | None = None
    integration_key: str | None = None


class _Notes(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    on_success: list[_Note] = []
    on_failure: list[_Note] = []


class _Workflow(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    version: str | int | float = "1"
    description: str | None = None
    tasks: dict[str, dict[str, Any] | None]
    notifications: _Notes = _Notes()
    parallelism: Positive | None = None
    inherit_environment: bool | None = None
    schedule: str | dict[str, Any] | None = None
    queues: dict[str, Any] | None = None
    queue: str | None = None


_VOCABULARY = field_names(_Task, _Loop, _Note, _Notes, _Workflow)
# Source spelling -> model field, so errors found on the model point at the source line.
_RENAME = {
    "timeout_minutes": "timeout_seconds",
    "retries": "retry",
    "retry_backoff": "retry",
    "retry_delay_ms": "retry",
    "max_retry_delay_ms": "retry",
    "run_always": "trigger_rule",
    "cpu_cores": "resources",
    "memory_mb": "resources",
    "disk_gb": "resources",
}


def _index(
    node: yaml.Node,
    path: Path,
    lines: LineMap,
    problems: list[Problem],
    active: frozenset[int] = frozenset(),
) -> None:
    """Record the line of every key and item, and find duplicate keys.

    Duplicates must be caught here: a YAML loader silently keeps the last one, which would
    quietly drop a task declared twice.
    """
    if id(node) in active:
        # `&a {x: *a}` builds a value that contains itself: no step can be encoded from it.
        problems.append(Problem("recursive YAML alias", None, lines.get(path), path_str(path)))
        return
    active = active | {id(node)}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            sub = (*path, key)
            line = key_node.start_mark.line + 1
            if sub in lines:
                what = "step id" if path in {("tasks",), ("workflow", "tasks")} else "key"
                problems.append(
                    Problem(
                        f"duplicate {what} {key!r} (first declared at line {lines[sub]})",
                        None,
                        line,
                        path_str(sub),
                    )
                )
                continue
            lines[sub] = line
            _index(value_node, sub, lines, problems, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _index(item, (*path, i), lines, problems, active)


class _Limit(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _BoundedLoader(yaml.SafeLoader):
    """Counts the document's values while composing it, each alias as everything its anchor
    holds, and stops at MAX_VALUES or MAX_DEPTH: nine lines of nested aliases ("billion
    laughs") expand to hundreds of millions of values in every later walk of the document."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.values = 0
        self.depth = 0
        self.sizes: dict[int, int] = {}  # id(anchored node) -> its values, aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._count(self.sizes.get(id(node), 1), line, alias=True)
            return node
        if self.depth >= MAX_DEPTH:
            raise _Limit(too_deep(None, line))
        before = self.values
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        self._count(1, line, alias=False)
        if getattr(event, "anchor", None) is not None:
            self.sizes[id(node)] = self.values - before
        return node

    def _count(self, values: int, line: int, *, alias: bool) -> None:
        self.values += values
        if self.values > MAX_VALUES:
            if not alias:
                raise _Limit(too_many(None, line))
            how = f"once its aliases are expanded (the alias here repeats {values:,} values)"
            problem = too_many(None, line, how)
            raise _Limit(
                replace(problem, message=problem.message + ": use fewer or smaller aliases")
            )


def _compose(text: str, file: str | None) -> tuple[Any, LineMap]:
    check_size(text, file)
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise DagDefinitionError([Problem("the YAML document is empty", file, 1)])
        lines: LineMap = {(): node.start_mark.line + 1}
        problems: list[Problem] = []
        _index(node, (), lines, problems)
        if problems:
            raise DagDefinitionError([msgspec.structs.replace(p, file=file) for p in problems])
        return loader.construct_document(node), lines
    except _Limit as exc:
        raise DagDefinitionError([msgspec.structs.replace(exc.problem, file=file)]) from None
    except yaml.MarkedYAMLError as exc:
        raise DagDefinitionError([_syntax_problem(exc, text, file)]) from None
    finally:
        loader.dispose()


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, file: str | None) -> Problem:
    problem, context = exc.problem or exc.context or "?", exc.context
    at, opened = exc.problem_mark, exc.context_mark
    message = f"invalid YAML: {problem}"
    line = at.line + 1 if at is not None else None
    if opened is not None and context:
        start = opened.line + 1
        if "end of stream" in problem or "<stream end>" in problem:
            # Reached the end still inside something (a quote, a bracket): what is wrong is
            # where that opened, not the end of the file.
            kind = context.removeprefix("while scanning ").removeprefix("while parsing ")
            kind = kind.replace("quoted scalar", "quoted string")
            return Problem(
                f"invalid YAML: {kind} opened at line {start} is never closed ({problem})",
                file,
                start,
            )
        if start != line:
            message += f" ({context} that starts at line {start})"
    hint = _quote_hint(text, line)
    return Problem(message + hint, file, line)


def _quote_hint(text: str, line: int | None) -> str:
    """A quoted string that runs over several lines before the error, if any: a closing
    quote left out there makes the error appear lines later, at the next quote."""
    if line is None:
        return ""
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            start, end = token.start_mark.line + 1, token.end_mark.line + 1
            if start >= line:
                break
            if isinstance(token, yaml.ScalarToken) and token.style in ('"', "'") and end > start:
                return (
                    f"; the quoted string at line {start} runs on to line {end}: "
                    "is its closing quote missing?"
                )
    except yaml.YAMLError:
        pass
    return ""


def _env_value(value: str | int | float | bool) -> str:
    # Environment variables are strings; spell booleans the way shells and YAML do.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _step(task_id: str, raw: _Task, file: str | None, lines: LineMap, at: Path) -> DagStep:
    kind, error = kind_of(
        script=raw.script, code=raw.code, function=raw.function, action=raw.action
    )
    if error:
        raise fail(f"task {task_id!r} {error}", file, lines, at)
    rule: TriggerRule = raw.trigger_rule or ("all_done" if raw.run_always else "all_success")
    if raw.run_always and rule != "all_done":
        raise fail(
            f"task {task_id!r}: run_always contradicts trigger_rule {rule!r}",
            file,
            lines,
            (*at, "trigger_rule"),
        )
    return DagStep(
        id=task_id,
        name=raw.name,
        kind=kind,
        script=raw.script,
        code=raw.code,
        function=raw.function,
        action=raw.action,
        params=raw.params,
        depends_on=(raw.depends_on,) if isinstance(raw.depends_on, str) else tuple(raw.depends_on),
        trigger_rule=rule,
        min_success=raw.min_success,
        retry=RetryPolicy(
            max_attempts=raw.retries + 1,  # `retries` counts the extra attempts only
            initial_delay_ms=raw.retry_delay_ms,
            backoff=raw.retry_backoff,
            multiplier=2.0 if raw.retry_backoff == "exponential" else 1.0,
            max_delay_ms=raw.max_retry_delay_ms,
        ),
        timeout_seconds=None if raw.timeout_minutes is None else raw.timeout_minutes * 60,
        environment={k: _env_value(v) for k, v in raw.environment.items()},
        resources=Resources(raw.cpu_cores, raw.memory_mb, raw.disk_gb),
        condition=raw.condition,
        skip_if=raw.skip_if,
        matrix={k: tuple(v) for k, v in raw.matrix.items()},
        parallelism=raw.parallelism,
        loop=None
        if raw.loop is None
        else Loop(raw.loop.until, raw.loop.max_iterations, tuple(raw.loop.body)),
        on_error=raw.on_error,
        inherit_environment=raw.inherit_environment,
        queue=raw.queue,
        location=location(file, lines, at, _RENAME),
    )


def _notes(
    raw: list[_Note], file: str | None, lines: LineMap, at: Path
) -> tuple[Notification, ...]:
    return tuple(
        Notification(
            type=n.type,
            webhook=n.webhook,
            url=n.url,
            recipients=tuple(n.recipients),
            subject=n.subject,
            message=n.message,
            integration_key=n.integration_key,
            location=location(file, lines, (*at, i)),
        )
        for i, n in enumerate(raw)
    )


def parse_yaml(text: str, file: str | None = None) -> DagDefinition:
    """Parse (but do not yet validate the graph of) a YAML workflow definition."""
    data, lines = _compose(text, file)
    root: Path = ()
    beside: list[Problem] = []
    if isinstance(data, dict) and isinstance(data.get("workflow"), dict):
        # 002 also shows the whole definition nested under a top-level `workflow:` key.
        root = ("workflow",)
        beside = [
            Problem(
                f"unknown key {key!r} beside `workflow:` (the definition's keys go under it)",
                file,
                lines.get((str(key),)),
                path_str((str(key),)),
            )
            for key in data
            if key != "workflow"
        ]
        data = data["workflow"]
    if not isinstance(data, dict):
        raise fail("a workflow file must be a mapping with `name` and `tasks`", file, lines, ())
    # Every unknown key and every task's mistakes in one pass, not one per run.
    data, problems = unknown_keys(data, _Workflow, file=file, lines=lines, at=root)
    problems[:0] = beside
    try:
        wf = convert(data, _Workflow, file=file, lines=lines, at=root, vocabulary=_VOCABULARY)
    except DagDefinitionError as exc:
        found = without_echoes(problems, exc.problems)
        raise DagDefinitionError(in_order([*problems, *found])) from None
    steps = []
    groups = group_lines(lines, len(root) + 2)
    for task_id, body in wf.tasks.items():
        at = (*root, "tasks", task_id)
        known, unknown = unknown_keys(body or {}, _Task, file=file, lines=lines, at=at)
        problems.extend(unknown)
        try:
            raw = convert(known, _Task, file=file, lines=lines, at=at, vocabulary=_VOCABULARY)
            steps.append(_step(task_id, raw, file, groups.get(at, lines), at))
        except DagDefinitionError as exc:
            problems.extend(without_echoes(unknown, exc.problems))
    schedule, wrong = check_schedule(
        wf.schedule, wf.name, file=file, lines=lines, at=(*root, "schedule")
    )
    problems.extend(wrong)
    queues, wrong = check_queues(
        wf.queues, camel=False, file=file, lines=lines, at=(*root, "queues")
    )
    problems.extend(wrong)
    problems.extend(
        check_queue_name(wf.queue, "the workflow", file=file, lines=lines, at=(*root, "queue"))
    )
    if problems:
        raise DagDefinitionError(in_order(problems))
    notes_at = (*root, "notifications")
    return DagDefinition(
        name=wf.name,
        version=str(wf.version),
        description=wf.description,
        steps=tuple(steps),
        notifications=Notifications(
            on_success=_notes(wf.notifications.on_success, file, lines, (*notes_at, "on_success")),
            on_failure=_notes(wf.notifications.on_failure, file, lines, (*notes_at, "on_failure")),
        ),
        parallelism=wf.parallelism,
        inherit_environment=wf.inherit_environment,
        schedule=schedule,
        queues=queues,
        queue=wf.queue,
        source=Location(file, line_of(lines, root), path_str(root)),
    )
