"""What the knowledge base added since a date, grouped by topic, one cited line a paper (`plra kb digest`, the
app's What's new panel)."""

from __future__ import annotations

import datetime

from plra.knowledge.kb import KnowledgeBase
from plra.knowledge.names import display_name
from plra.knowledge.synthesis import sentences
from plra.types import Paper

HEADINGS = {
    "en": "Added to the knowledge base since {since} (reviewed through {through}): {n} papers",
    "zh": "自 {since} 以来新增 {n} 篇论文（知识库审阅截至 {through}）",
}
NONE_ADDED = {"en": "Nothing was added since {since} (reviewed through {through}).",
              "zh": "自 {since} 以来没有新增论文（知识库审阅截至 {through}）。"}  # fmt: skip


def digest(kb: KnowledgeBase, since: datetime.date) -> dict[str, list[Paper]]:
    """Papers added on or after since, under their first topic, topics in taxonomy order, newest papers first."""
    groups: dict[str, list[Paper]] = {topic: [] for topic in kb.topics}
    for paper in kb.added_since(since):
        groups.setdefault(paper.topics[0], []).append(paper)
    return {topic: papers for topic, papers in groups.items() if papers}


def digest_line(paper: Paper, lang: str) -> str:
    summary = paper.summary_zh if lang == "zh" else paper.summary_en
    return f"{display_name(paper)} ({paper.year}): {sentences(summary)[0]} [arXiv:{paper.arxiv_id}]"


def digest_markdown(kb: KnowledgeBase, since: datetime.date, lang: str = "en") -> str:
    groups = digest(kb, since)
    n = sum(len(papers) for papers in groups.values())
    slots = {"since": since.isoformat(), "through": kb.reviewed_through, "n": n}
    if not n:
        return NONE_ADDED[lang].format(**slots)
    parts = [f"**{HEADINGS[lang].format(**slots)}**"]
    for topic, papers in groups.items():
        name = kb.topics[topic].zh if lang == "zh" else kb.topics[topic].en
        parts.append(f"\n### {name} ({len(papers)})")
        parts += [f"- {digest_line(p, lang)}" for p in papers]
    return "\n".join(parts)
