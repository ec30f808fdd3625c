"""Updates from the caller's side (the run's side is durable.runtime._updates).

`update()` requests the update (storage: the row and the inbox item, one transaction; a
repeated update id sends nothing and waits on the existing row) and waits for its row to reach
an outcome: completed (the handler's result), failed (UpdateFailed), rejected (UpdateRejected).
A wait that times out (TimeoutError) leaves the update going: calling again with the same
update_id attaches to it. In this process, the run's durable appends wake the wait; another
process's are seen by polling with backoff up to the client's poll_interval.

If the run ends before an update reached an outcome, its caller is told so: the run's final
commit fails the accepted ones; one still requested (in the inbox, never taken) is reported
rejected, because its run ended.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from durable._codec import checked, decode_value, encode_value
from durable._durations import check_duration
from durable._errors import (
    ErrorInfo,
    InvalidInputError,
    RunIdConflictError,
    RunNotFoundError,
    UpdateFailed,
    UpdateRejected,
)
from durable._events import RunStarted, encode_event
from durable._ids import check_id, check_lookup
from durable._notify import Notifier
from durable.runtime._registry import Registry, WorkflowDef
from durable.runtime._updates import UpdatePayload
from storage import (
    FINAL_STATUSES,
    EventRecord,
    NewRun,
    NewUpdate,
    RunRecord,
    RunStatusError,
    Store,
    UpdateRecord,
)
from storage import RunNotFoundError as StoreRunNotFound


class Update(msgspec.Struct, frozen=True):
    """An update to deliver with app.update_with_start: handler name, arguments, and its id
    (None: a new one; pass your own to retry safely after a crash)."""

    name: str
    args: tuple[Any, ...] = ()
    id: str | None = None


class UpdateInfo(msgspec.Struct, frozen=True):
    """An update as its row stands (app.get_update / list_updates, GET .../updates)."""

    run_id: str
    update_id: str
    name: str
    status: str  # requested, accepted, completed, failed, rejected
    args: Any
    result: Any
    error: ErrorInfo | None
    created_at: float
    updated_at: float


class UpdateClient(Protocol):
    """What of Client these functions use (Client itself; kept apart so that it delegates)."""

    store: Store
    registry: Registry
    notifier: Notifier
    poll_interval: float

    def _woken(self) -> None: ...


RUN_ENDED = "durable.RunEnded"


async def update(
    client: UpdateClient,
    run_id: str,
    name: str,
    args: tuple[Any, ...],
    *,
    update_id: str | None = None,
    timeout: float | None = None,
) -> Any:
    check_lookup("run id", run_id)
    req = _request(run_id, name, args, update_id)
    run = await client.store.get_run(run_id)
    if run is None:
        raise RunNotFoundError(run_id)
    _refuse_dag(client, run)
    try:
        done = await client.store.request_update(req)
    except StoreRunNotFound:
        raise RunNotFoundError(run_id) from None
    except RunStatusError as exc:  # worded as Client.signal words it
        raise ValueError(
            f"run {run_id!r} already ended {exc.status}: it takes no updates any more"
        ) from None
    if done.created:
        client._woken()
    return await wait_update(client, run_id, req.update_id, timeout)


async def update_with_start(
    client: UpdateClient,
    workflow: str | Callable[..., Any],
    input: Any,
    *,
    run_id: str,
    update: Update,
    version: str | None = None,
    timeout: float | None = None,
) -> Any:
    """Start the run `run_id` unless it exists, and deliver `update` to it, in one
    transaction. A run of another workflow under that id is RunIdConflictError."""
    if not isinstance(update, Update):
        raise TypeError(f"update must be an Update(name, args, id), not {update!r}")
    wf = client.registry.workflow(workflow, version)
    if wf.dag is not None:
        raise TypeError(f"workflow {wf.name!r} is a DAG: DAG runs take no updates")
    rid = check_id("run id", run_id)
    req = _request(rid, update.name, tuple(update.args), update.id)
    new, first = _new_run(wf, input, rid, req.created_at)
    done = await client.store.request_update(req, start=(new, first))
    if done.update is None:
        raise RunIdConflictError(
            f"run id {rid!r} already names a run of workflow {done.run.workflow!r}, "
            f"not {wf.name!r}; choose another run_id"
        )
    if done.created or done.run_created:
        client._woken()
    return await wait_update(client, rid, req.update_id, timeout)


def _request(run_id: str, name: str, args: tuple[Any, ...], update_id: str | None) -> NewUpdate:
    check_id("update name", name)
    uid = check_id("update id", update_id) if update_id is not None else uuid.uuid4().hex
    data = encode_value(list(args), f"the arguments of update {name!r}", wrapping=1)
    payload = msgspec.msgpack.encode(UpdatePayload(name, msgspec.Raw(data)))
    return NewUpdate(run_id, uid, name, payload, time.time())


def _refuse_dag(client: UpdateClient, run: RunRecord) -> None:
    wf = client.registry.get(run.workflow, run.version)
    if wf is not None and wf.dag is not None:
        raise TypeError(
            f"run {run.run_id!r} is a DAG run ({run.workflow!r}): DAG runs take no updates"
        )


def _new_run(wf: WorkflowDef, input: Any, rid: str, now: float) -> tuple[NewRun, EventRecord]:
    """The run update_with_start creates: as Client.start makes an unqueued one."""
    if not wf.takes_input and input is not None:
        raise TypeError(f"workflow {wf.name!r} takes no input, but input was given")
    data = encode_value(input, f"the input of workflow {wf.name!r}")
    if wf.takes_input:
        checked(data, wf.input_type, f"the input of workflow {wf.name!r}", InvalidInputError)
    started = RunStarted(
        workflow=wf.name,
        version=wf.version,
        input=msgspec.Raw(data),
        fingerprint=wf.fingerprint,
    )
    first = EventRecord(rid, 1, "RunStarted", encode_event(started), now)
    return NewRun(rid, wf.name, wf.version, data, now), first


async def wait_update(
    client: UpdateClient, run_id: str, update_id: str, timeout: float | None
) -> Any:
    """The update's result once it has one; raises UpdateRejected / UpdateFailed, or
    TimeoutError after `timeout` seconds (the update goes on)."""
    if timeout is not None:
        timeout = check_duration("update timeout", timeout, positive=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.02
    with client.notifier.subscribe(run_id) as changed:
        while True:
            changed.clear()  # before reading: a change after the read still wakes us
            info = await read_update(client, run_id, update_id)
            if info.status == "completed":
                return info.result
            if info.status == "rejected":
                assert info.error is not None
                raise UpdateRejected(run_id, info.name, update_id, info.error)
            if info.status == "failed":
                assert info.error is not None
                raise UpdateFailed(run_id, info.name, update_id, info.error)
            wait = delay
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise TimeoutError(
                        f"update {info.name!r} ({update_id}) of run {run_id!r} is still "
                        f"{info.status} after {timeout:g}s; it goes on: call again with "
                        f"update_id={update_id!r} to wait for it"
                    )
            try:
                await asyncio.wait_for(changed.wait(), wait)
            except TimeoutError:
                delay = min(delay * 2, client.poll_interval)


async def read_update(client: UpdateClient, run_id: str, update_id: str) -> UpdateInfo:
    """The update's row; one still open whose run has ended is reported as it will stay."""
    store = client.store
    row = await store.get_update(run_id, update_id)
    if row is None:
        if await store.get_run(run_id) is None:
            raise RunNotFoundError(run_id)
        raise LookupError(f"run {run_id!r} has no update {update_id!r}")
    if not row.done:
        run = await store.get_run(run_id)
        if run is not None and run.status in FINAL_STATUSES:
            again = await store.get_update(run_id, update_id)  # the end may have settled it
            if again is not None and not again.done:
                return _info(again, ended=run.status)
            row = again or row
    return _info(row)


