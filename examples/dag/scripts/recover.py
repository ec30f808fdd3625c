"""run_always: cleans up after risky_operation, whatever happened to it."""

import os

status, attempts = os.environ["RISKY_STATUS"], os.environ["RISKY_ATTEMPTS"]
print(f"recovery: risky_operation {status} after {attempts} attempt(s)")
