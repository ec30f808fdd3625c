"""ETL: run_always; reports the load's outcome whatever it was."""

import json
import os

status = os.environ["LOAD_STATUS"]
output = os.environ.get("LOAD_OUTPUT") or "{}"
loaded = json.loads(output).get("loaded", 0) if status == "succeeded" else 0
print(f"Daily Data ETL report: load_warehouse {status}, {loaded} rows loaded")
