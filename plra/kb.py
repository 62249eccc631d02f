"""The knowledge base of one field: curated papers, incoming papers, glossary, reading paths, taxonomy.

Layout of `datasets/<field>/`:
    taxonomy.yaml        topics an entry may carry
    papers/<id>.yaml     curated entries (one file each, so reviews and merges stay small)
    glossary.yaml        terms with English and Chinese definitions
    reading_paths.yaml   ordered reading lists for newcomers
    incoming/<id>.yaml   papers fetched from arXiv, uncurated (git-ignored, searchable, never trained on)
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
import yaml
from pydantic import BaseModel, ValidationError

from plra.errors import PlraError
from plra.io import write_text_atomic
from plra.settings import KnowledgeSettings, load_knowledge
from plra.types import GlossaryTerm, IncomingPaper, Paper, ReadingPath, Topic

if TYPE_CHECKING:
    from plra.relevance import RelevanceGate

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Issue:
    """One validation problem, located as precisely as the file allows."""

    path: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass
class KnowledgeBase:
    root: Path
    papers: dict[str, Paper] = field(default_factory=dict)
    incoming: dict[str, IncomingPaper] = field(default_factory=dict)
    glossary: list[GlossaryTerm] = field(default_factory=list)
    paths: list[ReadingPath] = field(default_factory=list)
    topics: dict[str, Topic] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    locations: dict[str, tuple[Path, dict[tuple, int]]] = field(default_factory=dict)  # id -> file, line map

    def get(self, arxiv_id: str) -> Paper | IncomingPaper | None:
        return self.papers.get(arxiv_id) or self.incoming.get(arxiv_id)

    def terms_for(self, arxiv_id: str) -> list[GlossaryTerm]:
        return [term for term in self.glossary if arxiv_id in term.papers]


def _line_map(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Line (1-based) of every mapping key and sequence item, by its path of keys and indexes."""
    lines: dict[tuple, int] = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            lines.update(_line_map(value, path))
            lines[path] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_map(item, (*prefix, index)))
    return lines


