"""Pretraining text: one document per paper, one overview per topic, one entry per glossary term."""

from __future__ import annotations

from plra.data.text import cite, lead
from plra.knowledge.kb import KnowledgeBase


def paper_document(kb: KnowledgeBase, arxiv_id: str) -> str:
    paper = kb.papers[arxiv_id]
    venue = f" {paper.venue}." if paper.venue else ""
    lines = [
        f"{paper.title} ({paper.year}). {', '.join(paper.authors)}.{venue} {cite(paper)}",
        f"Topics: {', '.join(kb.topics[t].en for t in paper.topics)}.",
        "",
        paper.summary_en,
        "",
        "Key findings:",
        *[f"- {finding}" for finding in paper.key_findings],
    ]
    for label, values in (("Methods", paper.methods), ("Datasets", paper.datasets), ("Metrics", paper.metrics)):
        if values:
            lines.append(f"{label}: {', '.join(values)}.")
    lines += ["", f"中文摘要：{paper.summary_zh}"]
    return "\n".join(lines)


def topic_overview(kb: KnowledgeBase, topic_id: str, exclude: frozenset[str] = frozenset()) -> str:
    topic = kb.topics[topic_id]
    papers = sorted((p for p in kb.papers.values() if topic_id in p.topics and p.arxiv_id not in exclude),
                    key=lambda p: (p.year, p.arxiv_id))  # fmt: skip
    lines = [f"{topic.en} ({topic.zh})", ""]
    lines += [f"- {p.title} ({p.year}) {cite(p)}: {lead(p.summary_en, 1)}" for p in papers]
    return "\n".join(lines)


def glossary_entry(kb: KnowledgeBase, index: int) -> str:
    term = kb.glossary[index]
    names = term.term + (f" ({', '.join(term.aliases)})" if term.aliases else "")
    refs = " ".join(cite(kb.papers[p]) for p in term.papers if p in kb.papers)
    return f"{names}\n{term.en}\n{term.zh}" + (f"\nSee {refs}." if refs else "")


def build(kb: KnowledgeBase, exclude: frozenset[str] = frozenset()) -> list[dict[str, str]]:
    """The documents of every paper but the held-out ones (`exclude`), the topics and the glossary."""
    docs = [{"text": paper_document(kb, pid)} for pid in sorted(kb.papers) if pid not in exclude]
    docs += [{"text": topic_overview(kb, tid, exclude)} for tid in kb.topics]
    docs += [{"text": glossary_entry(kb, i)} for i in range(len(kb.glossary))]
    return docs
