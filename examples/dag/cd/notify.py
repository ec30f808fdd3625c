"""CD: run_always; tells the team how the production deploy went."""

import os

print(f"Production Deployment Pipeline: deploy_production {os.environ['PRODUCTION']}")
