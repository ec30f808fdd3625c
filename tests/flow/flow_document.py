"""Running the agent workflow document's examples (examples/agents/document/) as a user
would: `python examples/agents/run_document.py document/<name>.py`, a real process on a real SQLite
file, its tools' side effects noted in a file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "agents"
RUN = EXAMPLES / "run_document.py"
SEED = next((ROOT.parent / "shared" / "seeds").glob("004_*.txt"))


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env.update(
        PYTHONPATH=str(ROOT),
        DURABLE_DATABASE_URL=f"sqlite:///{tmp_path / 'examples.db'}",
        DURABLE_EXAMPLE_EFFECTS=str(tmp_path / "effects.jsonl"),
        **extra,
    )
    return env


def start(tmp_path: Path, name: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(RUN), f"document/{name}.py"],
        cwd=tmp_path,
        env=env_for(tmp_path, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(tmp_path: Path, name: str, timeout: float = 120, **extra: str) -> str:
    proc = start(tmp_path, name, **extra)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{out}\n{err}"
    return out


def effects(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "effects.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def document_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", SEED.read_text(), re.S)


def document_part(example: Path) -> str:
    """The part of an example file that is the document's code, its imports turned back."""
    text = example.read_text()
    start = text.index("# -- the document's code ")
    body = text[text.index("\n", start) + 1 :]
    end = body.find("\n# -- not in the document")
    body = body if end < 0 else body[: end + 1]
    jaf = re.compile(r"^from sdk\.workflows import (Agent, Tool|Agent|Tool)$", re.M)
    body = jaf.sub(r"from jaf import \1", body)
    return body.replace("from sdk.workflows import", "from jaf.core.workflows import")
