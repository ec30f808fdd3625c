"""ETL: GET $API_ENDPOINT/records (a JSON list of {id, amount}) and print it as JSON."""

import json
import os
import urllib.request

url = os.environ["API_ENDPOINT"].rstrip("/") + "/records"
with urllib.request.urlopen(url, timeout=30) as response:
    records = json.load(response)
print(json.dumps({"source": "api", "records": records}))
