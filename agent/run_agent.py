"""Entry point of the PLRA research agent (Lagent): `python agent/run_agent.py "QUESTION" [--endpoint URL]`.

The same as `plra agent`; the logic lives in plra/agent.py and the prompts in agent/prompts.yaml.
"""

import sys

from plra.cli import main

if __name__ == "__main__":
    sys.argv = ["plra", "agent", *sys.argv[1:]]
    main()
