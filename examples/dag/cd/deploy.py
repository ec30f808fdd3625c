"""CD: deploy ARTIFACT to ENVIRONMENT (staging or production)."""

import json
import os

env = os.environ["ENVIRONMENT"]
url = f"https://{env}.example.com"
print(json.dumps({"environment": env, "artifact": os.environ["ARTIFACT"], "url": url}))
