"""The public surface is a contract: adding a name is a decision, removing one a break."""

from __future__ import annotations

import durable
import sdk
import storage

SDK = {
    "App",
    "Context",
    "DurableError",
    "ErrorInfo",
    "LoggedEvent",
    "NonDeterminismError",
    "RepairError",
    "RetryPolicy",
    "RunCancelled",
    "RunFailed",
    "RunHandle",
    "RunIdConflictError",
    "RunInfo",
    "RunNotFoundError",
    "RunSummary",
    "SerializationError",
    "Step",
    "StepContext",
    "StepFailed",
    "StepInfo",
    "StepTimeoutError",
    "UnknownWorkflowError",
    "WorkflowDefinitionError",
    "current_step",
}


def test_sdk_surface() -> None:
    assert set(sdk.__all__) == SDK
    # The names the core issue fixes as the contract.
    for name in ("App", "Context", "RetryPolicy", "StepFailed", "RunFailed", "NonDeterminismError"):
        assert hasattr(sdk, name)


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
    "DEFAULT_URL",
    "DatabaseOpenError",
    "DatabaseURLError",
    "DatabaseUnavailableError",
    "DefinitionConflictError",
    "DefinitionRecord",
    "EventRecord",
    "FINAL_STATUSES",
    "Fence",
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
    "SQLiteStore",
    "SequenceConflictError",
    "StorageError",
    "Store",
    "StoreClosedError",
    "WorkSignal",
    "WorkerRecord",
    "open_store",
}


def test_storage_surface() -> None:
    assert set(storage.__all__) == STORAGE
    # Every backend implements the whole protocol (inbox, pruning, workers included).
    for backend in (storage.MemoryStore, storage.SQLiteStore, storage.PostgresStore):
        for name in ("send", "read_inbox", "prune_runs", "heartbeat_worker", "list_workers"):
            assert callable(getattr(backend, name, None)), f"{backend.__name__}.{name}"
