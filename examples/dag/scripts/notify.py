"""Quick start: run_always, so it reports whatever load_data did."""

import os

print(f"Data Processing Pipeline finished: load_data {os.environ['LOAD_STATUS']}")
