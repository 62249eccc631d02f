"""PLRA: the Personalized-LLM Research Assistant.

This module stays import-light (standard library only) so that `python -m plra.toolchain.envs setup`
can build the environments before any dependency is installed.
"""

__version__ = "0.1.0"
