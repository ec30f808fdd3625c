"""ETL: load the merged rows into the warehouse (FAIL=true simulates an outage)."""

import json
import os
import sys

if os.environ.get("FAIL") == "true":
    sys.exit("load_warehouse: warehouse unavailable (simulated)")
merged = json.loads(os.environ["ROWS"])
print(json.dumps({"loaded": merged["count"], "table": "warehouse.daily_sales"}))
