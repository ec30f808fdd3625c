"""CI: build the release artifact."""

import json

print(json.dumps({"artifact": "app-1.0.0.tar.gz", "version": "1.0.0"}))
