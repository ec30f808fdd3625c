"""ETL: merge both sources' rows; duplicate keys or negative amounts fail the task."""

import json
import os
import sys

rows = json.loads(os.environ["API_ROWS"])["rows"] + json.loads(os.environ["DB_ROWS"])["rows"]
keys = [r["key"] for r in rows]
if len(set(keys)) != len(keys) or any(r["amount_cents"] < 0 for r in rows):
    sys.exit("validation failed: duplicate keys or negative amounts")
total = sum(r["amount_cents"] for r in rows)
print(json.dumps({"rows": rows, "count": len(rows), "total_cents": total}))
