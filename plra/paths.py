"""Where the checkout is. Standard library only: `python3 -m plra.toolchain.envs setup` imports it before any
dependency is installed."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
