"""JSON definitions (the `steps:` list format with camelCase fields) -> DagDefinition."""

from __future__ import annotations

import bisect
import json
import re
from json.scanner import NUMBER_RE
from typing import Annotated, Any, Literal

import msgspec

from ._cron_key import check_schedule
from ._model import (
    DagDefinition,
    DagStep,
    Location,
    Loop,
    Resources,
    RetryPolicy,
    TriggerRule,
    Webhooks,
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
    location,
    path_str,
    too_deep,
    too_many,
    unknown_keys,
    without_echoes,
)

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class _TooDeep(Exception):
    def __init__(self, pos: int) -> None:
        self.pos = pos


class _TooMany(_TooDeep):
    pass


def _too_deep_at(text: str) -> int | None:
    """Where the text first nests more than MAX_DEPTH levels (strings skipped), if it does."""
    depth = 0
    for match in _NESTING.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return match.start()
        elif char in "]}":
            depth -= 1
    return None


class _Retry(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    max_attempts: Positive = 1
    backoff_multiplier: Annotated[float, msgspec.Meta(ge=1)] = 2.0
    initial_delay: Count = 1000
    max_delay: Count | None = None


class _Loop(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    until: str
    max_iterations: Positive
    body: list[str] = []


class _Step(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    id: Annotated[str, msgspec.Meta(min_length=1)]
    name: str | None = None
    description: str | None = None
    type: Literal["task"] = "task"  # the only type 003 uses; the kind follows from the fields
    action: str | None = None
    script: str | None = None
    code: str | None = None
    function: str | None = None
    params: dict[str, Any] = {}
    dependencies: list[str] = []
    retry_policy: _Retry | None = None
    timeout_ms: Positive | None = None
    environment: dict[str, str] = {}
    cpu_cores: Amount | None = None
    memory_mb: Positive | None = None
    disk_gb: Amount | None = None
    condition: str | None = None
    skip_if: str | None = None
    trigger_rule: TriggerRule = "all_success"
    min_success: int | None = None
    matrix: dict[str, Annotated[list[Any], msgspec.Meta(min_length=1)]] = {}
    parallelism: Positive | None = None
    loop: _Loop | None = None
    on_error: str | None = None
    inherit_environment: bool | None = None
    queue: str | None = None


class _Webhooks(msgspec.Struct, rename="camel", frozen=True, forbid_unknown_fields=True):
    on_complete: str | None = None
    on_failure: str | None = None
    on_step: str | None = None


class _Workflow(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    id: str | None = None
    name: str | None = None
    description: str | None = None
    version: str | int | float = "1"
    steps: list[dict[str, Any]]
    webhooks: _Webhooks = _Webhooks()
    parallelism: Positive | None = None
    inherit_environment: bool | None = None
    schedule: str | dict[str, Any] | None = None
    queues: dict[str, Any] | None = None
    queue: str | None = None


_VOCABULARY = field_names(_Retry, _Loop, _Step, _Webhooks, _Workflow)
_RENAME = {
    "dependencies": "depends_on",
    "retryPolicy": "retry",
    "timeoutMs": "timeout_seconds",
    "cpuCores": "resources",
    "memoryMb": "resources",
    "diskGb": "resources",
    "skipIf": "skip_if",
    "triggerRule": "trigger_rule",
    "minSuccess": "min_success",
    "onError": "on_error",
    "inheritEnvironment": "inherit_environment",
}


class _Positions:
    """A second pass over already-valid JSON that records the line of every key and item.

    msgspec (and the json module) forget positions once decoded; re-walking the text with the
    json module's own string and number scanners is exact, and cheap next to a real run.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.lines: LineMap = {}
        self.problems: list[Problem] = []
        self.values = 0  # keys count as values too, like in YAML

    def line(self, pos: int) -> int:
        return bisect.bisect_right(self.newlines, pos) + 1

    def string(self, pos: int) -> tuple[str, int]:
        match = _STRING.match(self.text, pos)
        assert match is not None, "the text was validated by msgspec first"
        decoded: str = json.loads(match.group())
        return decoded, match.end()

    def ws(self, pos: int) -> int:
        match = _WS.match(self.text, pos)
        return match.end() if match else pos

    def value(self, pos: int, path: Path, depth: int = 0) -> tuple[Any, int]:
        text = self.text
        pos = self.ws(pos)
        char = text[pos]
        if char in "{[" and depth >= MAX_DEPTH:
            raise _TooDeep(pos)
        self.values += 1
        if self.values > MAX_VALUES:
            raise _TooMany(pos)
        if char == "{":
            obj: dict[str, Any] = {}
            pos = self.ws(pos + 1)
            while text[pos] != "}":
                start = pos
                self.values += 1
                key, pos = self.string(pos)
                sub = (*path, key)
                if sub in self.lines:
                    self.problems.append(
                        Problem(
                            f"duplicate key {key!r} (first at line {self.lines[sub]})",
                            None,
                            self.line(start),
                            path_str(sub),
                        )
                    )
                else:
                    self.lines[sub] = self.line(start)
                pos = self.ws(self.ws(pos) + 1)  # past the colon
                obj[key], pos = self.value(pos, sub, depth + 1)
                pos = self.ws(pos)
                if text[pos] == ",":
                    pos = self.ws(pos + 1)
            return obj, pos + 1
        if char == "[":
            items: list[Any] = []
            pos = self.ws(pos + 1)
            while text[pos] != "]":
                self.lines[(*path, len(items))] = self.line(pos)
                item, pos = self.value(pos, (*path, len(items)), depth + 1)
                items.append(item)
                pos = self.ws(pos)
                if text[pos] == ",":
                    pos = self.ws(pos + 1)
            return items, pos + 1
        if char == '"':
            return self.string(pos)
        for word, literal in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, pos):
                return literal, pos + len(word)
        match = NUMBER_RE.match(text, pos)
        assert match is not None, "the text was validated by msgspec first"
        integer, frac, exp = match.groups()
        number = float(integer + (frac or "") + (exp or "")) if frac or exp else int(integer)
        return number, match.end()


def _decode(text: str, file: str | None) -> tuple[Any, LineMap]:
    check_size(text, file)
    walker = _Positions(text)
    try:
        msgspec.json.decode(text)
    except RecursionError:
        deep = _too_deep_at(text)
        line = walker.line(deep) if deep is not None else None
        raise DagDefinitionError([too_deep(file, line)]) from None
    except msgspec.DecodeError as exc:
        found = re.search(r"byte (\d+)", str(exc))
        line = text.encode()[: int(found.group(1))].count(b"\n") + 1 if found else None
        raise DagDefinitionError([Problem(f"invalid JSON: {exc}", file, line)]) from None
    try:
        data, _ = walker.value(0, ())
    except _TooMany as exc:
        raise DagDefinitionError([too_many(file, walker.line(exc.pos))]) from None
    except _TooDeep as exc:
        raise DagDefinitionError([too_deep(file, walker.line(exc.pos))]) from None
    walker.lines[()] = walker.line(walker.ws(0))
    if walker.problems:
        raise DagDefinitionError([msgspec.structs.replace(p, file=file) for p in walker.problems])
    return data, walker.lines


def _step(raw: _Step, file: str | None, lines: LineMap, at: Path) -> DagStep:
    kind, error = kind_of(
        script=raw.script, code=raw.code, function=raw.function, action=raw.action
    )
    if error:
        raise fail(f"step {raw.id!r} {error}", file, lines, at)
    retry = raw.retry_policy or _Retry()
    where = location(file, lines, at, _RENAME)
    # A step is best named by its "id" line, not by the brace that opens it.
    where = msgspec.structs.replace(where, line=lines.get((*at, "id"), where.line))
    return DagStep(
        id=raw.id,
        name=raw.name,
        kind=kind,
        script=raw.script,
        code=raw.code,
        function=raw.function,
        action=raw.action,
        params=raw.params,
        depends_on=tuple(raw.dependencies),
        trigger_rule=raw.trigger_rule,
        min_success=raw.min_success,
        retry=RetryPolicy(
            max_attempts=retry.max_attempts,  # 003 counts the first attempt ("Attempt 1")
            initial_delay_ms=retry.initial_delay,
            backoff="fixed" if retry.backoff_multiplier == 1 else "exponential",
            multiplier=retry.backoff_multiplier,
            max_delay_ms=retry.max_delay,
        ),
        timeout_seconds=None if raw.timeout_ms is None else raw.timeout_ms / 1000,
        environment=raw.environment,
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
        location=where,
    )


def parse_json(text: str, file: str | None = None) -> DagDefinition:
    """Parse (but do not yet validate the graph of) a JSON workflow definition."""
    data, lines = _decode(text, file)
    if not isinstance(data, dict):
        raise fail("a workflow definition must be a JSON object", file, lines, ())
    # Every unknown key and every step's mistakes in one pass, not one per run.
    data, problems = unknown_keys(data, _Workflow, file=file, lines=lines, at=())
    try:
        wf = convert(data, _Workflow, file=file, lines=lines, at=(), vocabulary=_VOCABULARY)
    except DagDefinitionError as exc:
        found = without_echoes(problems, exc.problems)
        raise DagDefinitionError(in_order([*problems, *found])) from None
    name = wf.id or wf.name
    if not name:
        problems.append(
            fail("a workflow definition needs an `id` (or a `name`)", file, lines, ()).problems[0]
        )
    steps = []
    groups = group_lines(lines, 2)
    for i, body in enumerate(wf.steps):
        at: Path = ("steps", i)
        known, unknown = unknown_keys(body, _Step, file=file, lines=lines, at=at)
        problems.extend(unknown)
        try:
            raw = convert(known, _Step, file=file, lines=lines, at=at, vocabulary=_VOCABULARY)
            steps.append(_step(raw, file, groups.get(at, lines), at))
        except DagDefinitionError as exc:
            problems.extend(without_echoes(unknown, exc.problems))
    schedule, wrong = check_schedule(
        wf.schedule, name or "", file=file, lines=lines, at=("schedule",)
    )
    problems.extend(wrong)
    queues, wrong = check_queues(wf.queues, camel=True, file=file, lines=lines, at=("queues",))
    problems.extend(wrong)
    problems.extend(
        check_queue_name(wf.queue, "the workflow", file=file, lines=lines, at=("queue",))
    )
    if problems or not name:
        raise DagDefinitionError(in_order(problems))
    hooks = wf.webhooks
    return DagDefinition(
        name=name,
        version=str(wf.version),
        title=wf.name if wf.id else None,
        description=wf.description,
        steps=tuple(steps),
        webhooks=Webhooks(hooks.on_complete, hooks.on_failure, hooks.on_step),
        parallelism=wf.parallelism,
        inherit_environment=wf.inherit_environment,
        schedule=schedule,
        queues=queues,
        queue=wf.queue,
        source=Location(file, lines.get(()), "$"),
    )