async def list_updates(client: UpdateClient, run_id: str, limit: int = 100) -> list[UpdateInfo]:
    check_lookup("run id", run_id)
    run = await client.store.get_run(run_id)
    if run is None:
        raise RunNotFoundError(run_id)
    ended = run.status if run.status in FINAL_STATUSES else None
    rows = await client.store.list_updates(run_id, limit=limit)
    return [_info(r, ended=ended if not r.done else None) for r in rows]


def _info(row: UpdateRecord, ended: str | None = None) -> UpdateInfo:
    payload = msgspec.msgpack.decode(row.payload, type=UpdatePayload)
    status = row.status
    error = None if row.error is None else msgspec.msgpack.decode(row.error, type=ErrorInfo)
    if ended is not None:  # its run ended before it had an outcome
        status = "failed" if status == "accepted" else "rejected"
        error = ErrorInfo(
            RUN_ENDED, f"the run ended ({ended}) before the update {status_verb(status)}"
        )
    result = decode_value(row.result) if row.result is not None else None
    return UpdateInfo(
        row.run_id,
        row.update_id,
        row.name,
        status,
        decode_value(payload.args),
        result,
        error,
        row.created_at,
        row.updated_at,
    )


def status_verb(status: str) -> str:
    return "finished" if status == "failed" else "was taken"


class ClientUpdates:
    """Client's update methods (a mixin: Client is long enough); see the functions above."""

    store: Store
    registry: Registry
    notifier: Notifier
    poll_interval: float

    def _woken(self) -> None:
        raise NotImplementedError  # Client's

    async def update(
        self,
        run_id: str,
        name: str,
        *args: Any,
        update_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        return await update(self, run_id, name, args, update_id=update_id, timeout=timeout)

    async def update_with_start(
        self,
        workflow: str | Callable[..., Any],
        input: Any = None,
        *,
        run_id: str,
        update: Update,
        version: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        return await update_with_start(
            self, workflow, input, run_id=run_id, update=update, version=version, timeout=timeout
        )

    async def get_update(self, run_id: str, update_id: str) -> UpdateInfo:
        check_lookup("run id", run_id)
        check_lookup("update id", update_id)
        return await read_update(self, run_id, update_id)

    async def list_updates(self, run_id: str, *, limit: int = 100) -> list[UpdateInfo]:
        return await list_updates(self, run_id, limit)
