"""`plra kb ...`: validate, list, show, stats, update from arXiv, promote."""

from __future__ import annotations

import collections
import datetime
import json
from typing import Any

import typer

from plra.errors import PlraError
from plra.knowledge.arxiv_client import ArxivClient
from plra.knowledge.digest import digest, digest_line, digest_markdown
from plra.knowledge.kb import (
    clean_stale,
    finish_promotions,
    incoming_dir,
    load,
    promote,
    shadowed_incoming,
    update,
)
from plra.knowledge.relevance import RelevanceGate, log_rejected
from plra.prompts import check_lang
from plra.settings import load_knowledge
from plra.types import IncomingPaper, Paper

kb_app = typer.Typer(help="The knowledge base: validate, list, show, stats, update from arXiv, promote, eval.")


def _summary_row(paper: Paper | IncomingPaper) -> dict[str, Any]:
    return {
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "year": paper.year,
        "topics": getattr(paper, "topics", []),
        "curated": paper.curated,
    }


@kb_app.callback()
def tidy_command() -> None:
    # Every `plra kb` command first clears what a killed one left: temp files older than kb.STALE_AFTER_S, and a
    # promote stopped between its rename and the removal of the incoming file (finished now: nothing is lost).
    try:
        settings = load_knowledge()
        clean_stale(settings)
        finished = finish_promotions(settings)
    except OSError:
        return  # a read-only checkout: nothing there to clear, and reading still works
    for arxiv_id in finished:
        typer.echo(f"finished the promotion of {arxiv_id} that was stopped midway", err=True)


@kb_app.command("validate")
def validate_command() -> None:
    """Check every entry: schema, ids, years, both languages, related ids, topics. Errors name file and line."""
    kb = load(strict=False, compiled=False)
    for issue in kb.issues:
        typer.echo(str(issue), err=True)
    for source, target in shadowed_incoming(load_knowledge()):
        typer.echo(f"note: {source} is ignored: {target} is the curated entry of the same paper; delete the "
                   f"incoming copy once nothing in it is still wanted", err=True)  # fmt: skip
    counts = (
        f"{len(kb.papers)} papers, {len(kb.incoming)} incoming, {len(kb.glossary)} terms, {len(kb.paths)} paths, "
        f"{len(kb.overviews)} overviews, {len(kb.claims)} claims"
    )
    if kb.issues:
        raise PlraError(f"{len(kb.issues)} problem(s) in {kb.root} ({counts})", exit_code=1)
    typer.echo(f"ok: {counts}, {len(kb.topics)} topics")


@kb_app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json"),
    topic: str = typer.Option(None, "--topic", help="only papers with this topic"),
    include_incoming: bool = typer.Option(True, "--incoming/--no-incoming", help="include uncurated papers"),
) -> None:
    """List papers (curated first, then incoming)."""
    kb = load()
    papers: list[Paper | IncomingPaper] = list(kb.papers.values())
    if include_incoming:
        papers += list(kb.incoming.values())
    rows = [_summary_row(p) for p in papers if topic is None or topic in getattr(p, "topics", [])]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        flag = "" if row["curated"] else "  [uncurated]"
        typer.echo(f"{row['arxiv_id']:11s} {row['year']}  {row['title'][:90]}{flag}")
    typer.echo(f"{len(rows)} papers")


