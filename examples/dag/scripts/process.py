"""Process the data (FAIL=true exits with code 2)."""

import json
import os
import sys

if os.environ.get("FAIL") == "true":
    print("process_data: corrupt input batch (simulated)", file=sys.stderr)
    sys.exit(2)
print(json.dumps({"processed": 100, "rejected": 0}))
