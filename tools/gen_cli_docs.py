"""Write docs/cli.md from the CLI's own --help texts, so the reference never drifts from the code.

.venv/bin/python tools/gen_cli_docs.py          # rewrite docs/cli.md
.venv/bin/python tools/gen_cli_docs.py --check  # exit 1 when docs/cli.md is stale
"""

from __future__ import annotations

import argparse
import os
import sys

# Plain click help (no rich boxes) so the Markdown is stable; must be set before typer is imported.
os.environ["TYPER_USE_RICH"] = "0"

import typer.main

from plra.cli import app
from plra.paths import REPO_ROOT

DOC = REPO_ROOT / "docs" / "cli.md"


def _walk(command, path: list[str]):
    """Every command under the root (typer ships its own copy of click, so groups are found by shape)."""
    yield path, command
    if hasattr(command, "commands"):
        for name in sorted(command.commands):
            yield from _walk(command.commands[name], [*path, name])


def render() -> str:
    root = typer.main.get_command(app)
    parts = ["# `plra` command reference\n", "Generated from the CLI's own help by `tools/gen_cli_docs.py`.\n"]
    for path, command in _walk(root, ["plra"]):
        with command.context_class(command, info_name=" ".join(path), terminal_width=100) as ctx:
            text = command.get_help(ctx)
        parts.append(f"## `{' '.join(path)}`\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when docs/cli.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is out of date: run .venv/bin/python tools/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
