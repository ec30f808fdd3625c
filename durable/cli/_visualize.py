"""`durable visualize RUN_ID`: a run's steps as a graph (mermaid, dot or plain text).

A DAG run is drawn with its definition's edges and each step's status from durable.dag's
step_reports (the same view `durable run` reports). The definition comes from --app, else from
the run itself (`durable run FILE` records it), else from the database (definitions registered
over HTTP), each only if its fingerprint is the run's. A Python workflow has no edges to draw:
its steps are drawn in position order, and steps whose run times overlapped (asyncio.gather) as
parallel branches; so is a DAG run whose definition is nowhere to be found, and the output says
so.
"""

from __future__ import annotations

import math
import os

import click
import msgspec

from durable._engine import URL_ENV
from durable._errors import UnknownWorkflowError, WorkflowDefinitionError
from durable._events import LoggedEvent, RunStarted
from durable._loader import load_app
from durable._state import RunState, StepState, fold
from durable.cli._app import chosen_url, cli, db_option, reading, run
from durable.cli._render import duration
from durable.dag import parse_json
from durable.dag._load import Format, parse_definition
from durable.dag._model import DagDefinition
from durable.dag._report import step_reports
from storage import Store

FORMATS = ("ascii", "mermaid", "dot")
# fill, stroke per status; a status not listed (a future one) is drawn plain.
COLORS = {
    "pending": ("#f6f8fa", "#8c959f"),
    "running": ("#ddf4ff", "#0969da"),
    "retrying": ("#fff8c5", "#9a6700"),
    "succeeded": ("#dafbe1", "#1a7f37"),
    "skipped": ("#eaeef2", "#6e7781"),
    "failed": ("#ffebe9", "#cf222e"),
}
NO_APP_NOTE = (
    "drawn from the recorded steps in position order, overlapping steps as parallel branches; "
    "this run's definition is neither recorded in it nor stored in the database: its "
    "dependency edges need --app MODULE:APP"
)
PYTHON_NOTE = (
    "drawn from the recorded steps in position order, overlapping steps as parallel branches"
)


class Node(msgspec.Struct):
    id: str  # a graph identifier: n0, n1...
    label: str
    status: str
    seconds: float | None
    deps: list[str]
    attempts: int = 1


class Graph(msgspec.Struct):
    title: str
    kind: str  # "dag" (the definition's edges) or "steps" (position order)
    nodes: list[Node]
    note: str = ""


@cli.command("visualize", short_help="Draw a run's steps as a graph.")
@click.argument("run_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="ascii",
    show_default=True,
    help="mermaid (flowchart), dot (Graphviz) or ascii (a terminal).",
)
@click.option(
    "--app",
    "app_path",
    metavar="MODULE:APP",
    help="The application: a DAG run is then drawn with its definition's edges.",
)
@db_option
@click.pass_context
def visualize_cmd(
    ctx: click.Context, run_id: str, fmt: str, app_path: str | None, db: str | None
) -> None:
    """Draw a run's steps with their statuses and durations."""
    url = chosen_url(ctx, db)
    definition: DagDefinition | None = None
    app = load_app(app_path) if app_path is not None else None
    if app is not None:
        url = url or os.environ.get(URL_ENV) or app.database_url

    async def go() -> tuple[RunState, DagDefinition | None]:
        async with reading(url) as engine:
            events = await engine.client.events(run_id)
            state = fold(run_id, events)
            if app is not None or state.kind != "dag":
                return state, None
            return state, await run_definition(engine.store, state, events)

    state, found = run(go())
    if app is not None:
        wf = app.registry.get(state.workflow, state.version)
        if wf is None:
            raise UnknownWorkflowError(state.workflow, state.version, app.registry.names())
        definition = wf.dag.definition if wf.dag is not None else None
    else:
        definition = found
    graph = dag_graph(state, definition) if definition is not None else steps_graph(state)
    if definition is None and state.kind == "dag":
        graph.note = NO_APP_NOTE
    elif app is None and state.kind != "dag":
        graph.note = PYTHON_NOTE
    render = {"ascii": ascii_text, "mermaid": mermaid, "dot": dot}[fmt]
    click.echo(render(graph))


async def run_definition(
    store: Store, state: RunState, events: list[LoggedEvent]
) -> DagDefinition | None:
    """A DAG run's definition without the application: the one the run recorded (`durable
    run FILE`), else the one stored in the database under its workflow and version (the
    HTTP API's); only if its fingerprint is the run's, so the drawing is of what ran."""
    first = events[0].event if events else None
    if isinstance(first, RunStarted) and first.definition:
        try:
            recorded = msgspec.json.decode(first.definition, type=DagDefinition)
        except msgspec.DecodeError:
            recorded = None
        if recorded is not None and recorded.fingerprint() == state.fingerprint:
            return recorded
    stored = await store.get_definition(state.workflow, state.version)
    if stored is None:
        return None
    fmt: Format = "yaml" if stored.format == "yaml" else "json"
    try:
        # For its shape only, never to run: its actions are whatever it names.
        if fmt == "yaml":
            from durable.dag import parse_yaml  # PyYAML: only for a YAML definition

            shape = parse_yaml(stored.source)
        else:
            shape = parse_json(stored.source)
        actions = {s.action for s in shape.steps if s.action is not None}
        parsed = parse_definition(stored.source, None, format=fmt, known_actions=actions)
    except WorkflowDefinitionError:
        return None
    parsed = msgspec.structs.replace(parsed, version=stored.version)
    return parsed if parsed.fingerprint() == state.fingerprint else None


