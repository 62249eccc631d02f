"""The relevance gate of `plra kb update`: each paper fetched from arXiv is scored against the field before it
may land in incoming/, so that an off-topic paper a broad query brings back (bread baking, fluid dynamics) is
never searched, cited or taken for the field. Rejected papers are logged with their reason for a person.

relevance = (terms + similarity) / 2, both parts in [0, 1]:

- terms: the field's own terms in the title and abstract, all from its data files: `scope.yaml`'s field words,
  the glossary's terms, the curated papers' names and keywords (1 each), and the taxonomy's topics (1/2 for any
  number of them: "benchmark", "evaluation" and "memory" are as likely in a paper on GPU sorting); two make the
  part full. A stretch of text counts once, for the longest term it spells ("persona" inside "personalized"
  is no second term).
- similarity: the BM25 score of the nearest curated paper (retrieval's tokenizer, the index of curated papers
  only) per distinct word of the title and abstract; SIMILARITY_FULL makes the part full.

A paper with no field term scores at most 1/2, so the default threshold (0.51, the `min_relevance` setting)
never lets one in on word overlap alone. `calibration()` measures the margin: every curated paper, scored
leave-one-out as if it were new, against off-topic abstracts (tests/relevance_fixture.py).
"""

from __future__ import annotations

import collections
import datetime
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plra.errors import PlraError
from plra.io import read_jsonl, write_text_atomic
from plra.knowledge import kb as kb_module
from plra.knowledge.names import NameIndex, name_pattern
from plra.knowledge.retrieval import SearchIndex, open_index, tokenize
from plra.settings import KnowledgeSettings
from plra.types import IncomingPaper

TERMS_FULL = 2.0  # field terms that make the term part full
TOPICS_WEIGHT = 0.5  # what the taxonomy's topic names count for, together
# The per-word BM25 score that makes the similarity part full: about the median of the curated papers against
# their nearest other one (0.29); off-topic abstracts reach 0.13-0.21, so similarity alone cannot decide.
SIMILARITY_FULL = 0.3
LATIN_START = r"(?<![A-Za-z0-9])"


@dataclass(frozen=True)
class Term:
    key: str  # what counts once: a field word, a glossary term, a paper's id, a keyword, a topic id
    label: str  # how a reason names it
    topic: bool  # a taxonomy topic: weaker evidence than the other terms
    pattern: re.Pattern
    owners: frozenset[str] = frozenset()  # the curated papers it is a name or keyword of (left out for them)


def _topic_pattern(topic_id: str) -> re.Pattern:
    """'role-play' as 'role-play', 'role play' or 'roleplay'; 'benchmark' as 'benchmarks' too."""
    spelled = r"[\s-]?".join(re.escape(part) for part in topic_id.split("-"))
    return re.compile(rf"{LATIN_START}{spelled}s?(?![A-Za-z0-9])", re.IGNORECASE)


def field_terms(knowledge: kb_module.KnowledgeBase, words: list[str]) -> list[Term]:
    """The field's terms, from its data files only: scope words, glossary, paper names and keywords, topics."""
    # Field words are prefixes ("personaliz") matched the way the scope rules match them, from a word's start.
    terms = [Term(w, w, False, re.compile(LATIN_START + re.escape(w), re.IGNORECASE)) for w in words]
    for kind, key, name, pattern in NameIndex(knowledge).patterns:
        terms.append(Term(key, name, False, pattern, frozenset({key}) if kind == "paper" else frozenset()))
    owners: dict[str, set[str]] = collections.defaultdict(set)
    spelling: dict[str, str] = {}
    for pid, paper in knowledge.papers.items():
        for keyword in paper.keywords:
            owners[keyword.lower()].add(pid)
            spelling.setdefault(keyword.lower(), keyword)
    terms += [Term(k, spelling[k], False, name_pattern(spelling[k]), frozenset(ids)) for k, ids in owners.items()]
    terms += [Term(t, t, True, _topic_pattern(t)) for t in knowledge.topics]
    return terms


def found_terms(terms: list[Term], text: str, exclude: str | None = None) -> list[Term]:
    """The terms in text, each once, first found first; overlapping matches count for the longest term only."""
    matches = [
        (m.start(), m.end(), term)
        for term in terms
        if not (exclude and term.owners == {exclude})
        for m in term.pattern.finditer(text)
    ]
    taken: list[tuple[int, int]] = []
    found: dict[str, tuple[int, Term]] = {}
    for start, end, term in sorted(matches, key=lambda m: (m[0] - m[1], m[0])):
        if any(a < end and start < b for a, b in taken):
            continue
        taken.append((start, end))
        if term.key not in found or start < found[term.key][0]:
            found[term.key] = (start, term)
    return [term for _, term in sorted(found.values(), key=lambda f: f[0])]


