"""Quick start: every record is processed and non-negative, else exit 1."""

import json
import os
import sys

records = json.loads(os.environ["RECORDS"])["records"]
bad = [r["id"] for r in records if not r.get("processed") or r["value"] < 0]
if bad:
    sys.exit(f"invalid records: {bad}")
print(json.dumps({"valid": True, "count": len(records)}))
