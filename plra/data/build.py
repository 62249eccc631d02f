"""`plra data build`: knowledge base -> pretrain / SFT / DPO files with a manifest, behind the leakage guard."""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from plra.data import dpo, heldout, pretrain, sft, synthesis
from plra.data.leakage import find_leaks
from plra.data.synth import synth_command
from plra.errors import PlraError
from plra.io import check_folder_out, read_jsonl, write_json_atomic
from plra.knowledge import kb as kb_module
from plra.paths import REPO_ROOT
from plra.settings import KnowledgeSettings, load_knowledge

BENCHMARK_FILES = ("mcq.jsonl", "qa.jsonl", "attribution.jsonl", "retrieval.jsonl", "in_field.jsonl",
                   "out_of_field.jsonl")  # fmt: skip


def default_out_dir(settings: KnowledgeSettings) -> Path:
    return REPO_ROOT / "build" / "data" / settings.field


def benchmark_rows(settings: KnowledgeSettings) -> list[tuple[str, dict[str, Any]]]:
    """Every benchmark row with the name of its file."""
    folder = settings.field_dir / "benchmark"
    rows = []
    for name in BENCHMARK_FILES:
        path = folder / name
        if path.exists():
            try:
                rows += [(name, row) for row in read_jsonl(path)]
            except ValueError as err:
                raise PlraError(str(err)) from None
    return rows


def benchmark_questions(settings: KnowledgeSettings) -> list[tuple[str, str]]:
    return [(name, row["question"]) for name, row in benchmark_rows(settings) if row.get("question")]


def training_questions(conversations: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    turns = [(c["id"], m["content"]) for c in conversations for m in c["messages"] if m["role"] == "user"]
    turns += [(p["id"], m["content"]) for p in pairs for m in p["prompt"] if m["role"] == "user"]
    return turns


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


MARKER = ".plra-data-build"  # in every folder `plra data build` wrote: only such a folder is replaced
STALE_AFTER_S = 3600  # a temp folder this old belongs to a build that crashed


def check_out_dir(out_dir: Path) -> None:
    """out_dir may be new, empty, or an earlier build's; anything else is a user's folder and stays untouched."""
    check_folder_out(out_dir, "--out", "the training files")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise PlraError(f"{out_dir} holds files that plra data build did not write; give an empty or new folder "
                        f"(nothing was changed)")  # fmt: skip


def clean_stale(out_dir: Path) -> None:
    """Temp and old folders a crashed build left beside out_dir."""
    for stale in out_dir.parent.glob(f".{out_dir.name}-*"):
        if stale.is_dir() and time.time() - stale.stat().st_mtime > STALE_AFTER_S:
            shutil.rmtree(stale, ignore_errors=True)


def replace_dir(tmp: Path, out_dir: Path) -> None:
    """Put tmp in out_dir's place: at every moment one complete build is there (the old, then the new)."""
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-old-"))
        out_dir.rename(old / "build")
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)


