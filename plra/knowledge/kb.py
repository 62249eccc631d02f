"""The knowledge base of one field: curated papers, incoming papers, glossary, reading paths, taxonomy.

Layout of `datasets/<field>/`:
    taxonomy.yaml        topics an entry may carry
    papers/<id>.yaml     curated entries (one file each, so reviews and merges stay small)
    glossary.yaml        terms with English and Chinese definitions
    reading_paths.yaml   ordered reading lists for newcomers
    incoming/<id>.yaml   papers fetched from arXiv, uncurated (git-ignored, searchable, never trained on)
    overviews/<topic>.yaml, claims/<topic>.yaml   the field's written synthesis (plra.knowledge.synthesis)
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel

from plra.errors import PlraError
from plra.io import write_text_atomic
from plra.knowledge.synthesis import load_synthesis
from plra.knowledge.validation import Issue, YamlSyntaxError, load_list, load_model, read_yaml, validate_model
from plra.settings import KnowledgeSettings, load_knowledge
from plra.types import Claim, FieldCard, GlossaryTerm, IncomingPaper, Overview, Paper, ReadingPath, Topic


class Gate(Protocol):
    """What `update` needs of a relevance gate (plra.knowledge.relevance.RelevanceGate, which builds on this module)."""

    def check(self, paper: IncomingPaper) -> Any: ...


@dataclass
class KnowledgeBase:
    root: Path
    papers: dict[str, Paper] = field(default_factory=dict)
    incoming: dict[str, IncomingPaper] = field(default_factory=dict)
    glossary: list[GlossaryTerm] = field(default_factory=list)
    paths: list[ReadingPath] = field(default_factory=list)
    topics: dict[str, Topic] = field(default_factory=dict)
    overviews: dict[str, Overview] = field(default_factory=dict)  # topic id -> its overview
    claims: list[Claim] = field(default_factory=list)
    card: FieldCard | None = None  # field.yaml, optional
    digest: str = ""  # content_hash of the files it was loaded from (the search index is keyed by it too)
    issues: list[Issue] = field(default_factory=list)
    locations: dict[str, tuple[Path, dict[tuple, int]]] = field(default_factory=dict)  # id -> file, line map

    def get(self, arxiv_id: str) -> Paper | IncomingPaper | None:
        return self.papers.get(arxiv_id) or self.incoming.get(arxiv_id)

    def terms_for(self, arxiv_id: str) -> list[GlossaryTerm]:
        return [term for term in self.glossary if arxiv_id in term.papers]

    def topic_label(self, topic: str, lang: str) -> str:
        """A taxonomy topic's name without its parenthesised examples; "" for a topic the taxonomy lacks."""
        return re.split(r"\s*[（(]", getattr(self.topics.get(topic), lang, ""))[0]

    @property
    def newest_added(self) -> datetime.date | None:
        return max((p.added for p in self.papers.values() if p.added), default=None)

    @property
    def reviewed_through(self) -> datetime.date | None:
        """The day the curated set is reviewed through: field.yaml's date, else the newest `added` date."""
        return self.card.reviewed_through if self.card is not None else self.newest_added

    def added_since(self, day: datetime.date) -> list[Paper]:
        """Curated papers added on or after day, newest first."""
        papers = [p for p in self.papers.values() if p.added and p.added >= day]
        return sorted(papers, key=lambda p: (p.added, p.arxiv_id), reverse=True)


def _load_entries(folder: Path, model: type[BaseModel], kb: KnowledgeBase) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for path in sorted(folder.glob("*.yaml")):
        entry, lines = load_model(path, model, kb.issues)
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


def _check_references(kb: KnowledgeBase) -> None:
    known = set(kb.papers)
    # An incoming entry may carry curated fields (written before promotion): its topics are checked too.
    for paper in [*kb.incoming.values(), *kb.papers.values()]:
        path, lines = kb.locations[paper.arxiv_id]
        for index, topic in enumerate(paper.topics):
            if topic not in kb.topics:
                line = lines.get(("topics", index))
                kb.issues.append(Issue(path, line, "topics", f"unknown topic '{topic}' (see taxonomy.yaml)"))
        for index, other in enumerate(paper.related if paper.curated else []):
            if other not in known:
                line = lines.get(("related", index))
                kb.issues.append(Issue(path, line, "related", f"{other} is not in the knowledge base"))


COMPILED_DIR = ".compiled"  # git-ignored: the validated knowledge base as one JSON file per content hash


def _compiled_path(root: Path, digest: str) -> Path:
    return root / COMPILED_DIR / f"kb-{digest}.json"


