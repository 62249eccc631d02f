"""Small text helpers shared by the builders: sentence splitting and the names a paper goes by."""

from __future__ import annotations

import re

from plra.types import Paper

SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def lead(text: str, n: int = 2) -> str:
    """The first n sentences of a summary."""
    parts = sentences(text)[:n]
    joiner = "" if parts and re.search(r"[\u4e00-\u9fff]", parts[0]) else " "
    return joiner.join(parts)


def alias(paper: Paper) -> str:
    """The short name people use for a paper (LaMP), else its title before a colon."""
    if paper.aliases:
        return paper.aliases[0]
    return paper.title.split(":")[0].strip() if ":" in paper.title else paper.title


def cite(paper: Paper) -> str:
    return f"[arXiv:{paper.arxiv_id}]"


def author_line(paper: Paper) -> str:
    first = paper.authors[0]
    return first if len(paper.authors) == 1 else f"{first} et al."
