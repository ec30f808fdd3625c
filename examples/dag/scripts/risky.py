"""A flaky operation: fails its first FAIL_TIMES attempts (counted in STATE_DIR), then works."""

import json
import os
import sys
from pathlib import Path

fail_times = int(os.environ.get("FAIL_TIMES") or 0)
attempt = 1
if os.environ.get("STATE_DIR"):
    counter = Path(os.environ["STATE_DIR"]) / "risky_attempts"
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
if attempt <= fail_times:
    sys.exit(f"risky_operation: attempt {attempt} failed (simulated)")
print(json.dumps({"attempt": attempt, "result": "ok"}))
