"""The public surface is a contract: adding a name is a decision, removing one a break."""

from __future__ import annotations

import durable
import sdk
import storage

SDK = {
    "App",
    "Approval",
    "ApprovalError",
    "ChildRunFailed",
    "Context",
    "DagFailed",
    "DagPartial",
    "DurableAgent",
    "DurableError",
    "ErrorInfo",
    "HistoryInfo",
    "ExternalAlreadySettledError",
    "ExternalFailed",
    "ExternalWait",
    "InvalidTokenError",
    "EventNotSetError",
    "InvalidIdError",
    "InvalidInputError",
    "LoggedEvent",
    "NonDeterminismError",
    "QueryError",
    "RepairError",
    "RetryPolicy",
    "RunCancelled",
    "RunFailed",
    "RunHandle",
    "RunIdConflictError",
    "RunInfo",
    "RunNotFoundError",
    "RunSummary",
    "RunTimedOut",
    "ScheduleError",
    "QueueError",
    "DuplicateRunError",
    "RunUsage",
    "SerializationError",
    "Step",
    "StepContext",
    "StepFailed",
    "StepInfo",
    "StepTimeoutError",
    "StepUsage",
    "UnknownQueryError",
    "StreamClosedError",
    "StreamItem",
    "UnknownWorkflowError",
    "UnrecordedRaceError",
    "Update",
    "UpdateFailed",
    "UpdateInfo",
    "UpdateRejected",
    "WorkflowDefinitionError",
    "close_stream",
    "current_step",
    "write_stream",
}


def test_sdk_surface() -> None:
    assert set(sdk.__all__) == SDK
    # The names the core issue fixes as the contract.
    for name in ("App", "Context", "RetryPolicy", "StepFailed", "RunFailed", "NonDeterminismError"):
        assert hasattr(sdk, name)
    # Races in workflows (issue 14 §2): ctx.wait / ctx.as_completed, and the error that
    # refuses raw asyncio.wait over durable awaitables.
    assert callable(sdk.Context.wait) and callable(sdk.Context.as_completed)
    assert issubclass(sdk.UnrecordedRaceError, sdk.NonDeterminismError)
    # Continue-as-new (issue 17 §4): the contract's names.
    assert callable(sdk.Context.continue_as_new) and callable(sdk.App.histories)


def test_every_exported_name_exists() -> None:
    for module in (sdk, durable, storage):
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert missing == [], f"{module.__name__} exports missing names {missing}"
        assert len(set(module.__all__)) == len(module.__all__)


