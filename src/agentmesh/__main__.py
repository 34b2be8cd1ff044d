"""``python -m agentmesh``."""

import sys

from agentmesh.cli import main

sys.exit(main())
