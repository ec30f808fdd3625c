"""The notifications example's one task (FAIL=true makes it fail)."""

import json
import os
import sys

if os.environ.get("FAIL") == "true":
    sys.exit("main_task: upstream system unavailable (simulated)")
print(json.dumps({"result": "done"}))
