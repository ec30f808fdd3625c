"""CI: the test suite (a stand-in: 42 tests, all passing)."""

import json

print(json.dumps({"tests": 42, "passed": 42, "failed": 0}))