def read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Parse a YAML file and map each path inside it to a line; a syntax error names file and line."""
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise _YamlSyntax(Issue(path, line, "", f"invalid YAML: {getattr(err, 'problem', err)}")) from None
    return data, (_line_map(node) if node is not None else {})


class _YamlSyntax(Exception):
    def __init__(self, issue: Issue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def _locate(lines: dict[tuple, int], loc: tuple) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _validate(model: type[BaseModel], data: Any, path: Path, lines: dict[tuple, int], prefix: tuple = ()):
    """Validate data against model; return (object or None, issues naming file, line and field)."""
    if not isinstance(data, dict):
        return None, [Issue(path, _locate(lines, prefix), ".".join(map(str, prefix)), "expected a mapping")]
    try:
        return model.model_validate(data), []
    except ValidationError as err:
        issues = []
        for error in err.errors():
            loc = (*prefix, *error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            issues.append(Issue(path, _locate(lines, loc), ".".join(map(str, loc)) or "entry", message))
        return None, issues


def load_yaml_model(path: Path, model: type[ModelT]) -> ModelT:
    """One YAML data file as model; any problem is one PlraError naming the file, line and field."""
    if not path.exists():
        raise PlraError(f"{path} is missing")
    try:
        data, lines = read_yaml(path)
    except _YamlSyntax as err:
        raise PlraError(str(err.issue)) from None
    parsed, issues = _validate(model, data, path, lines)
    if issues:
        raise PlraError("; ".join(str(i) for i in issues[:5]))
    return parsed


def _load_entries(folder: Path, model: type[BaseModel], kb: KnowledgeBase) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            data, lines = read_yaml(path)
        except _YamlSyntax as err:
            kb.issues.append(err.issue)
            continue
        entry, issues = _validate(model, data, path, lines)
        kb.issues.extend(issues)
        if entry is None:
            continue
        if path.stem.replace("_", "/") != entry.arxiv_id:
            kb.issues.append(
                Issue(path, lines.get(("arxiv_id",)), "arxiv_id", f"file must be named {entry.arxiv_id}.yaml")
            )
        if entry.arxiv_id in entries:
            kb.issues.append(Issue(path, lines.get(("arxiv_id",)), "arxiv_id", f"duplicate id {entry.arxiv_id}"))
            continue
        entries[entry.arxiv_id] = entry
        kb.locations.setdefault(entry.arxiv_id, (path, lines))
    return entries


def _load_list(path: Path, key: str, model: type[BaseModel], kb: KnowledgeBase) -> list[tuple[Any, dict]]:
    if not path.exists():
        kb.issues.append(Issue(path, None, "", "file missing"))
        return []
    try:
        data, lines = read_yaml(path)
    except _YamlSyntax as err:
        kb.issues.append(err.issue)
        return []
    items = (data or {}).get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        kb.issues.append(Issue(path, 1, key, f"expected a top-level '{key}:' list"))
        return []
    loaded = []
    for index, item in enumerate(items):
        obj, issues = _validate(model, item, path, lines, (key, index))
        kb.issues.extend(issues)
        if obj is not None:
            loaded.append((obj, {k[2:]: v for k, v in lines.items() if k[:2] == (key, index) and len(k) > 2}))
    return loaded


def _check_references(kb: KnowledgeBase) -> None:
    known = set(kb.papers)
    for paper in kb.papers.values():
        path, lines = kb.locations[paper.arxiv_id]
        for index, topic in enumerate(paper.topics):
            if topic not in kb.topics:
                line = lines.get(("topics", index))
                kb.issues.append(Issue(path, line, "topics", f"unknown topic '{topic}' (see taxonomy.yaml)"))
        for index, other in enumerate(paper.related):
            if other not in known:
                line = lines.get(("related", index))
                kb.issues.append(Issue(path, line, "related", f"{other} is not in the knowledge base"))


def load(settings: KnowledgeSettings | None = None, *, strict: bool = True) -> KnowledgeBase:
    """Load and validate the field's knowledge base; with strict, any issue raises one PlraError."""
    settings = settings or load_knowledge()
    root = settings.field_dir
    if not (root / "papers").is_dir():
        raise PlraError(f"no knowledge base at {root} (expected {root / 'papers'}/): check the `field` setting")
    kb = KnowledgeBase(root=root)
    kb.topics = {t.id: t for t, _ in _load_list(root / "taxonomy.yaml", "topics", Topic, kb)}
    kb.papers = _load_entries(root / "papers", Paper, kb)
    if (root / "incoming").is_dir():
        kb.incoming = {
            k: v for k, v in _load_entries(root / "incoming", IncomingPaper, kb).items() if k not in kb.papers
        }
    _check_references(kb)
    seen_terms: set[str] = set()
    for term, lines in _load_list(root / "glossary.yaml", "terms", GlossaryTerm, kb):
        if term.term.lower() in seen_terms:
            kb.issues.append(
                Issue(root / "glossary.yaml", lines.get(("term",)), "term", f"duplicate term '{term.term}'")
            )
        seen_terms.add(term.term.lower())
        for pid in term.papers:
            if pid not in kb.papers:
                kb.issues.append(
                    Issue(root / "glossary.yaml", lines.get(("papers",)), "papers", f"{pid} not in the knowledge base")
                )
        kb.glossary.append(term)
    for path_obj, lines in _load_list(root / "reading_paths.yaml", "paths", ReadingPath, kb):
        for index, step in enumerate(path_obj.steps):
            if step.arxiv_id not in kb.papers:
                line = lines.get(("steps", index))
                kb.issues.append(
                    Issue(root / "reading_paths.yaml", line, "arxiv_id", f"{step.arxiv_id} not in the knowledge base")
                )
        kb.paths.append(path_obj)
    if strict and kb.issues:
        shown = "\n  ".join(str(i) for i in kb.issues[:5])
        more = f"\n  ... and {len(kb.issues) - 5} more" if len(kb.issues) > 5 else ""
        raise PlraError(f"the knowledge base has {len(kb.issues)} problem(s); run `plra kb validate`:\n  {shown}{more}")
    return kb


def field_words(settings: KnowledgeSettings) -> list[str]:
    """The field's own words (`scope.yaml`), lower-cased, both languages; none when the file is absent."""
    path = settings.field_dir / "scope.yaml"
    if not path.exists():
        return []
    try:
        words = yaml.safe_load(path.read_text(encoding="utf-8"))["field_words"]
        return [w.lower() for lang in words.values() for w in lang]
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as err:
        raise PlraError(f"{path}: field_words must map en/zh to lists of words ({err})") from None


def content_hash(settings: KnowledgeSettings) -> str:
    """A hash of every knowledge-base file: the search index is rebuilt when it changes."""
    digest = hashlib.sha256()
    root = settings.field_dir
    for path in sorted([*root.glob("*.yaml"), *root.glob("papers/*.yaml"), *root.glob("incoming/*.yaml")]):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=110)


def write_entry(path: Path, entry: BaseModel) -> None:
    write_text_atomic(path, dump_yaml(entry.model_dump(mode="json", exclude_defaults=False)))


# ---------------------------------------------------------------------------------------------- CLI

kb_app = typer.Typer(help="The knowledge base: validate, list, show, stats, update from arXiv, promote, eval.")


def _summary_row(paper: Paper | IncomingPaper) -> dict[str, Any]:
    return {
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "year": paper.year,
        "topics": getattr(paper, "topics", []),
        "curated": paper.curated,
    }


