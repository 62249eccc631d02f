"""`plra chat`: a conversation in the terminal, where follow-ups understand the earlier turns."""

from __future__ import annotations

import typer

from plra.assistant.answer import LOCAL_OPTION, Assistant, model_for
from plra.errors import PlraError

CHAT_HELP = "commands: /sources (papers behind the last answer), /reset (forget the conversation), /quit"


def chat_command(
    no_llm: bool = typer.Option(False, "--no-llm", help="answers composed from the knowledge base, no model"),
    endpoint: str = typer.Option(
        None, "--endpoint", help="OpenAI-compatible URL (default: PLRA_ENDPOINT or the server `plra serve` started)"
    ),
    local: bool = LOCAL_OPTION,
    k: int = typer.Option(5, "--k", "-k", help="knowledge-base passages per answer"),
) -> None:
    """An interactive conversation: follow-ups understand the earlier turns (/sources, /reset, /quit)."""
    assistant = Assistant()
    llm = None if no_llm else model_for(endpoint, local)
    history: list[dict[str, str]] = []
    last = None
    typer.echo(f"PLRA chat. {CHAT_HELP}", err=True)
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            typer.echo("", err=True)
            return
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return
        if line == "/reset":
            history, last = [], None
            typer.echo("(conversation forgotten)")
            continue
        if line == "/sources":
            shown = last.passages if last else []
            typer.echo("\n".join(f"- {c.title} ({c.year}) arXiv:{c.arxiv_id}" for c in shown) or "(no answer yet)")
            continue
        if line.startswith("/"):
            typer.echo(f"unknown command {line.split()[0]}; {CHAT_HELP}")
            continue
        try:
            last = assistant.ask(line, llm=llm, k=k, history=history)
        except PlraError as err:
            typer.echo(f"error: {err}", err=True)
            continue
        if last.rewrite != "none":
            typer.echo(f"(understood as: {last.query})", err=True)
        typer.echo(f"plra> {last.answer}\n")
        history += [{"role": "user", "content": line}, {"role": "assistant", "content": last.answer}]
