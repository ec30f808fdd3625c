"""CD: smoke-test the staging deployment (FAIL=true makes a check fail)."""

import json
import os
import sys

checks = ["/health", "/login", "/checkout"]
if os.environ.get("FAIL") == "true":
    sys.exit(f"smoke test {os.environ['TARGET']}/checkout failed: HTTP 500 (simulated)")
print(json.dumps({"target": os.environ["TARGET"], "checks": checks, "passed": len(checks)}))
