"""Alert the on-call engineer that process_data failed."""

import os

print(f"ALERT: process_data exited with code {os.environ['EXIT_CODE']}")