def _save_compiled(kb: KnowledgeBase, digest: str) -> None:
    """Keep the validated knowledge base as one JSON file, so the next call skips parsing every YAML file."""
    data = {
        "topics": [t.model_dump(mode="json") for t in kb.topics.values()],
        "papers": [p.model_dump(mode="json") for p in kb.papers.values()],
        "incoming": [p.model_dump(mode="json") for p in kb.incoming.values()],
        "glossary": [t.model_dump(mode="json") for t in kb.glossary],
        "paths": [p.model_dump(mode="json") for p in kb.paths],
        "overviews": [o.model_dump(mode="json") for o in kb.overviews.values()],
        "claims": [c.model_dump(mode="json") for c in kb.claims],
        "card": kb.card.model_dump(mode="json") if kb.card else None,
    }
    target = _compiled_path(kb.root, digest)
    try:
        write_text_atomic(target, json.dumps(data, ensure_ascii=False))
        for stale in target.parent.glob("kb-*.json"):
            if stale != target:
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only checkout still works, it only parses the YAML files each time


def _load_compiled(root: Path, digest: str) -> KnowledgeBase | None:
    path = _compiled_path(root, digest)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return KnowledgeBase(
            root=root,
            topics={t["id"]: Topic.model_validate(t) for t in data["topics"]},
            papers={p["arxiv_id"]: Paper.model_validate(p) for p in data["papers"]},
            incoming={p["arxiv_id"]: IncomingPaper.model_validate(p) for p in data["incoming"]},
            glossary=[GlossaryTerm.model_validate(t) for t in data["glossary"]],
            paths=[ReadingPath.model_validate(p) for p in data["paths"]],
            overviews={o["topic"]: Overview.model_validate(o) for o in data["overviews"]},
            claims=[Claim.model_validate(c) for c in data["claims"]],
            card=FieldCard.model_validate(data["card"]) if data["card"] else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, or written by another version: parse the YAML files instead


def load(settings: KnowledgeSettings | None = None, *, strict: bool = True, compiled: bool = True) -> KnowledgeBase:
    """Load and validate the field's knowledge base; with strict, any issue raises one PlraError. A knowledge base
    whose files hash the same as one validated before is read from its compiled JSON form (compiled=False
    parses and checks every file, as `plra kb validate` does)."""
    settings = settings or load_knowledge()
    root = settings.field_dir
    if not (root / "papers").is_dir():
        raise PlraError(f"no knowledge base at {root} (expected {root / 'papers'}/): check the `field` setting")
    digest = content_hash(settings)
    cached = _load_compiled(root, digest) if compiled else None
    if cached is not None:
        cached.digest = digest
        return cached
    kb = KnowledgeBase(root=root, digest=digest)
    kb.topics = {t.id: t for t, _ in load_list(root / "taxonomy.yaml", "topics", Topic, kb.issues)}
    if (root / "field.yaml").exists():
        kb.card, _ = load_model(root / "field.yaml", FieldCard, kb.issues)
    kb.papers = _load_entries(root / "papers", Paper, kb)
    if (root / "incoming").is_dir():
        kb.incoming = {
            k: v for k, v in _load_entries(root / "incoming", IncomingPaper, kb).items() if k not in kb.papers
        }
    _check_references(kb)
    seen_terms: set[str] = set()
    for term, lines in load_list(root / "glossary.yaml", "terms", GlossaryTerm, kb.issues):
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
    for path_obj, lines in load_list(root / "reading_paths.yaml", "paths", ReadingPath, kb.issues):
        for index, step in enumerate(path_obj.steps):
            if step.arxiv_id not in kb.papers:
                line = lines.get(("steps", index))
                kb.issues.append(
                    Issue(root / "reading_paths.yaml", line, "arxiv_id", f"{step.arxiv_id} not in the knowledge base")
                )
        kb.paths.append(path_obj)
    kb.overviews, kb.claims = load_synthesis(root, kb.papers, kb.topics, kb.issues)
    newest = kb.newest_added
    if kb.card is not None and newest is not None and newest > kb.card.reviewed_through:
        late = f"{kb.card.reviewed_through} is before the newest paper's added date {newest}"
        kb.issues.append(Issue(root / "field.yaml", None, "reviewed_through", late))
    if strict and kb.issues:
        shown = "\n  ".join(str(i) for i in kb.issues[:5])
        more = f"\n  ... and {len(kb.issues) - 5} more" if len(kb.issues) > 5 else ""
        raise PlraError(f"the knowledge base has {len(kb.issues)} problem(s); run `plra kb validate`:\n  {shown}{more}")
    if not kb.issues:
        _save_compiled(kb, digest)
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
    files = [*root.glob("*.yaml"), *root.glob("papers/*.yaml"), *root.glob("incoming/*.yaml")]
    files += [*root.glob("overviews/*.yaml"), *root.glob("claims/*.yaml")]
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=110)


def write_entry(path: Path, entry: BaseModel) -> None:
    write_text_atomic(path, entry_text(entry))


def incoming_dir(settings: KnowledgeSettings) -> Path:
    return settings.field_dir / "incoming"


