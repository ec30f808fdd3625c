"""Batch: process batch BATCH_NUM: the sum of the squares of its items."""

import json
import os

num, size = int(os.environ["BATCH_NUM"]), int(os.environ["BATCH_SIZE"])
items = list(range(num * size, (num + 1) * size))
print(json.dumps({"batch": num, "items": items, "sum_of_squares": sum(i * i for i in items)}))
