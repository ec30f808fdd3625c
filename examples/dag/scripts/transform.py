"""Quick start: double every value of the extracted records (RECORDS = extract's stdout)."""

import json
import os

records = json.loads(os.environ["RECORDS"])["records"]
out = [{**r, "value": r["value"] * 2, "processed": True} for r in records]
print(json.dumps({"records": out}))
