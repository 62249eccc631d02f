"""The `plra` command: one entry point; each stage's commands live beside the stage's code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import typer

from plra import __version__
from plra.assistant.agent import agent_command
from plra.assistant.answer import ask_command
from plra.assistant.chat import chat_command
from plra.data.build import data_app
from plra.errors import PlraError
from plra.knowledge.cite import cite_command
from plra.knowledge.commands import kb_app
from plra.knowledge.retrieval import eval_command, search_command
from plra.research.ideas import ideas_command
from plra.research.read import read_command
from plra.research.write import write_app
from plra.toolchain import envs
from plra.toolchain.evaluate import eval_command as bench_eval_command
from plra.toolchain.model import model_app
from plra.toolchain.pipeline import pipeline_command
from plra.toolchain.quantize import quantize_command
from plra.toolchain.serve import serve_command
from plra.toolchain.train import train_command

app = typer.Typer(
    help="PLRA, the Personalized-LLM Research Assistant: data, training, deployment, evaluation and use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(model_app, name="model")
app.add_typer(kb_app, name="kb")
app.add_typer(data_app, name="data")
app.add_typer(write_app, name="write")
kb_app.command("eval")(eval_command)
app.command("search")(search_command)
app.command("train")(train_command)
app.command("quantize")(quantize_command)
app.command("serve")(serve_command)
app.command("eval")(bench_eval_command)
app.command("ask")(ask_command)
app.command("chat")(chat_command)
app.command("pipeline")(pipeline_command)
app.command("agent")(agent_command)
app.command("read")(read_command)
app.command("cite")(cite_command)
app.command("ideas")(ideas_command)


def gpu_status() -> dict[str, object]:
    """Whether a CUDA GPU is visible, from nvidia-smi (no torch import: `plra env` must stay fast)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return {"visible": False, "detail": "nvidia-smi not found"}
    result = subprocess.run(
        [smi, "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True, text=True
    )
    gpus = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return {"visible": bool(gpus), "detail": "; ".join(gpus) or result.stderr.strip()[:120]}


@app.command("env")
def env_command(as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Show the three environments, their key package versions, and whether a GPU is visible."""
    report: dict[str, object] = {"plra": __version__, "python": sys.version.split()[0], "envs": {}}
    for name, env in envs.ENVS.items():
        venv = envs.venv_dir(name)
        built = (venv / "bin" / "python").exists()
        stamp = envs._built_hash(venv) if built else None
        report["envs"][name] = {
            "path": env.link,
            "requirements": env.requirements,
            "built": built,
            "up_to_date": built and stamp == envs.requirements_hash(env),
            "packages": envs.versions(name) if built else {},
        }
    report["gpu"] = gpu_status()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"plra {report['plra']}  python {report['python']}")
    for name, info in report["envs"].items():
        state = (
            "ok" if info["up_to_date"] else ("outdated: run make setup" if info["built"] else "missing: run make setup")
        )
        typer.echo(f"\n{name:7s} {info['path']:13s} {info['requirements']:24s} {state}")
        for package, version in info["packages"].items():
            typer.echo(f"        {package:14s} {version or 'not installed'}")
    gpu = report["gpu"]
    typer.echo(f"\nGPU: {'visible' if gpu['visible'] else 'none'} ({gpu['detail']})")


def main() -> None:
    try:
        app()
    except PlraError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