def build(settings: KnowledgeSettings, out_dir: Path, seed: int = 0, log=print) -> dict[str, Any]:
    """Build every training file into out_dir (replaced atomically) and return the manifest."""
    start = time.monotonic()
    check_out_dir(out_dir)
    knowledge = kb_module.load(settings)  # curated papers only: incoming entries are never trained on
    log(
        f"knowledge base: {len(knowledge.papers)} papers, {len(knowledge.glossary)} terms, "
        f"{len(knowledge.overviews)} overviews, {len(knowledge.claims)} claims"
    )
    held = heldout.heldout_ids(knowledge, heldout.benchmark_papers(row for _, row in benchmark_rows(settings)))
    forbidden = heldout.paper_grams(knowledge, held)
    synthesis_docs, _ = heldout.keep_out(synthesis.pretrain_documents(knowledge), held, forbidden)
    synthesis_sft, _ = heldout.keep_out(synthesis.sft_conversations(knowledge, seed), held, forbidden)
    synthesis_pairs, _ = heldout.keep_out(synthesis.dpo_pairs(knowledge), held, forbidden)
    docs, dropped_docs = heldout.keep_out(pretrain.build(knowledge, frozenset(held)) + synthesis_docs, held, forbidden)
    conversations, dropped_sft = heldout.keep_out(
        sft.templated(knowledge, seed) + synthesis_sft + sft.load_handwritten(settings.field_dir / "qa", knowledge),
        held,
        forbidden,
    )
    pairs, dropped_dpo = heldout.keep_out(dpo.build(knowledge, seed) + synthesis_pairs, held, forbidden)
    heldout_docs = [{"id": pid, "text": pretrain.paper_document(knowledge, pid)} for pid in sorted(held)]
    names = [name for p in knowledge.papers.values() for name in (p.title, p.title.split(":")[0], *p.aliases)]
    leaks = find_leaks(benchmark_questions(settings), training_questions(conversations, pairs), names)
    if leaks:
        shown = "\n  ".join(str(leak) for leak in leaks[:20])
        raise PlraError(f"{len(leaks)} benchmark question(s) leak into training data; reword them:\n  {shown}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    (tmp / MARKER).write_text("written by plra data build; the next build replaces this folder\n")
    try:
        hashes = {
            "pretrain.jsonl": _write_jsonl(tmp / "pretrain.jsonl", docs),
            "sft.jsonl": _write_jsonl(tmp / "sft.jsonl", [{"messages": c["messages"]} for c in conversations]),
            "sft_records.jsonl": _write_jsonl(tmp / "sft_records.jsonl", conversations),
            "dpo.jsonl": _write_jsonl(tmp / "dpo.jsonl", [dpo.xtuner_row(p) for p in pairs]),
            "dpo_records.jsonl": _write_jsonl(tmp / "dpo_records.jsonl", pairs),
            "heldout.jsonl": _write_jsonl(tmp / "heldout.jsonl", heldout_docs),
        }
        manifest = {
            "field": settings.field,
            "seed": seed,
            "knowledge_base_hash": kb_module.content_hash(settings),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "counts": {
                "pretrain": len(docs),
                "sft": len(conversations),
                "sft_handwritten": sum(not c["id"].startswith("tpl-") for c in conversations),
                "sft_multi_turn": sum(len(c["messages"]) > 3 for c in conversations),
                "dpo": len(pairs),
                "pretrain_synthesis": len(synthesis_docs),
                "sft_synthesis": len(synthesis_sft),
                "dpo_claims": len(synthesis_pairs),
                "heldout": len(heldout_docs),
            },
            # Training never saw these papers: items naming one as a source or carrying its sentences were left out.
            "heldout": {
                "papers": sorted(held),
                "left_out": {"pretrain": dropped_docs, "sft": dropped_sft, "dpo": dropped_dpo},
            },
            "sft_by_task_lang": _counts(conversations, "task"),
            "dpo_by_rejection_lang": _counts(pairs, "rejection"),
            "benchmark_questions_checked": len(benchmark_questions(settings)),
            "files": hashes,
        }
        write_json_atomic(tmp / "manifest.json", manifest)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"built {out_dir} in {time.monotonic() - start:.1f} s")
    return manifest


def _counts(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, int]]:
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in rows:
        counts[row[key]][row["lang"]] += 1
    return {name: dict(sorted(c.items())) for name, c in sorted(counts.items())}


data_app = typer.Typer(help="Training data: build pretrain / SFT / DPO files; synthesize more QA with a model.")


@data_app.command("build")
def build_command(
    out: Path = typer.Option(None, "--out", help="output folder (default build/data/<field>)"),
    seed: int = typer.Option(0, "--seed", help="seed of the templated builders"),
    as_json: bool = typer.Option(False, "--json", help="print the manifest as JSON"),
) -> None:
    """Build pretrain.jsonl, sft.jsonl and dpo.jsonl (XTuner formats) with manifest.json; fails on leakage."""
    settings = load_knowledge()
    out_dir = out or default_out_dir(settings)
    manifest = build(settings, out_dir, seed, log=(lambda _msg: None) if as_json else typer.echo)
    if as_json:
        typer.echo(json.dumps(manifest, ensure_ascii=False))
        return
    counts = manifest["counts"]
    typer.echo(
        f"pretrain {counts['pretrain']} documents, SFT {counts['sft']} conversations "
        f"({counts['sft_handwritten']} hand-written, {counts['sft_multi_turn']} multi-turn), DPO {counts['dpo']} pairs"
    )
    typer.echo(
        f"  from overviews and claims: {counts['pretrain_synthesis']} documents, {counts['sft_synthesis']} "
        f"conversations, {counts['dpo_claims']} DPO pairs"
    )
    for task, langs in manifest["sft_by_task_lang"].items():
        typer.echo(f"  sft {task:14s} " + "  ".join(f"{lang} {n}" for lang, n in langs.items()))


data_app.command("synth")(synth_command)
