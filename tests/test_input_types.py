"""Inputs are checked against the workflow's annotation at start, before anything is written
(a 422 from the API), and step results against the step's return annotation when recorded:
a wrong value is refused where it is made, not found later as a TypeError deep in a run."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import msgspec
import pytest

from sdk import App, Context, InvalidInputError, SerializationError, StepFailed


class Order(msgspec.Struct):
    id: str
    lines: dict[str, int]


@dataclasses.dataclass
class Window:
    start: datetime
    hours: float


def make_app() -> App:
    app = App("memory://")

    @app.workflow()
    async def tally(ctx: Context, counts: dict[str, int]) -> int:
        return sum(counts.values())

    @app.workflow()
    async def place(ctx: Context, order: Order) -> str:
        return order.id

    @app.workflow()
    async def plan(ctx: Context, window: Window) -> float:
        return window.hours

    @app.workflow()
    async def anything(ctx, data):  # type: ignore[no-untyped-def]
        return data

    @app.workflow()
    async def maybe(ctx: Context, n: int | None) -> int:
        return n or 0

    return app


@pytest.mark.parametrize(
    ("workflow", "value", "expected"),
    [
        ("tally", "bad", "Expected `object`, got `str`"),
        ("tally", {"a": "x"}, "Expected `int`, got `str` - at `$[...]`"),
        ("place", {"id": "o-1", "lines": []}, "Expected `object`, got `array` - at `$.lines`"),
        ("place", {"lines": {}}, "Object missing required field `id`"),
        ("plan", {"start": "yesterday", "hours": 2}, "Invalid RFC3339"),
        ("maybe", "3", "Expected `int | null`, got `str`"),
    ],
)
async def test_a_wrong_input_is_refused_before_anything_is_written(
    workflow: str, value: object, expected: str
) -> None:
    app = make_app()
    async with app:
        with pytest.raises(InvalidInputError) as caught:
            await app.start(workflow, value, run_id="r1")
        message = str(caught.value)
        assert f"the input of workflow {workflow!r} does not match its annotation" in message
        assert expected in message
        assert isinstance(caught.value, ValueError) and isinstance(caught.value, SerializationError)
        assert await app.list_runs() == []  # nothing was written


async def test_inputs_that_fit_their_annotations_run() -> None:
    app = make_app()
    when = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    async with app:
        assert await app.run("tally", {"a": 1, "b": 2}) == 3
        assert await app.run("place", Order("o-1", {"x": 1})) == "o-1"
        assert await app.run("place", {"id": "o-2", "lines": {}}) == "o-2"  # decoded as Order
        assert await app.run("plan", Window(when, 2)) == 2.0
        assert await app.run("plan", {"start": when.isoformat(), "hours": 1}) == 1.0
        assert await app.run("anything", {"no": ["annotation", 1]}) == {"no": ["annotation", 1]}
        assert await app.run("maybe", None) == 0


async def test_a_step_result_that_contradicts_its_annotation_fails_the_step() -> None:
    app = App("memory://")

    @app.step
    async def count(text: str) -> int:
        return text  # type: ignore[return-value]

    @app.workflow()
    async def wf(ctx: Context, text: str) -> str:
        try:
            await count(text)
        except StepFailed as exc:
            return str(exc)
        return "no error"

    async with app:
        said = await app.run(wf, "12")
    assert "step 'count' (#0) failed after 1 attempt" in said
    assert "the result of step 'count' does not match its annotation int" in said
    assert "Expected `int`, got `str`" in said
