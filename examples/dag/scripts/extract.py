"""Quick start: extract eight source records, as JSON on stdout."""

import json

records = [{"id": i, "value": (i * 7) % 10} for i in range(1, 9)]
print(json.dumps({"records": records}))
