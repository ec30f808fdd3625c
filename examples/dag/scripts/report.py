"""Report on a successful process_data run."""

import json
import os

processed = json.loads(os.environ["PROCESSED"])
print(f"report: {processed['processed']} records processed, {processed['rejected']} rejected")
