"""durable._usage, the pure view of a run's cost: which recorded results count, and how."""

from __future__ import annotations

import msgspec

from durable import events as ev
from durable._codec import encode_value
from durable._errors import ErrorInfo
from durable._state import fold
from durable._usage import (
    StepUsage,
    add_usage,
    model_usage,
    run_usage,
    script_resources,
    totals,
)

ENVELOPE = {
    "usage": {"requests": 1, "input_tokens": 12, "output_tokens": 30, "cache_read_tokens": 4},
    "model_name": "gpt-x",
    "response": {"kind": "response", "parts": []},
}


def test_a_model_request_envelope_gives_its_integer_counters() -> None:
    assert model_usage(ENVELOPE) == ENVELOPE["usage"]
    odd = {**ENVELOPE, "usage": {"requests": 1, "input_tokens": 3, "flag": True, "x": 1.5}}
    assert model_usage(odd) == {"requests": 1, "input_tokens": 3}  # no bools, no floats


def test_other_results_have_no_usage() -> None:
    for result in (
        None,
        3,
        "usage",
        [ENVELOPE],
        {"usage": {"requests": 1}},  # no response: not an envelope
        {"usage": {"input_tokens": 5}, "response": {}},  # no request count
        {"usage": {"requests": True}, "response": {}},
        {"usage": "lots", "response": {}},
    ):
        assert model_usage(result) is None, result


def test_script_resources_from_a_result_or_error_details() -> None:
    assert script_resources({"exit_code": 0, "cpu_seconds": 0.5, "max_rss_kb": 900}) == (
        0.5,
        900,
    )
    assert script_resources({"cpu_seconds": None, "max_rss_kb": None}) is None
    assert script_resources({"cpu_seconds": True, "max_rss_kb": 1}) is None
    assert script_resources({"exit_code": 0}) is None


def test_totals_sum_tokens_and_cpu_and_keep_the_largest_peak() -> None:
    assert add_usage(None, None) is None
    assert add_usage({"requests": 1, "a": 2}, {"requests": 1, "b": 3}) == {
        "requests": 2,
        "a": 2,
        "b": 3,
    }
    summed = totals(
        [
            StepUsage(0, "m", usage={"requests": 1, "input_tokens": 5}),
            StepUsage(1, "s", cpu_seconds=0.25, max_rss_kb=100),
            StepUsage(2, "s2", cpu_seconds=0.5, max_rss_kb=50),
            StepUsage(3, "m", usage={"requests": 1, "input_tokens": 7}),
        ]
    )
    assert summed.usage == {"requests": 2, "input_tokens": 12}
    assert summed.cpu_seconds == 0.75 and summed.max_rss_kb == 100


def _raw(value: object) -> msgspec.Raw:
    return msgspec.Raw(encode_value(value, "a test value"))


def _completed(pos: int, name: str, result: object) -> list[ev.AnyEvent]:
    return [
        ev.StepStarted(pos=pos, name=name, attempt=1, input=_raw(None)),
        ev.StepCompleted(pos=pos, result=_raw(result)),
    ]


def test_a_runs_usage_folds_its_log() -> None:
    failed_script = ErrorInfo(
        type="ScriptFailed",
        message="exit 3",
        details={"exit_code": 3, "cpu_seconds": 1.5, "max_rss_kb": 2048},
    )
    log: list[ev.AnyEvent] = [
        ev.RunStarted(workflow="w", version="1", input=_raw(None)),
        *_completed(0, "a.model_request", ENVELOPE),
        *_completed(1, "plain", {"usage": {"requests": 1}}),
        *_completed(2, "a.model_request", ENVELOPE),
        *_completed(3, "script", {"exit_code": 0, "cpu_seconds": 0.5, "max_rss_kb": 1024}),
        ev.StepStarted(pos=4, name="bad", attempt=1, input=_raw(None)),
        ev.StepFailed(pos=4, error=failed_script, attempt=1, retryable=False),
    ]
    logged = [ev.LoggedEvent(run_id="r", seq=i + 1, at=0.0, event=e) for i, e in enumerate(log)]
    usage = run_usage(fold("r", logged))
    assert usage.usage == {
        "requests": 2,
        "input_tokens": 24,
        "output_tokens": 60,
        "cache_read_tokens": 8,
    }
    assert usage.cpu_seconds == 2.0 and usage.max_rss_kb == 2048
    assert [(s.position, s.name) for s in usage.steps] == [
        (0, "a.model_request"),
        (2, "a.model_request"),
        (3, "script"),
        (4, "bad"),
    ]
    assert usage.steps[0].model_name == "gpt-x" and usage.steps[2].usage is None
