"""The workflow fuzzer's programs: a small AST (msgspec Structs, so a program is JSON and travels
as a run's input), the Hypothesis strategies that generate them, the reference model that says
how a program must end, and a readable rendering for failure reports.

The grammar (a run's program is a Seq):

    Seq(items)                      one after the other; its value is the list of values
    Step(retries, fail_first, sync, ms)
                                    a step (RetryPolicy(max_attempts=retries)) whose body fails
                                    its first `fail_first` attempts; fails for good if
                                    fail_first >= retries (StepFailed)
    Sleep(ms)                       ctx.sleep
    Signal(mode, ms)                ctx.wait_for_signal: "sent" (no timeout; the driver sends it
                                    at a random moment), "sent_timeout" (a 300 s timeout, sent
                                    too), "timeout" (ms timeout, never sent: TimeoutError)
    Hold()                          waits for a signal nobody sends: once the run is seen there
                                    the driver cancels that run (a cancel at a logical point)
    Raise()                         the workflow code raises FuzzError
    Child(body)                     ctx.run_child of the same interpreter on `body`
    Gather(branches, all)           asyncio.gather of atoms (Step, Sleep, Signal, Hold, Raise,
                                    Child); all=True: return_exceptions=True then raise the first
                                    failure by index; all=False: a plain gather (the first
                                    failure propagates, the other branches keep running)
    Try(body, comp, swallow)        try body; on a failure run the compensation step `comp`;
                                    on cancellation run `comp` too, then re-raise (or return,
                                    if swallow: the run still ends cancelled)

Gather branches are atoms, one durable command each: each takes its position when its task
first runs, in creation order, so positions do not depend on timing. (A branch that runs two
commands in sequence takes its second position when its first command ends: live that is
completion order, on replay creation order; such a program is not deterministic.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import msgspec
from hypothesis import strategies as st


class Step(msgspec.Struct, tag=True, frozen=True):
    retries: int = 1
    fail_first: int = 0
    sync: bool = False
    ms: int = 0
    id: int = 0


class Sleep(msgspec.Struct, tag=True, frozen=True):
    ms: int = 10
    id: int = 0


class Signal(msgspec.Struct, tag=True, frozen=True):
    mode: str = "sent"  # "sent" | "sent_timeout" | "timeout"
    ms: int = 100  # the timeout of mode "timeout"
    id: int = 0


class Hold(msgspec.Struct, tag=True, frozen=True):
    id: int = 0


class Raise(msgspec.Struct, tag=True, frozen=True):
    id: int = 0


class Child(msgspec.Struct, tag=True, frozen=True):
    body: Seq
    abandon: bool = False  # parent_close="abandon": the parent's end does not cancel it
    id: int = 0


class Gather(msgspec.Struct, tag=True, frozen=True):
    branches: tuple[Atom, ...]
    all: bool = True
    id: int = 0


class Try(msgspec.Struct, tag=True, frozen=True):
    body: Seq
    comp: Step
    swallow: bool = False
    id: int = 0


class Select(msgspec.Struct, tag=True, frozen=True):
    """ctx.wait(FIRST_COMPLETED) (or the first of ctx.as_completed) racing `fast` against
    `rivals` awaitables that cannot end during the run (a signal nobody sends, a 60 s sleep):
    `fast` wins whatever the timing, so its outcome is the select's. Without `fast`, the
    select times out after `timeout_ms` and gives "x<id>"."""

    fast: Atom | None = None
    rivals: int = 1
    timeout_ms: int | None = None
    as_completed: bool = False
    id: int = 0


class Seq(msgspec.Struct, tag=True, frozen=True):
    items: tuple[Node, ...] = ()


Atom = Union[Step, Sleep, Signal, Hold, Raise, Child]  # noqa: UP007 (msgspec needs Union)
Node = Union[Step, Sleep, Signal, Hold, Raise, Child, Gather, Try, Select, Seq]  # noqa: UP007

SIGNAL_TIMEOUT_LONG = 300.0  # "sent_timeout": far longer than any run, so the signal wins
RIVAL_SLEEP = 60.0  # a select's rival timer: longer than any run


def to_json(prog: Seq) -> Any:
    return msgspec.to_builtins(prog)


def from_json(data: Any) -> Seq:
    return msgspec.convert(data, Seq)


# -- numbering and normalization ----------------------------------------------------------


def number(prog: Seq) -> Seq:
    """Give every node a unique id (pre-order), and make gathers deterministic (see fails())."""
    counter = [0]

    def nid() -> int:
        counter[0] += 1
        return counter[0]

    def walk(node: Any) -> Any:
        if isinstance(node, Seq):
            return Seq(tuple(walk(i) for i in node.items))
        if isinstance(node, Child):
            i = nid()
            return Child(walk(node.body), node.abandon, id=i)
        if isinstance(node, Select):
            i = nid()
            fast = None if node.fast is None else walk(node.fast)
            # With a fast branch a timeout must not win (30 s); without, it must (100 ms).
            timeout = (node.timeout_ms and 30_000) if fast is not None else 100
            # A fast branch that may time out would be told apart from the select's own
            # timeout only by ctx.wait: as_completed is for the others.
            as_completed = node.as_completed and fast is not None and timeout is None
            return Select(fast, node.rivals, timeout, as_completed, id=i)
        if isinstance(node, Try):
            i = nid()
            body = walk(node.body)
            return Try(body, walk(node.comp), node.swallow, id=i)
        if isinstance(node, Gather):
            i = nid()
            branches = tuple(walk(b) for b in node.branches)
            failing = sum(1 for b in branches if model(b, "x").kind in FAILURES)
            holds = any(isinstance(b, Hold) for b in branches)
            # A plain gather raises the failure that happens first: with two failing branches
            # (or a failure next to a Hold, racing the driver's cancel) the outcome would
            # depend on timing. Those wait for every branch instead.
            plain_ok = failing == 0 or (failing == 1 and not holds)
            return Gather(branches, node.all or not plain_ok, id=i)
        return msgspec.structs.replace(node, id=nid())

    out: Seq = walk(prog)
    return out


# -- the reference model -------------------------------------------------------------------

FAILURES = ("step", "timeout", "raise", "child")
ERROR_TYPES = {
    "step": "durable.StepFailed",
    "timeout": "TimeoutError",
    "raise": "fuzz_app.FuzzError",
    "child": "durable.ChildRunFailed",
}


@dataclass(frozen=True)
class Outcome:
    """How a node (or a run) ends: kind "value" (with value), a failure kind, or
    "cancelled" (a Hold of this run was reached: the run ends cancelled whatever follows)."""

    kind: str
    value: Any = None

    def status(self) -> str:
        if self.kind == "value":
            return "succeeded"
        return "cancelled" if self.kind == "cancelled" else "failed"


def model(node: Any, run_id: str) -> Outcome:
    """What executing `node` in run `run_id` gives, crash-free and whatever the timing."""
    if isinstance(node, Seq):
        values = []
        for item in node.items:
            out = model(item, run_id)
            if out.kind != "value":
                return out
            values.append(out.value)
        return Outcome("value", values)
    if isinstance(node, Step):
        if node.fail_first >= node.retries:
            return Outcome("step")
        return Outcome("value", f"s{node.id}")
    if isinstance(node, Sleep):
        return Outcome("value", f"t{node.id}")
    if isinstance(node, Signal):
        if node.mode == "timeout":
            return Outcome("timeout")
        return Outcome("value", f"p{node.id}")
    if isinstance(node, Hold):
        return Outcome("cancelled")
    if isinstance(node, Raise):
        return Outcome("raise")
    if isinstance(node, Child):
        out = model(node.body, child_run_id(run_id, node))
        return out if out.kind == "value" else Outcome("child")
    if isinstance(node, Gather):
        outs = [model(b, run_id) for b in node.branches]
        if any(o.kind == "cancelled" for o in outs):
            return Outcome("cancelled")
        for o in outs:
            if o.kind != "value":
                return o
        return Outcome("value", [o.value for o in outs])
    if isinstance(node, Select):
        if node.fast is None:
            return Outcome("value", f"x{node.id}")
        return model(node.fast, run_id)
    if isinstance(node, Try):
        out = model(node.body, run_id)
        if out.kind in ("value", "cancelled"):
            return out
        comp = model(node.comp, run_id)
        if comp.kind != "value":
            return comp
        return Outcome("value", ["comp", comp.value])
    raise TypeError(f"not a node: {node!r}")


def child_run_id(parent: str, node: Child) -> str:
    return f"{parent}.c{node.id}"


@dataclass
class RunPlan:
    """What the driver needs to know of each run a program may create."""

    run_id: str
    parent: str | None
    outcome: Outcome
    signals: list[int] = field(default_factory=list)  # ids of Signal nodes to send
    # A branch of a plain gather whose other branch fails: the run may end before it starts.
    orphanable: bool = False
    abandon: bool = False  # started with parent_close="abandon"


def plans(prog: Seq, root: str) -> dict[str, RunPlan]:
    """Every run the program may create (children included), keyed by run id."""
    found: dict[str, RunPlan] = {}

    def visit(
        body: Seq, run_id: str, parent: str | None, orphanable: bool, abandon: bool = False
    ) -> None:
        plan = RunPlan(run_id, parent, model(body, run_id), orphanable=orphanable, abandon=abandon)
        found[run_id] = plan

        def walk(node: Any, orphan: bool) -> None:
            if isinstance(node, Seq):
                for i in node.items:
                    walk(i, orphan)
            elif isinstance(node, Signal) and node.mode != "timeout":
                plan.signals.append(node.id)
            elif isinstance(node, Child):
                visit(node.body, child_run_id(run_id, node), run_id, orphan, node.abandon)
            elif isinstance(node, Gather):
                failing = any(model(b, run_id).kind in FAILURES for b in node.branches)
                for b in node.branches:
                    walk(b, orphan or (failing and not node.all))
            elif isinstance(node, Try):
                walk(node.body, orphan)
                walk(node.comp, orphan)
            elif isinstance(node, Select) and node.fast is not None:
                walk(node.fast, orphan)

        walk(body, orphanable)

    visit(prog, root, None, False)
    return found


def count(prog: Seq) -> dict[str, int]:
    """How many nodes of each kind the program holds (for the fuzzer's statistics)."""
    counts: dict[str, int] = {}

    def walk(node: Any) -> None:
        name = type(node).__name__.lower()
        if isinstance(node, Gather) and not node.all:
            name = "gather_plain"
        if isinstance(node, Select) and node.as_completed:
            name = "select_as_completed"
        if isinstance(node, Child) and node.abandon:
            counts["child_abandon"] = counts.get("child_abandon", 0) + 1
        counts[name] = counts.get(name, 0) + 1
        if isinstance(node, Signal):
            counts[f"signal_{node.mode}"] = counts.get(f"signal_{node.mode}", 0) + 1
        if isinstance(node, Step) and node.fail_first:
            counts["step_retried"] = counts.get("step_retried", 0) + 1
        for child in _children(node):
            walk(child)

    walk(prog)
    return counts


def _children(node: Any) -> list[Any]:
    if isinstance(node, Seq):
        return list(node.items)
    if isinstance(node, Child):
        return [node.body]
    if isinstance(node, Gather):
        return list(node.branches)
    if isinstance(node, Try):
        return [node.body, node.comp]
    if isinstance(node, Select) and node.fast is not None:
        return [node.fast]
    return []


# -- rendering -----------------------------------------------------------------------------


def render(prog: Seq, indent: int = 0) -> str:
    """The program as indented pseudo-code, for failure reports."""
    lines: list[str] = []

    def out(depth: int, text: str) -> None:
        lines.append("    " * depth + text)

    def walk(node: Any, depth: int) -> None:
        if isinstance(node, Seq):
            if not node.items:
                out(depth, "pass")
            for i in node.items:
                walk(i, depth)
        elif isinstance(node, Step):
            fail = f", fails first {node.fail_first}" if node.fail_first else ""
            kind = "sync" if node.sync else "async"
            out(depth, f"step#{node.id}({kind}, {node.ms}ms, retries={node.retries}{fail})")
        elif isinstance(node, Sleep):
            out(depth, f"sleep#{node.id}({node.ms}ms)")
        elif isinstance(node, Signal):
            if node.mode == "timeout":
                out(depth, f"signal#{node.id}(never sent, timeout={node.ms}ms)")
            elif node.mode == "sent_timeout":
                out(depth, f"signal#{node.id}(sent, timeout={SIGNAL_TIMEOUT_LONG:.0f}s)")
            else:
                out(depth, f"signal#{node.id}(sent)")
        elif isinstance(node, Hold):
            out(depth, f"hold#{node.id}  (the driver cancels this run here)")
        elif isinstance(node, Raise):
            out(depth, f"raise#{node.id} FuzzError")
        elif isinstance(node, Child):
            out(depth, f"child#{node.id}{'(abandon)' if node.abandon else ''}:")
            walk(node.body, depth + 1)
        elif isinstance(node, Select):
            api = "as_completed" if node.as_completed else "wait"
            timeout = "" if node.timeout_ms is None else f", timeout={node.timeout_ms}ms"
            out(depth, f"select#{node.id}({api}, {node.rivals} rival(s) never ending{timeout}):")
            if node.fast is not None:
                walk(node.fast, depth + 1)
        elif isinstance(node, Gather):
            out(depth, f"gather#{node.id}({'all' if node.all else 'plain'}):")
            for b in node.branches:
                walk(b, depth + 1)
        elif isinstance(node, Try):
            out(depth, f"try#{node.id}:")
            walk(node.body, depth + 1)
            out(depth, f"except -> compensate{', swallow cancel' if node.swallow else ''}:")
            walk(node.comp, depth + 1)

    walk(prog, indent)
    return "\n".join(lines)


# -- strategies ----------------------------------------------------------------------------


def steps() -> st.SearchStrategy[Step]:
    return st.builds(
        Step,
        retries=st.integers(1, 3),
        fail_first=st.sampled_from([0, 0, 0, 1, 2, 3]),
        sync=st.booleans(),
        ms=st.sampled_from([0, 5, 20, 60]),
    )


def leaves() -> st.SearchStrategy[Any]:
    # Steps, sleeps and signals three times out of four: holds and raises end a run early.
    signals = st.builds(
        Signal,
        mode=st.sampled_from(["sent", "sent", "sent_timeout", "timeout"]),
        ms=st.sampled_from([30, 200]),
    )
    return st.one_of(
        steps(),
        steps(),
        steps(),
        st.builds(Sleep, ms=st.sampled_from([5, 30, 150])),
        signals,
        signals,
        st.just(Hold()),
        st.just(Raise()),
    )


@st.composite
def seqs(draw: st.DrawFn, depth: int = 0, max_items: int = 4) -> Seq:
    n = draw(st.integers(1 if depth == 0 else 0, max_items))
    items = [draw(nodes(depth)) for _ in range(n)]
    return Seq(tuple(items))


@st.composite
def children(draw: st.DrawFn, depth: int) -> Child:
    return Child(draw(seqs(depth + 1, max_items=3)), abandon=draw(st.booleans()))


@st.composite
def selects(draw: st.DrawFn, depth: int) -> Select:
    fast = draw(st.one_of(st.none(), atoms(depth), atoms(depth), atoms(depth)))
    return Select(
        fast,
        rivals=draw(st.integers(1, 2)),
        timeout_ms=draw(st.sampled_from([None, None, 100, 30_000])),
        as_completed=draw(st.booleans()),
    )


@st.composite
def atoms(draw: st.DrawFn, depth: int) -> Any:
    if depth < 2 and draw(st.integers(0, 5)) == 0:
        return draw(children(depth))
    return draw(leaves())


@st.composite
def nodes(draw: st.DrawFn, depth: int) -> Any:
    # Leaves first: Hypothesis shrinks towards the first alternative.
    kinds = ["leaf", "leaf", "leaf"]
    if depth < 2:
        kinds += ["gather", "try", "child", "select"]
    kind = draw(st.sampled_from(kinds))
    if kind == "leaf":
        return draw(leaves())
    if kind == "gather":
        branches = draw(st.lists(atoms(depth), min_size=2, max_size=4))
        return Gather(tuple(branches), all=draw(st.booleans()))
    if kind == "select":
        return draw(selects(depth))
    if kind == "try":
        return Try(draw(seqs(depth + 1, max_items=3)), draw(steps()), draw(st.booleans()))
    return draw(children(depth))


def programs() -> st.SearchStrategy[Seq]:
    return seqs().map(number)