def update(
    settings: KnowledgeSettings,
    papers: list[IncomingPaper],
    gate: Gate | None = None,
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
        if known is not None:  # a newer version keeps what a person already curated into the entry
            paper = paper.model_copy(update={k: getattr(known, k) for k in CURATED_FIELDS if getattr(known, k)})
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


CURATED_FIELDS = ("aliases", "venue", "topics", "summary_en", "summary_zh", "key_findings", "methods", "datasets",
                  "metrics", "keywords", "related", "added")  # fmt: skip
INCOMING_ONLY = (
    "version", "published", "updated", "categories", "source_abstract", "fetched", "relevance", "nearest_curated"
)  # fmt: skip


def _promoted(source: Path) -> tuple[Paper | None, list[Issue], dict[tuple, int]]:
    """The curated entry an incoming file becomes (its fields without the feed's, marked curated), its problems,
    and the file's line map."""
    try:
        data, lines = read_yaml(source)
    except YamlSyntaxError as err:
        raise PlraError(str(err.issue)) from None
    entry = {k: v for k, v in (data or {}).items() if k not in INCOMING_ONLY}
    entry["curated"] = True
    paper, issues = validate_model(Paper, entry, source, lines)
    return paper, issues, lines


def entry_text(entry: BaseModel) -> str:
    return dump_yaml(entry.model_dump(mode="json", exclude_defaults=False))


def _is_promoted_copy(source: Path, target: Path) -> bool:
    """Whether target is exactly what promoting source writes: a promote killed after its rename left both."""
    try:
        paper, _, _ = _promoted(source)
        return paper is not None and target.read_text(encoding="utf-8") == entry_text(paper)
    except (OSError, PlraError):
        return False


def promote(settings: KnowledgeSettings, arxiv_id: str) -> Path:
    """Turn an incoming entry that a person has curated by hand into a knowledge-base entry.

    The curated file is written to a temp name and renamed into papers/ (one rename: the whole entry or none),
    then the incoming file is removed. A kill between the two leaves both, which loads as the curated entry
    alone; the next promote, or the next `plra kb` command (finish_promotions), removes the incoming copy."""
    source = incoming_dir(settings) / f"{arxiv_id.replace('/', '_')}.yaml"
    target = settings.field_dir / "papers" / source.name
    if not source.exists():
        raise PlraError(f"{source} does not exist: `plra kb update` fetches papers into incoming/ first")
    if target.exists():
        if _is_promoted_copy(source, target):
            source.unlink(missing_ok=True)  # finish the promote a kill interrupted
            return target
        raise PlraError(f"{target} already exists and is not {source} promoted: curated entries are never "
                        f"overwritten; delete {source} if {target.name} in papers/ is right")  # fmt: skip
    paper, issues, lines = _promoted(source)
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
    if issues or paper is None:
        needed = "summary_en, summary_zh, topics, key_findings (in your own words)"
        shown = "\n  ".join(str(i) for i in issues)
        raise PlraError(f"{arxiv_id} is not ready to promote; add {needed}:\n  {shown}")
    write_text_atomic(target, entry_text(paper))
    source.unlink()
    return target


def finish_promotions(settings: KnowledgeSettings) -> list[str]:
    """Remove each incoming file whose curated entry is exactly it promoted (a promote killed between its rename
    and the removal); the ids finished. A copy that differs stays, and `plra kb validate` names it."""
    finished = []
    for source in sorted(incoming_dir(settings).glob("*.yaml")):
        target = settings.field_dir / "papers" / source.name
        if target.exists() and _is_promoted_copy(source, target):
            source.unlink(missing_ok=True)
            finished.append(source.stem.replace("_", "/"))
    return finished


def shadowed_incoming(settings: KnowledgeSettings) -> list[tuple[Path, Path]]:
    """(incoming file, curated file) pairs of one id: the incoming copy is ignored while the curated one exists."""
    pairs = []
    for source in sorted(incoming_dir(settings).glob("*.yaml")):
        target = settings.field_dir / "papers" / source.name
        if target.exists():
            pairs.append((source, target))
    return pairs


STALE_AFTER_S = 15 * 60  # a temp file or index folder this old belongs to a write that was killed


def clean_stale(settings: KnowledgeSettings, now: float | None = None) -> list[Path]:
    """Remove what killed writes left in the knowledge base: `.NAME.*.tmp` files (plra.io's atomic writes) and
    `.index-*` folders (a search-index rebuild), when older than STALE_AFTER_S; the paths removed. Younger ones
    may belong to a write still going, and an index folder is left alone while another process rebuilds."""
    import fcntl
    import shutil

    root = settings.field_dir
    cutoff = (time.time() if now is None else now) - STALE_AFTER_S
    removed = []

    def old(path: Path) -> bool:
        try:
            return path.stat().st_mtime < cutoff
        except OSError:  # gone meanwhile: its writer finished
            return False

    folders = [root, *(root / name for name in ("papers", "incoming", "overviews", "claims", "templates"))]
    for folder in [*folders, root / COMPILED_DIR]:
        for tmp in folder.glob(".*.tmp"):
            if tmp.is_file() and old(tmp):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    lock = root / ".index.lock"  # plra.knowledge.retrieval.rebuild_lock's file
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return removed  # a rebuild is under way: its folders are not stale
        try:
            for folder in root.glob(".index-*"):
                if folder.is_dir() and old(folder):
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return removed