@dataclass(frozen=True)
class Relevance:
    score: float
    terms: list[str]
    nearest: str | None  # the nearest curated paper, None when no curated paper shares a word
    similarity: float
    threshold: float

    @property
    def accepted(self) -> bool:
        return self.score >= self.threshold

    @property
    def reason(self) -> str:
        found = f"field terms: {', '.join(self.terms[:4])}" if self.terms else "no field term in title/abstract"
        near = (
            f"nearest curated paper {self.nearest} at {self.similarity:.2f}"
            if self.nearest
            else "no curated paper near"
        )
        verdict = ">=" if self.accepted else "<"
        return f"relevance {self.score:.2f} {verdict} {self.threshold:.2f}: {found}; {near}"

    def to_json(self) -> dict[str, Any]:
        return {"relevance": self.score, "nearest_curated": self.nearest, "similarity": self.similarity,
                "terms": self.terms, "reason": self.reason}  # fmt: skip


class RelevanceGate:
    """Scores titles and abstracts against one field's curated papers and data files."""

    def __init__(self, knowledge: kb_module.KnowledgeBase, index: SearchIndex, words: list[str], threshold: float):
        self.knowledge = knowledge
        self.index = index.curated_only()
        self.positions = {doc.arxiv_id: i for i, doc in enumerate(self.index.docs)}
        self.terms = field_terms(knowledge, words)
        self.threshold = threshold

    @classmethod
    def open(cls, settings: KnowledgeSettings, knowledge: kb_module.KnowledgeBase | None = None) -> RelevanceGate:
        knowledge = knowledge or kb_module.load(settings, strict=False)
        index = open_index(settings, knowledge)
        return cls(knowledge, index, kb_module.field_words(settings), settings.min_relevance)

    def nearest(self, text: str, exclude: str | None = None) -> tuple[str | None, float]:
        """The curated paper most like text (BM25), and the similarity part; exclude: leave that paper out."""
        tokens = list(dict.fromkeys(tokenize(text)))
        if not tokens or not self.index.docs:
            return None, 0.0
        scores = np.array(self.index.bm25_scores(tokens), dtype=float)
        if exclude in self.positions:
            scores[self.positions[exclude]] = -np.inf
        best = int(np.argmax(scores))
        if scores[best] <= 0:
            return None, 0.0
        return self.index.docs[best].arxiv_id, round(min(1.0, float(scores[best]) / len(tokens) / SIMILARITY_FULL), 4)

    def assess(self, title: str, abstract: str, exclude: str | None = None) -> Relevance:
        text = f"{title}\n{abstract}"
        terms = found_terms(self.terms, text, exclude)
        weight = sum(not t.topic for t in terms) + TOPICS_WEIGHT * any(t.topic for t in terms)
        term_part = min(1.0, weight / TERMS_FULL)
        nearest, similarity = self.nearest(text, exclude)
        score = round((term_part + similarity) / 2, 4)
        return Relevance(score, [t.label for t in terms], nearest, similarity, self.threshold)

    def check(self, paper: IncomingPaper) -> Relevance:
        return self.assess(paper.title, paper.source_abstract)


def calibration(gate: RelevanceGate, off_topic: list[tuple[str, str]]) -> dict[str, Any]:
    """How far apart the field and the rest are: each curated paper's title and English summary scored as if
    it were new (its own names, keywords and entry left out), against off-topic (title, abstract) pairs."""
    curated = [gate.assess(p.title, p.summary_en, exclude=pid).score for pid, p in gate.knowledge.papers.items()]
    outside = [gate.assess(title, abstract).score for title, abstract in off_topic]
    return {
        "curated": {"n": len(curated), "min": min(curated), "p5": float(np.percentile(curated, 5)),
                    "median": float(np.median(curated))},
        "off_topic": {"n": len(outside), "max": max(outside), "median": float(np.median(outside))},
        "margin": round(min(curated) - max(outside), 4),
        "threshold": gate.threshold,
        "curated_rejected": sum(s < gate.threshold for s in curated),
        "off_topic_accepted": sum(s >= gate.threshold for s in outside),
    }  # fmt: skip


def rejected_log(settings: KnowledgeSettings) -> Path:
    return kb_module.incoming_dir(settings) / "rejected.jsonl"


def log_rejected(settings: KnowledgeSettings, rejected: list[dict[str, Any]], query: str) -> Path:
    """Add this run's rejected papers to incoming/rejected.jsonl (one row per paper, the latest verdict), for a
    person to review; the file is rewritten whole and atomically, so a crash never leaves half a log."""
    path = rejected_log(settings)
    try:
        rows = read_jsonl(path) if path.exists() else []
    except ValueError as err:
        raise PlraError(f"{err}: fix or delete the rejected-papers log") from None
    today = datetime.date.today().isoformat()
    fresh = [{**row, "query": query, "rejected": today} for row in rejected]
    ids = {row["arxiv_id"] for row in fresh}
    rows = [row for row in rows if row.get("arxiv_id") not in ids] + fresh
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path
