"""Names in a question, resolved before any ranking: papers by their short names, aliases and arXiv ids,
glossary terms by their English and Chinese names. A question that names a paper must cite that paper,
whatever BM25 thinks of it ("How do LaMP and LongLaMP differ?" needs both, though LongLaMP's text
mentions LaMP more than LaMP's own)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from plra.knowledge.kb import KnowledgeBase
from plra.types import GlossaryTerm, IncomingPaper, Paper

ARXIV_REF = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(?:v\d+)?(?![\d])")
# Short names this short are too often ordinary words ("MAP", "PAL"): they count only as written.
CASE_SENSITIVE_BELOW = 6
CJK = r"[\u4e00-\u9fff]"


def short_title(title: str) -> str | None:
    """The name before a colon, as in "LaMP: When Large Language Models Meet Personalization"."""
    head, sep, _ = title.partition(":")
    return head.strip() if sep and 1 <= len(head.split()) <= 3 and len(head.strip()) >= 3 else None


def display_name(paper: Paper | IncomingPaper) -> str:
    """How a sentence names a paper: its first alias (LaMP), else the name before a colon, else the title."""
    return next(iter(getattr(paper, "aliases", [])), None) or short_title(paper.title) or paper.title


def name_pattern(name: str) -> re.Pattern:
    """Where a name occurs in a text, as a whole name (also what plra.knowledge.relevance finds field keywords with)."""
    # Latin names end at a letter/digit boundary; "LaMP" must not match inside "LongLaMP".
    flags = 0 if len(name) < CASE_SENSITIVE_BELOW or re.search(r"[A-Z].*[A-Z]", name) else re.IGNORECASE
    if re.search(CJK, name):
        # Chinese writes "KV 缓存" and "KV缓存" alike: a space between scripts is optional either way.
        parts = re.split(rf"\s+|(?<={CJK})(?=[A-Za-z0-9])|(?<=[A-Za-z0-9])(?={CJK})", name)
        # No word boundaries in Chinese: "人设" must not match inside "个人设备" (a personal device).
        not_after = "(?<!个)" if name.startswith("人") else ""
        return re.compile(not_after + r"\s*".join(re.escape(p) for p in parts if p), flags)
    return re.compile(rf"(?<![A-Za-z0-9-]){re.escape(name)}(?![A-Za-z0-9]|-[A-Za-z])", flags)


@dataclass
class Mention:
    kind: str  # "paper" or "term"
    key: str  # an arXiv id, or a glossary term
    name: str  # as it appears in the text
    start: int


class NameIndex:
    """Every name of every curated paper and glossary term, longest first (so "LongLaMP" wins over "LaMP")."""

    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.knowledge = knowledge
        names: list[tuple[str, str, str]] = []
        for pid, paper in knowledge.papers.items():
            for name in {*paper.aliases, short_title(paper.title) or ""} - {""}:
                names.append(("paper", pid, name))
        self.terms: dict[str, GlossaryTerm] = {t.term: t for t in knowledge.glossary}
        for term in knowledge.glossary:
            for name in {term.term, *term.aliases, *term.names_zh}:
                if len(name) >= 2:
                    names.append(("term", term.term, name))
        names.sort(key=lambda n: len(n[2]), reverse=True)
        self.patterns = [(kind, key, name, name_pattern(name)) for kind, key, name in names]
        # A short name belongs to the paper that has it first ("PersonaGym" is the 2024 benchmark); a later paper
        # listing it among its aliases is shown by another of its names, or readers would take it for that one.
        self.owner: dict[str, str] = {}
        for pid in sorted(knowledge.papers):
            first = next(iter(knowledge.papers[pid].aliases), None)
            if first:
                self.owner.setdefault(first, pid)

    def mentions(self, text: str) -> list[Mention]:
        """Papers and terms named in the text, in the order they appear; overlapping names: the longest."""
        taken = bytearray(len(text) + 1)  # 1 where a name was already found: overlap checks cost the span only
        found: list[Mention] = []
        for match in ARXIV_REF.finditer(text):
            if match.group(1) in self.knowledge.papers:
                taken[match.start() : match.end()] = b"\x01" * (match.end() - match.start())
                found.append(Mention("paper", match.group(1), match.group(0), match.start()))
        for kind, key, _name, pattern in self.patterns:
            for match in pattern.finditer(text):
                start, end = match.span()
                if any(taken[start:end]):
                    continue
                taken[start:end] = b"\x01" * (end - start)
                found.append(Mention(kind, key, match.group(0), start))
        found.sort(key=lambda m: m.start)
        return found

    def papers(self, text: str) -> list[str]:
        """The arXiv ids of the papers the text names, first mention first, each once."""
        return list(dict.fromkeys(m.key for m in self.mentions(text) if m.kind == "paper"))

    def terms_in(self, text: str) -> list[GlossaryTerm]:
        return [self.terms[key] for key in dict.fromkeys(m.key for m in self.mentions(text) if m.kind == "term")]

    def display_name(self, arxiv_id: str) -> str:
        paper = self.knowledge.papers[arxiv_id]
        own = [a for a in paper.aliases if self.owner.get(a, arxiv_id) == arxiv_id]
        if paper.aliases and own and own[0] != paper.aliases[0]:
            return own[0]
        return display_name(paper)
