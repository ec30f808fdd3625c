"""DAG definitions: one validated model for the Python builder, YAML and JSON files."""

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
