"""`plra data synth`: more QA conversations written by any OpenAI-compatible model from knowledge-base entries.

Each reply must be JSON ({"question", "answer"}) citing the entry as [arXiv:ID]; replies are checked with the
same validator as the hand-written conversations (roles, languages, known citations) and the bad ones are
reported, not kept. Output goes to build/synth/<field>/ for review; reviewed files move to datasets/<field>/qa/.
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import typer

from plra.data.sft import load_handwritten
from plra.errors import PlraError
from plra.io import write_text_atomic
from plra.knowledge import kb as kb_module
from plra.paths import REPO_ROOT
from plra.prompts import SYNTH_PROMPT
from plra.settings import load_knowledge


def parse_reply(text: str) -> dict[str, str] | None:
    """The first JSON object in a reply with non-empty question and answer, else None."""
    match = re.search(r"\{.*\}", text, flags=re.S)
    try:
        data = json.loads(match.group()) if match else None
    except ValueError:
        return None
    if (
        not isinstance(data, dict)
        or not str(data.get("question", "")).strip()
        or not str(data.get("answer", "")).strip()
    ):
        return None
    return {"question": str(data["question"]).strip(), "answer": str(data["answer"]).strip()}


def synthesize(endpoint: str, n: int, seed: int = 0, log=print) -> tuple[Path, list[dict], list[str]]:
    from plra.llm import LLMClient

    settings = load_knowledge()
    knowledge = kb_module.load(settings)
    client = LLMClient.from_url(endpoint, temperature=0.7, max_tokens=400)
    rng = random.Random(seed)
    papers = rng.sample(sorted(knowledge.papers.values(), key=lambda p: p.arxiv_id), min(n, len(knowledge.papers)))
    rows, rejected = [], []
    for index, paper in enumerate(papers):
        lang = "zh" if index % 3 == 2 else "en"
        summary = paper.summary_zh if lang == "zh" else paper.summary_en
        prompt = SYNTH_PROMPT[lang].format(title=paper.title, arxiv_id=paper.arxiv_id, summary=summary,
                                           findings="; ".join(paper.key_findings))  # fmt: skip
        reply = parse_reply(client.chat([{"role": "user", "content": prompt}]))
        if reply is None:
            rejected.append(f"{paper.arxiv_id}: the reply was not JSON with a question and an answer")
            continue
        if f"arXiv:{paper.arxiv_id}" not in reply["answer"]:
            rejected.append(f"{paper.arxiv_id}: the answer does not cite [arXiv:{paper.arxiv_id}]")
            continue
        rows.append({"id": f"synth-{paper.arxiv_id}-{lang}", "lang": lang, "task": "summary",
                     "messages": [{"role": "user", "content": reply["question"]},
                                  {"role": "assistant", "content": reply["answer"]}]})  # fmt: skip
        log(f"[synth] {index + 1}/{len(papers)} {paper.arxiv_id} ok")
    out = REPO_ROOT / "build" / "synth" / settings.field / f"synth-{time.strftime('%Y%m%d_%H%M%S')}.jsonl"
    write_text_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    try:  # the same checks as hand-written data: a bad row names the file, line and field
        load_handwritten(out.parent, knowledge)
    except PlraError as err:
        out.unlink()
        raise PlraError(f"synthesized data failed validation, nothing kept: {err}") from None
    return out, rows, rejected


def synth_command(
    endpoint: str = typer.Option(..., "--endpoint", help="OpenAI-compatible URL of the writing model"),
    n: int = typer.Option(20, "--n", help="knowledge-base entries to write questions for"),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write more QA with a model from knowledge-base entries, validated; kept in build/synth/ for review."""
    out, rows, rejected = synthesize(endpoint, n, seed, log=(lambda _m: None) if as_json else typer.echo)
    if as_json:
        typer.echo(json.dumps({"file": str(out), "kept": len(rows), "rejected": rejected}))
        return
    for reason in rejected:
        typer.echo(f"rejected {reason}", err=True)
    typer.echo(f"kept {len(rows)} conversations -> {out} (review, then move into datasets/<field>/qa/)")