def test_layers_import_downwards_only() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    forbidden = {"storage": ("durable", "sdk"), "durable": ("sdk",)}
    offenders = []
    for package, banned in forbidden.items():
        for file in (root / package).rglob("*.py"):
            tree = ast.parse(file.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    if name.split(".")[0] in banned:
                        offenders.append(f"{file.relative_to(root)} imports {name}")
    assert offenders == []


STORAGE = {
    "ACTIVE_STATUSES",
    "Append",
    "Claim",
    "CompletionRecord",
    "NewCompletion",
    "RunChanges",
    "Settled",
    "DEFAULT_URL",
    "DatabaseOpenError",
    "DatabaseURLError",
    "DatabaseUnavailableError",
    "DedupeKeyHeldError",
    "DefinitionConflictError",
    "DefinitionRecord",
    "EventChecksumError",
    "EventRecord",
    "FINAL_STATUSES",
    "Fence",
    "HistoryMark",
    "HistoryRecord",
    "InboxItem",
    "InvalidAppendError",
    "LeaseLostError",
    "MemoryStore",
    "NewInboxItem",
    "NewRun",
    "PostgresStore",
    "Release",
    "RunNotFoundError",
    "RunQuery",
    "RunRecord",
    "RunStatusError",
    "RunUpdate",
    "RunValue",
    "SQLiteStore",
    "ScheduleRecord",
    "SnapshotRecord",
    "QueueRecord",
    "QueueStats",
    "RunQueue",
    "QueuedRun",
    "SequenceConflictError",
    "StorageError",
    "Store",
    "StoreClosedError",
    "StreamClosedError",
    "StreamKey",
    "StreamRecord",
    "StreamRow",
    "UPDATE_ITEM_KIND",
    "UpdateChange",
    "UpdateRecord",
    "UpdateRequested",
    "NewUpdate",
    "WorkSignal",
    "WorkerRecord",
    "open_store",
}


def test_storage_surface() -> None:
    assert set(storage.__all__) == STORAGE
    # Every backend implements the whole protocol (inbox, pruning, workers included).
    for backend in (storage.MemoryStore, storage.SQLiteStore, storage.PostgresStore):
        for name in (
            "send",
            "read_inbox",
            "prune_runs",
            "heartbeat_worker",
            "list_workers",
            "read_history",
            "record_history",
            "list_histories",
        ):
            assert callable(getattr(backend, name, None)), f"{backend.__name__}.{name}"


# -- the names the README teaches ------------------------------------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
# Error and exception names as prose and code comments write them: `RunFailed`, ChildRunFailed,
# `durable.RunTimedOut`.
ERROR_NAME = r"\b(?:(?:sdk|durable)\.)?([A-Z][A-Za-z0-9]*(?:Error|Failed|TimedOut|Cancelled))\b"


def readme_python_blocks() -> list[str]:
    import re

    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_imports_resolve() -> None:
    """Every `from sdk|durable|storage import X` and `sdk.X` in the README's Python works."""
    import importlib
    import re

    wanted: list[tuple[str, str]] = []
    for block in readme_python_blocks():
        for module, names in re.findall(
            r"^\s*from (sdk|durable|storage) import \(?([^)\n]*)", block, flags=re.M
        ):
            wanted += [(module, n.split(" as ")[0].strip()) for n in names.split(",") if n.strip()]
        # sdk.X in code, not a file name like "sqlite:///durable.db"
        wanted += re.findall(r"(?<![\w/.:'\"])(sdk|durable)\.([A-Za-z_]\w*)", block)
    assert ("sdk", "App") in wanted  # the parse found the quick start's import
    missing = [f"{m}.{n}" for m, n in wanted if not hasattr(importlib.import_module(m), n)]
    assert missing == []


def test_error_names_the_readme_uses_import_from_sdk() -> None:
    """An error the README names can be caught by importing it from sdk (storage's errors
    from storage, where the README says they come from); builtins are builtins."""
    import builtins
    import re

    text = (ROOT / "README.md").read_text()
    names = set(re.findall(ERROR_NAME, text))
    assert {"RunTimedOut", "ChildRunFailed", "RunFailed", "StepFailed"} <= names
    not_ours = {n for n in names if hasattr(builtins, n)} | {"CancelledError"}  # asyncio's
    from_storage = {n for n in names - not_ours if n in storage.__all__ and n not in sdk.__all__}
    assert from_storage <= {"DatabaseUnavailableError", "DatabaseOpenError", "EventChecksumError"}
    missing = sorted(n for n in names - not_ours - from_storage if n not in sdk.__all__)
    assert missing == [], f"the README names {missing}, which `from sdk import` does not give"


def test_recorded_run_error_types_name_real_classes() -> None:
    """The engine's run-level error types in the log ("durable.RunTimedOut", ...) are
    classes users import from sdk: RunFailed subclasses, which handle.result() raises."""
    sources = "".join(f.read_text() for f in (ROOT / "durable").rglob("*.py"))
    for name in ("RunTimedOut", "DagFailed", "DagPartial"):
        assert f'type="durable.{name}"' in sources, name
        cls = getattr(sdk, name)
        assert cls is getattr(durable, name) and issubclass(cls, sdk.RunFailed)


async def test_a_timed_out_run_raises_run_timed_out() -> None:
    import asyncio

    import pytest

    app = sdk.App("memory://")

    @app.workflow()
    async def slow(ctx: sdk.Context) -> None:
        await asyncio.sleep(30)

    async with app:
        handle = await app.start(slow, timeout=0.2)
        with pytest.raises(sdk.RunTimedOut, match="deadline passed") as caught:
            await handle.result(timeout=10)
    assert isinstance(caught.value, sdk.RunFailed)
    assert caught.value.error.type == "durable.RunTimedOut"
