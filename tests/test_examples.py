"""The README's first command must keep working: run the quick-start for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_survives_a_kill_and_resumes() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "SIGKILL to pid" in out
    assert "result: {'reservation': 'rsv-book-2', 'payment': 'pay-A-1001', " in out
    effects = (ROOT / "examples" / "quickstart.effects").read_text().splitlines()
    pids = {line.rsplit("pid=", 1)[1] for line in effects}
    assert len(pids) == 2  # the killed worker and the resuming process
    names = [line.split("(")[0] for line in effects]
    assert names.count("charge_card") == 1
    assert names.count("pack") == 2  # in flight at the kill: executed again
    assert names.count("ship") == 1
