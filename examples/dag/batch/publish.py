"""Batch: publish the aggregate."""

import json
import os

summary = json.loads(os.environ["SUMMARY"])
print(f"published sum_of_squares={summary['sum_of_squares']} from {summary['batches']} batches")