@kb_app.command("validate")
def validate_command() -> None:
    """Check every entry: schema, ids, years, both languages, related ids, topics. Errors name file and line."""
    kb = load(strict=False)
    for issue in kb.issues:
        typer.echo(str(issue), err=True)
    counts = f"{len(kb.papers)} papers, {len(kb.incoming)} incoming, {len(kb.glossary)} terms, {len(kb.paths)} paths"
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
    }
    if as_json:
        typer.echo(json.dumps(stats, ensure_ascii=False))
        return
    typer.echo(
        f"{stats['papers']} curated papers, {stats['incoming']} incoming, "
        f"{stats['glossary_terms']} glossary terms, {stats['reading_paths']} reading paths"
    )
    typer.echo("by topic:")
    for topic, count in sorted(stats["by_topic"].items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {topic:22s} {count:4d}  {kb.topics[topic].zh}")
    typer.echo("by year:  " + "  ".join(f"{year}: {count}" for year, count in stats["by_year"].items()))


def incoming_dir(settings: KnowledgeSettings) -> Path:
    return settings.field_dir / "incoming"


def update(
    settings: KnowledgeSettings,
    papers: list[IncomingPaper],
    gate: RelevanceGate | None = None,
    knowledge: KnowledgeBase | None = None,
) -> dict[str, list[Any]]:
    """Merge fetched papers into incoming/: new ids land, newer versions replace older ones,
    curated entries are never touched. Every write is atomic. With a gate, a paper to be written must pass it
    first: "accepted" lists those with their relevance, "rejected" the others with the reason."""
    knowledge = knowledge or load(settings, strict=False)
    outcome: dict[str, list[Any]] = {"new": [], "updated": [], "unchanged": [], "curated": [], "accepted": [],
                                     "rejected": []}  # fmt: skip
    newest: dict[str, IncomingPaper] = {}
    for paper in papers:  # the same paper can come back in several versions: keep the newest
        if paper.arxiv_id not in newest or paper.version > newest[paper.arxiv_id].version:
            newest[paper.arxiv_id] = paper
    for arxiv_id, paper in newest.items():
        if arxiv_id in knowledge.papers:
            outcome["curated"].append(arxiv_id)
            continue
        known = knowledge.incoming.get(arxiv_id)
        if known is not None and known.version >= paper.version:
            outcome["unchanged"].append(arxiv_id)
            continue
        if gate is not None:
            verdict = gate.check(paper)
            row = {"arxiv_id": arxiv_id, "version": paper.version, "title": paper.title, **verdict.to_json()}
            outcome["accepted" if verdict.accepted else "rejected"].append(row)
            if not verdict.accepted:
                continue
            paper = paper.model_copy(update={"relevance": verdict.score, "nearest_curated": verdict.nearest})
        write_entry(incoming_dir(settings) / f"{arxiv_id.replace('/', '_')}.yaml", paper)
        outcome["updated" if known else "new"].append(arxiv_id)
    return outcome


INCOMING_ONLY = (
    "version", "published", "updated", "categories", "source_abstract", "fetched", "relevance", "nearest_curated"
)  # fmt: skip


def promote(settings: KnowledgeSettings, arxiv_id: str) -> Path:
    """Turn an incoming entry that a person has curated by hand into a knowledge-base entry."""
    source = incoming_dir(settings) / f"{arxiv_id.replace('/', '_')}.yaml"
    if not source.exists():
        raise PlraError(f"{source} does not exist: `plra kb update` fetches papers into incoming/ first")
    try:
        data, lines = read_yaml(source)
    except _YamlSyntax as err:
        raise PlraError(str(err.issue)) from None
    entry = {k: v for k, v in (data or {}).items() if k not in INCOMING_ONLY}
    entry["curated"] = True
    paper, issues = _validate(Paper, entry, source, lines)
    if paper is not None:
        knowledge = load(settings, strict=False)
        known = set(knowledge.papers)
        issues += [
            Issue(source, lines.get(("related",)), "related", f"{r} is not in the knowledge base")
            for r in paper.related
            if r not in known
        ]
        issues += [
            Issue(source, lines.get(("topics",)), "topics", f"unknown topic '{t}'")
            for t in paper.topics
            if t not in knowledge.topics
        ]
    if issues:
        needed = "summary_en, summary_zh, topics, key_findings (in your own words)"
        shown = "\n  ".join(str(i) for i in issues)
        raise PlraError(f"{arxiv_id} is not ready to promote; add {needed}:\n  {shown}")
    target = settings.field_dir / "papers" / source.name
    if target.exists():
        raise PlraError(f"{target} already exists: curated entries are never overwritten")
    write_entry(target, paper)
    source.unlink()
    return target


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
        help="keep only papers this relevant to the field (0-1; default: the min_relevance setting, 0.55; "
        "0 keeps every paper); the others are reported and logged in incoming/rejected.jsonl",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fetch new papers from arXiv into incoming/ (uncurated, searchable, never trained on); off-topic ones are
    rejected with the reason."""
    from plra.arxiv_client import ArxivClient
    from plra.relevance import RelevanceGate, log_rejected

    settings = load_knowledge({"min_relevance": min_relevance})
    try:
        since_date = datetime.date.fromisoformat(since) if since else None
    except ValueError:
        raise PlraError(f"--since {since!r} is not a date like 2025-01-31") from None
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
