"""ETL: normalise one source's records (SOURCE: api or db; RAW: the extract's stdout)."""

import json
import os

source = os.environ["SOURCE"]
records = json.loads(os.environ["RAW"])["records"]
rows = [{"key": f"{source}:{r['id']}", "amount_cents": r["amount"] * 100} for r in records]
print(json.dumps({"source": source, "rows": rows}))
