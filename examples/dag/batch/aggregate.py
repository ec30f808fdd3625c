"""Batch: combine the 16 batch results (RESULTS, in batch order)."""

import json
import os

results = json.loads(os.environ["RESULTS"])
order = [r["batch"] for r in results]
total = sum(r["sum_of_squares"] for r in results)
print(json.dumps({"batches": len(results), "order": order, "sum_of_squares": total}))
