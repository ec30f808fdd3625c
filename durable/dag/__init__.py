"""DAG definitions: one validated model for the Python builder, YAML and JSON files.

The names below are loaded on first use (PEP 562): importing one module of the package (the
worker needs the interpreter, the CLI one parser) does not import all of them, nor PyYAML.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable._lazy import lazy_names

if TYPE_CHECKING:
    from ._builder import DagBuilder, StepRef
    from ._capabilities import CodeStep, code_steps
    from ._json import parse_json
    from ._load import load_definition, parse_definition
    from ._loops import body_definition, loop_owners, top_level
    from ._model import (
        BUILTIN_ACTIONS,
        DagDefinition,
        DagStep,
        FieldSpot,
        Location,
        Loop,
        Notification,
        Notifications,
        Resources,
        RetryPolicy,
        Webhooks,
    )
    from ._problems import DagDefinitionError, Problem
    from ._program import DagProgram
    from ._report import DeliveryReport, InstanceReport, StepReport
    from ._result import DagResult
    from ._schedule import (
        Decision,
        RunOutcome,
        RunStatus,
        Skip,
        StepStatus,
        decide,
        schedule_order,
    )
    from ._script import ScriptResult, run_script
    from ._validate import (
        expression_of,
        find_cycle,
        parallel_levels,
        template_errors,
        topological_order,
        validate_definition,
    )
    from ._yaml import parse_yaml

# Where each public name lives.
_WHERE = {
    "DagBuilder": "durable.dag._builder",
    "StepRef": "durable.dag._builder",
    "CodeStep": "durable.dag._capabilities",
    "code_steps": "durable.dag._capabilities",
    "parse_json": "durable.dag._json",
    "load_definition": "durable.dag._load",
    "parse_definition": "durable.dag._load",
    "body_definition": "durable.dag._loops",
    "loop_owners": "durable.dag._loops",
    "top_level": "durable.dag._loops",
    "BUILTIN_ACTIONS": "durable.dag._model",
    "DagDefinition": "durable.dag._model",
    "DagStep": "durable.dag._model",
    "FieldSpot": "durable.dag._model",
    "Location": "durable.dag._model",
    "Loop": "durable.dag._model",
    "Notification": "durable.dag._model",
    "Notifications": "durable.dag._model",
    "Resources": "durable.dag._model",
    "RetryPolicy": "durable.dag._model",
    "Webhooks": "durable.dag._model",
    "DagDefinitionError": "durable.dag._problems",
    "Problem": "durable.dag._problems",
    "DagProgram": "durable.dag._program",
    "DeliveryReport": "durable.dag._report",
    "InstanceReport": "durable.dag._report",
    "StepReport": "durable.dag._report",
    "DagResult": "durable.dag._result",
    "Decision": "durable.dag._schedule",
    "RunOutcome": "durable.dag._schedule",
    "RunStatus": "durable.dag._schedule",
    "Skip": "durable.dag._schedule",
    "StepStatus": "durable.dag._schedule",
    "decide": "durable.dag._schedule",
    "schedule_order": "durable.dag._schedule",
    "ScriptResult": "durable.dag._script",
    "run_script": "durable.dag._script",
    "expression_of": "durable.dag._validate",
    "find_cycle": "durable.dag._validate",
    "parallel_levels": "durable.dag._validate",
    "template_errors": "durable.dag._validate",
    "topological_order": "durable.dag._validate",
    "validate_definition": "durable.dag._validate",
    "parse_yaml": "durable.dag._yaml",
}

__all__ = [
    "BUILTIN_ACTIONS",
    "CodeStep",
    "DagBuilder",
    "DagDefinition",
    "DagDefinitionError",
    "DagProgram",
    "DagResult",
    "DagStep",
    "Decision",
    "DeliveryReport",
    "FieldSpot",
    "InstanceReport",
    "Location",
    "Loop",
    "Notification",
    "Notifications",
    "Problem",
    "Resources",
    "RetryPolicy",
    "RunOutcome",
    "RunStatus",
    "ScriptResult",
    "Skip",
    "StepRef",
    "StepReport",
    "StepStatus",
    "Webhooks",
    "body_definition",
    "code_steps",
    "decide",
    "expression_of",
    "find_cycle",
    "load_definition",
    "loop_owners",
    "parallel_levels",
    "parse_definition",
    "parse_json",
    "parse_yaml",
    "run_script",
    "schedule_order",
    "template_errors",
    "top_level",
    "topological_order",
    "validate_definition",
]


__getattr__, __dir__ = lazy_names("durable.dag", _WHERE, globals())