def _title(state: RunState) -> str:
    return f"run {state.run_id} ({state.workflow}@{state.version}, {state.status})"


def dag_graph(state: RunState, definition: DagDefinition) -> Graph:
    reports = step_reports(definition, state)
    ids = {step.id: f"n{i}" for i, step in enumerate(definition.steps)}
    nodes = []
    for step in definition.steps:
        report = reports[step.id]
        seconds = report.duration_seconds
        if seconds is None and report.started_at is not None and report.finished_at is not None:
            seconds = report.finished_at - report.started_at
        label = step.id if not step.name or step.name == step.id else f"{step.id}: {step.name}"
        deps = [ids[d] for d in step.depends_on if d in ids]
        # A matrix or loop step's own count sums its instances; one instance's tries matter.
        tries = [i.attempts for i in report.instances] or [report.attempts]
        attempts = max(1, *tries)
        nodes.append(Node(ids[step.id], label, report.status, seconds, deps, attempts))
    return Graph(_title(state), "dag", nodes)


def steps_graph(state: RunState) -> Graph:
    """Steps in position order; a step that started before every step of the group before it
    had finished ran alongside them (asyncio.gather), so it joins that group as a branch."""
    groups: list[list[StepState]] = []
    for _, step in sorted(state.steps.items()):
        if groups and _overlaps(step, groups[-1]):
            groups[-1].append(step)
        else:
            groups.append([step])
    nodes: list[Node] = []
    previous: list[str] = []
    for group in groups:
        ids = [f"n{s.pos}" for s in group]
        for node_id, step in zip(ids, group, strict=True):
            seconds = None
            if step.started_at is not None and step.finished_at is not None:
                seconds = step.finished_at - step.started_at
            label = f"#{step.pos} {step.name}"
            node = Node(node_id, label, step.status, seconds, list(previous), step.attempts)
            nodes.append(node)
        previous = ids
    return Graph(_title(state), "steps", nodes)


def _overlaps(step: StepState, group: list[StepState]) -> bool:
    if step.started_at is None:
        return False
    ends = [math.inf if s.finished_at is None else s.finished_at for s in group]
    return step.started_at < max(ends)


def _layers(graph: Graph) -> list[list[Node]]:
    """Nodes by depth (the longest chain of dependencies before them), in declaration order."""
    depth: dict[str, int] = {}
    by_id = {n.id: n for n in graph.nodes}

    def depth_of(node: Node) -> int:
        if node.id not in depth:
            depth[node.id] = 0  # a cycle cannot be validated, but must not recurse forever
            depth[node.id] = 1 + max((depth_of(by_id[d]) for d in node.deps), default=-1)
        return depth[node.id]

    layers: dict[int, list[Node]] = {}
    for node in graph.nodes:
        layers.setdefault(depth_of(node), []).append(node)
    return [layers[k] for k in sorted(layers)]


def _facts(node: Node) -> str:
    shown = duration(node.seconds).plain
    facts = node.status if shown == "-" else f"{node.status} {shown}"
    return facts if node.attempts <= 1 else f"{facts}, {node.attempts} attempts"


def ascii_text(graph: Graph) -> str:
    what = "with the definition's edges" if graph.kind == "dag" else "in position order"
    lines = [f"{graph.title}: {len(graph.nodes)} steps {what}"]
    if graph.note:
        lines.append(f"note: {graph.note}")
    if not graph.nodes:
        lines.append("(no steps yet)")
    labels = {n.id: n.label for n in graph.nodes}
    for i, layer in enumerate(_layers(graph)):
        if i:
            lines.append("  |")
        parallel = len(layer) > 1
        for j, node in enumerate(layer):
            branch = ("└─ " if j == len(layer) - 1 else "├─ ") if parallel else ""
            deps = ""
            if graph.kind == "dag" and node.deps:
                deps = "  <- " + ", ".join(labels[d] for d in node.deps)
            lines.append(f"  {branch}{node.label}  [{_facts(node)}]{deps}")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    # '#' first: it starts mermaid's entity codes, which the other replacement introduces.
    return text.replace("#", "#35;").replace('"', "#quot;")


def mermaid(graph: Graph) -> str:
    lines = ["flowchart TD", f"  %% {graph.title}"]
    if graph.note:
        lines.append(f"  %% note: {graph.note}")
    for node in graph.nodes:
        lines.append(f'  {node.id}["{_mermaid_text(node.label)}<br/>{_facts(node)}"]')
    for node in graph.nodes:
        lines.extend(f"  {dep} --> {node.id}" for dep in node.deps)
    for node in graph.nodes:
        lines.append(f"  class {node.id} {node.status}")
    for status in sorted({n.status for n in graph.nodes} & set(COLORS)):
        fill, stroke = COLORS[status]
        lines.append(f"  classDef {status} fill:{fill},stroke:{stroke},color:#24292f")
    return "\n".join(lines)


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def dot(graph: Graph) -> str:
    lines = [
        f'digraph "{_dot_text(graph.title)}" {{',
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    if graph.note:
        lines.append(f"  // note: {graph.note}")
    for node in graph.nodes:
        fill, stroke = COLORS.get(node.status, ("#ffffff", "#24292f"))
        label = _dot_text(f"{node.label}\n{_facts(node)}").replace("\n", "\\n")
        lines.append(
            f'  {node.id} [label="{label}", class="{node.status}", '
            f'fillcolor="{fill}", color="{stroke}"];'
        )
    for node in graph.nodes:
        lines.extend(f"  {dep} -> {node.id};" for dep in node.deps)
    lines.append("}")
    return "\n".join(lines)
