import subprocess
import sys

from plra.paths import REPO_ROOT
from tests.conftest import run_plra


def test_cli_reference_is_generated_from_the_current_help():
    result = subprocess.run(
        [sys.executable, "tools/gen_cli_docs.py", "--check"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_documented_command_answers_help():
    text = (REPO_ROOT / "docs" / "cli.md").read_text()
    commands = [line[4:-1].strip("`").split()[1:] for line in text.splitlines() if line.startswith("## `plra")]
    assert ["kb", "update"] in commands and ["search"] in commands and ["model", "fetch"] in commands
    for command in commands:
        result = run_plra(*command, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, command