@kb_app.command("show")
def show_command(arxiv_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one paper in full."""
    kb = load()
    paper = kb.get(arxiv_id.removeprefix("arXiv:"))
    if paper is None:
        raise PlraError(f"{arxiv_id} is not in the knowledge base: `plra search` finds papers by topic")
    data = paper.model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    typer.echo(f"{paper.title} ({paper.year})  arXiv:{paper.arxiv_id}  {paper.url}")
    typer.echo(", ".join(paper.authors) + (f" — {data.get('venue')}" if data.get("venue") else ""))
    if not paper.curated:
        if data.get("relevance") is not None:
            typer.echo(
                f"relevance to the field {data['relevance']:.2f}, nearest curated paper {data['nearest_curated']}"
            )
        typer.echo("[uncurated: fetched from arXiv, not reviewed]\n" + data.get("source_abstract", ""))
        return
    typer.echo(f"topics: {', '.join(paper.topics)}\n\n{paper.summary_en}\n\n{paper.summary_zh}\n\nkey findings:")
    for finding in paper.key_findings:
        typer.echo(f"  - {finding}")
    for label in ("methods", "datasets", "metrics"):
        if data[label]:
            typer.echo(f"{label}: {', '.join(data[label])}")
    for other in paper.related:
        related = kb.get(other)
        typer.echo(f"related: {other} {related.title if related else ''}")


@kb_app.command("stats")
def stats_command(as_json: bool = typer.Option(False, "--json")) -> None:
    """Counts by topic and by year."""
    kb = load()
    by_topic = collections.Counter(t for p in kb.papers.values() for t in p.topics)
    by_year = collections.Counter(p.year for p in kb.papers.values())
    stats = {
        "papers": len(kb.papers),
        "incoming": len(kb.incoming),
        "glossary_terms": len(kb.glossary),
        "reading_paths": len(kb.paths),
        "by_topic": {t: by_topic.get(t, 0) for t in kb.topics},
        "by_year": dict(sorted(by_year.items())),
        "overviews": len(kb.overviews),
        "claims": len(kb.claims),
        "reviewed_through": str(kb.reviewed_through) if kb.reviewed_through else None,
    }
    if as_json:
        typer.echo(json.dumps(stats, ensure_ascii=False))
        return
    typer.echo(
        f"{stats['papers']} curated papers, {stats['incoming']} incoming, "
        f"{stats['glossary_terms']} glossary terms, {stats['reading_paths']} reading paths, "
        f"{stats['overviews']} topic overviews, {stats['claims']} claims; reviewed through {stats['reviewed_through']}"
    )
    typer.echo("by topic:")
    for topic, count in sorted(stats["by_topic"].items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {topic:22s} {count:4d}  {kb.topics[topic].zh}")
    typer.echo("by year:  " + "  ".join(f"{year}: {count}" for year, count in stats["by_year"].items()))


@kb_app.command("digest")
def digest_command(
    since: str = typer.Option(..., "--since", help="papers added on or after this date (YYYY-MM-DD)"),
    lang: str = typer.Option("en", "--lang", help="en or zh"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What was added to the knowledge base since a date, grouped by topic, a cited line each."""
    day = parse_date(since, "--since")
    check_lang(lang)
    kb = load()
    if as_json:
        groups = digest(kb, day)
        rows = {t: [{"arxiv_id": p.arxiv_id, "added": str(p.added), "line": digest_line(p, lang)} for p in papers]
                for t, papers in groups.items()}  # fmt: skip
        typer.echo(json.dumps({"since": since, "reviewed_through": str(kb.reviewed_through), "topics": rows},
                              ensure_ascii=False))  # fmt: skip
        return
    typer.echo(digest_markdown(kb, day, lang))


def parse_date(value: str, flag: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise PlraError(f"{flag} {value!r} is not a date like 2025-01-31") from None


@kb_app.command("update")
def update_command(
    query: str = typer.Option(..., "--query", "-q", help="arXiv query, e.g. 'all:personalized AND all:LLM'"),
    since: str = typer.Option(None, "--since", help="only papers submitted on or after this date (YYYY-MM-DD)"),
    max_results: int = typer.Option(20, "--max", help="at most this many papers"),
    min_relevance: float = typer.Option(
        None,
        "--min-relevance",
        min=0.0,
        max=1.0,
        help="keep only papers this relevant to the field (0-1; default: the min_relevance setting, 0.51; "
        "0 keeps every paper); the others are reported and logged in incoming/rejected.jsonl",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fetch new papers from arXiv into incoming/ (uncurated, searchable, never trained on); off-topic ones are
    rejected with the reason."""
    settings = load_knowledge({"min_relevance": min_relevance})
    since_date = parse_date(since, "--since") if since else None
    papers = ArxivClient(settings).search(query, max_results=max_results, since=since_date)
    knowledge = load(settings, strict=False)
    outcome = update(settings, papers, RelevanceGate.open(settings, knowledge), knowledge)
    log = log_rejected(settings, outcome["rejected"], query) if outcome["rejected"] else None
    if as_json:
        typer.echo(json.dumps(outcome, ensure_ascii=False))
        return
    typer.echo(
        f"fetched {len(papers)}: {len(outcome['new'])} new, {len(outcome['updated'])} newer versions, "
        f"{len(outcome['unchanged'])} unchanged, {len(outcome['curated'])} already curated, "
        f"{len(outcome['rejected'])} rejected as off-topic -> {incoming_dir(settings)}"
    )
    for row in outcome["rejected"]:
        typer.echo(f"  rejected {row['arxiv_id']} {row['title'][:80]!r}: {row['reason']}")
    if log:
        typer.echo(f"rejected papers are logged in {log} (rerun with --min-relevance 0 to keep them)")


@kb_app.command("promote")
def promote_command(arxiv_id: str) -> None:
    """Move a hand-curated incoming entry into papers/ after validating it."""
    target = promote(load_knowledge(), arxiv_id)
    typer.echo(f"promoted {arxiv_id} -> {target}")
