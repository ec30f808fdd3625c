"""Quick start: load the records (FAIL=true simulates a warehouse outage)."""

import json
import os
import sys

if os.environ.get("FAIL") == "true":
    sys.exit("load_data: warehouse connection refused (simulated)")
records = json.loads(os.environ["RECORDS"])["records"]
total = sum(r["value"] for r in records)
print(json.dumps({"loaded": len(records), "total": total, "table": "warehouse.events"}))
