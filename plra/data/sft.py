"""SFT conversations: templated from the knowledge base (seeded, deterministic) plus the hand-written ones.

Every conversation is {"id", "lang", "task", "sources", "messages"}; `messages` is the OpenAI format that
XTuner's `openai_map_fn` reads, with PLRA's system prompt first.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

from plra.data.text import alias, cite, lead
from plra.errors import PlraError
from plra.io import read_jsonl_numbered
from plra.knowledge.kb import KnowledgeBase
from plra.prompts import OUT_OF_FIELD, QUESTIONS, REDIRECT, REDIRECT_ANGLES, SCOPE, SYSTEM
from plra.types import ARXIV_ID, Paper

LANGS = ("en", "zh")
TASKS = ("summary", "findings", "metadata", "concept", "compare", "which_papers", "reading_path", "related_work",
         "overview", "claim", "ideas", "redirect")  # fmt: skip
CITATION = r"\[arXiv:([^\]]+)\]"


def conversation(cid: str, lang: str, task: str, turns: list[tuple[str, str]], sources: list[str]) -> dict[str, Any]:
    messages = [{"role": "system", "content": SYSTEM[lang]}]
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"id": cid, "lang": lang, "task": task, "sources": sorted(set(sources)), "messages": messages}


def _ask(rng: random.Random, task: str, lang: str, **slots: str) -> str:
    return rng.choice(QUESTIONS[task][lang]).format(**slots)


def summary_answer(paper: Paper, lang: str) -> str:
    if lang == "zh":
        return f"《{paper.title}》（{paper.year}）{cite(paper)}：{paper.summary_zh}"
    return f'"{paper.title}" ({paper.year}) {cite(paper)}: {paper.summary_en}'


def findings_answer(paper: Paper, lang: str) -> str:
    bullets = "\n".join(f"- {finding}" for finding in paper.key_findings)
    head = (
        f"{alias(paper)} {cite(paper)} 的主要发现："
        if lang == "zh"
        else f"Key findings of {alias(paper)} {cite(paper)}:"
    )
    tail = f"\n\n一句话概括：{lead(paper.summary_zh, 1)}" if lang == "zh" else ""
    return f"{head}\n{bullets}{tail}"


def metadata_answer(paper: Paper, lang: str) -> str:
    authors = ", ".join(paper.authors[:6]) + (" et al." if len(paper.authors) > 6 else "")
    if lang == "zh":
        venue = f"，发表于 {paper.venue}" if paper.venue else "，以 arXiv 预印本形式发布"
        return f"《{paper.title}》{cite(paper)} 的作者是 {authors}，{paper.year} 年{venue}。"
    venue = f" and appeared at {paper.venue}" if paper.venue else " as an arXiv preprint"
    return f'"{paper.title}" {cite(paper)} is by {authors}; it came out in {paper.year}{venue}.'


def compare_answer(a: Paper, b: Paper, kb: KnowledgeBase, lang: str) -> str:
    shared = [t for t in a.topics if t in b.topics]
    if lang == "zh":
        common = "、".join(kb.topics[t].zh for t in shared) or "个性化大模型"
        return (
            f"两者都与{common}相关，但切入点不同。\n\n"
            f"- **{alias(a)}**（{a.year}）{cite(a)}：{lead(a.summary_zh, 2)}\n"
            f"- **{alias(b)}**（{b.year}）{cite(b)}：{lead(b.summary_zh, 2)}\n\n"
            f"方法上，{alias(a)} 采用 {', '.join(a.methods[:3]) or '见原文'}，"
            f"{alias(b)} 采用 {', '.join(b.methods[:3]) or '见原文'}。"
        )
    common = ", ".join(kb.topics[t].en.split(" (")[0].lower() for t in shared) or "personalized LLMs"
    return (
        f"Both concern {common}, but they approach it differently.\n\n"
        f"- **{alias(a)}** ({a.year}) {cite(a)}: {lead(a.summary_en, 2)}\n"
        f"- **{alias(b)}** ({b.year}) {cite(b)}: {lead(b.summary_en, 2)}\n\n"
        f"Methods: {', '.join(a.methods[:3]) or 'see the paper'} in {alias(a)}, versus "
        f"{', '.join(b.methods[:3]) or 'see the paper'} in {alias(b)}."
    )


def topic_papers(kb: KnowledgeBase, topic: str, rng: random.Random, n: int) -> list[Paper]:
    papers = sorted((p for p in kb.papers.values() if topic in p.topics), key=lambda p: p.arxiv_id)
    return sorted(rng.sample(papers, min(n, len(papers))), key=lambda p: (p.year, p.arxiv_id))


def which_papers_answer(papers: list[Paper], topic_name: str, lang: str) -> str:
    if lang == "zh":
        lines = [f"- {alias(p)}（{p.year}）{cite(p)}：{lead(p.summary_zh, 1)}" for p in papers]
        return f"关于{topic_name}，可以从这些论文入手：\n" + "\n".join(lines)
    lines = [f"- {alias(p)} ({p.year}) {cite(p)}: {lead(p.summary_en, 1)}" for p in papers]
    return f"Papers that address {topic_name}:\n" + "\n".join(lines)


def related_work_answer(papers: list[Paper], topic_name: str, lang: str) -> str:
    if lang == "zh":
        parts = [f"{alias(p)} {cite(p)} {lead(p.summary_zh, 1)}" for p in papers]
        return f"{topic_name}方面已有多条研究路线。" + "".join(parts)
    parts = [f"In {alias(p)} {cite(p)}, {p.key_findings[0][0].lower()}{p.key_findings[0][1:]}" for p in papers]
    joined = " ".join(part if part.endswith(".") else part + "." for part in parts)
    return f"Work on {topic_name} has taken several routes. {joined}"


def ideas_answer(paper: Paper, partner: Paper, bench: Paper | None, lang: str) -> str:
    metric = ", ".join((bench or paper).metrics[:2]) or ("原文的指标" if lang == "zh" else "the metrics it reports")
    bench_part = (
        f"{alias(bench)} {cite(bench)}"
        if bench
        else (f"{alias(paper)} 使用的数据" if lang == "zh" else f"the data {alias(paper)} uses")
    )
    if lang == "zh":
        return (
            f"起点：{alias(paper)} {cite(paper)} 的结论是——{paper.key_findings[0]}\n"
            f"可以尝试把它与 {alias(partner)} {cite(partner)} 的思路结合：{lead(partner.summary_zh, 1)}\n"
            f"第一个实验：在 {bench_part} 上比较两者单独使用与结合使用的效果，指标用 {metric}。\n"
            f"风险：两种方法的假设可能不兼容，提升也可能只出现在部分用户上，需要按用户分组报告结果。"
        )
    return (
        f"Starting point: {alias(paper)} {cite(paper)} found that {paper.key_findings[0][0].lower()}"
        f"{paper.key_findings[0][1:]}\n"
        f"Direction: combine it with the approach of {alias(partner)} {cite(partner)}, which "
        f"{lead(partner.summary_en, 1)[0].lower()}{lead(partner.summary_en, 1)[1:]}\n"
        f"First experiment: compare each alone and the combination on {bench_part}, reporting {metric}.\n"
        f"Risk: the two methods may rest on incompatible assumptions, and gains may hold only for some users, "
        f"so report results per user group."
    )


def reading_path_answer(kb: KnowledgeBase, path_index: int, lang: str) -> tuple[str, list[str]]:
    path = kb.paths[path_index]
    lines = []
    for number, step in enumerate(path.steps, start=1):
        paper = kb.papers[step.arxiv_id]
        why = step.why_zh if lang == "zh" else step.why_en
        lines.append(f"{number}. {alias(paper)} ({paper.year}) {cite(paper)}: {why}")
    head = "建议按这个顺序读：" if lang == "zh" else "Read them in this order:"
    return head + "\n" + "\n".join(lines), [s.arxiv_id for s in path.steps]


def templated(kb: KnowledgeBase, seed: int = 0) -> list[dict[str, Any]]:
    """All templated conversations, deterministic for a given knowledge base and seed."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    papers = [kb.papers[k] for k in sorted(kb.papers)]
    by_id = kb.papers

    def add(lang: str, task: str, question: str, answer: str, sources: list[str]) -> None:
        out.append(conversation(f"tpl-{task}-{lang}-{len(out):05d}", lang, task, [(question, answer)], sources))

    for paper in papers:
        slots = {"title": paper.title, "alias": alias(paper)}
        for lang in LANGS:
            add(lang, "summary", _ask(rng, "summary", lang, **slots), summary_answer(paper, lang), [paper.arxiv_id])
            add(lang, "findings", _ask(rng, "findings", lang, **slots), findings_answer(paper, lang), [paper.arxiv_id])
            add(lang, "metadata", _ask(rng, "metadata", lang, **slots), metadata_answer(paper, lang), [paper.arxiv_id])
        for other_id in paper.related:
            if other_id in by_id and paper.arxiv_id < other_id:  # each related pair once
                other = by_id[other_id]
                lang = rng.choice(LANGS)
                question = _ask(rng, "compare", lang, alias=alias(paper), other=alias(other))
                add(lang, "compare", question, compare_answer(paper, other, kb, lang), [paper.arxiv_id, other_id])
        partner_id = rng.choice(paper.related) if paper.related else None
        if partner_id in by_id:
            shared_bench = [p for p in papers if "benchmark" in p.topics and p.arxiv_id not in (paper.arxiv_id,
                            partner_id) and set(p.topics) & set(paper.topics)]  # fmt: skip
            bench = rng.choice(shared_bench) if shared_bench else None
            lang = rng.choice(LANGS)
            sources = [paper.arxiv_id, partner_id] + ([bench.arxiv_id] if bench else [])
            add(lang, "ideas", _ask(rng, "ideas", lang, alias=alias(paper)),
                ideas_answer(paper, by_id[partner_id], bench, lang), sources)  # fmt: skip
    for term in kb.glossary:
        refs = [by_id[p] for p in term.papers if p in by_id]
        for lang in LANGS:
            name = term.term + (f" ({term.aliases[0]})" if term.aliases else "")
            body = term.zh if lang == "zh" else term.en
            if refs:
                intro = "可以参考：" if lang == "zh" else "Papers that explain or use it: "
                body += "\n\n" + intro + "; ".join(f"{alias(p)} {cite(p)}" for p in refs)
            add(lang, "concept", _ask(rng, "concept", lang, term=name), body, [p.arxiv_id for p in refs])
    for topic_id, topic in kb.topics.items():
        for lang in LANGS:
            name = topic.zh if lang == "zh" else topic.en.split(" (")[0].lower()
            for _ in range(2):
                chosen = topic_papers(kb, topic_id, rng, 5)
                add(lang, "which_papers", _ask(rng, "which_papers", lang, topic=name),
                    which_papers_answer(chosen, name, lang), [p.arxiv_id for p in chosen])  # fmt: skip
            chosen = topic_papers(kb, topic_id, rng, 4)
            add(lang, "related_work", _ask(rng, "related_work", lang, topic=name),
                related_work_answer(chosen, name, lang), [p.arxiv_id for p in chosen])  # fmt: skip
    for index, path in enumerate(kb.paths):
        for lang in LANGS:
            answer, sources = reading_path_answer(kb, index, lang)
            title = path.title_zh if lang == "zh" else path.title_en
            add(lang, "reading_path", _ask(rng, "reading_path", lang, path=title), answer, sources)
    for lang in LANGS:
        for question in OUT_OF_FIELD[lang]:
            answer = REDIRECT[lang].format(scope=SCOPE[lang], angle=rng.choice(REDIRECT_ANGLES[lang]))
            add(lang, "redirect", question, answer, [])
    return out


def load_handwritten(folder: Path, kb: KnowledgeBase) -> list[dict[str, Any]]:
    """Hand-written conversations from datasets/<field>/qa/*.jsonl; a bad row names file, line and field."""
    import re

    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.jsonl")):
        try:
            numbered = read_jsonl_numbered(path)
        except ValueError as err:
            raise PlraError(str(err)) from None
        for line, row in numbered:
            where = f"{path}:{line}"
            for field in ("id", "lang", "task", "messages"):
                if field not in row:
                    raise PlraError(f"{where}: field '{field}' is missing")
            if row["lang"] not in LANGS:
                raise PlraError(f"{where}: field 'lang' must be en or zh, not {row['lang']!r}")
            if row["task"] not in TASKS:
                raise PlraError(f"{where}: field 'task' must be one of {', '.join(TASKS)}, not {row['task']!r}")
            messages = row["messages"]
            roles = [m.get("role") for m in messages] if isinstance(messages, list) else []
            if (
                not roles
                or roles[0] != "user"
                or roles[-1] != "assistant"
                or any(a == b for a, b in itertools.pairwise(roles))
            ):
                raise PlraError(f"{where}: field 'messages' must alternate user and assistant, starting with user")
            if any(not str(m.get("content", "")).strip() for m in messages):
                raise PlraError(f"{where}: field 'messages' has an empty content")
            cited = {c for m in messages if m["role"] == "assistant" for c in re.findall(CITATION, m["content"])}
            unknown = sorted(c for c in cited if not ARXIV_ID.match(c) or c not in kb.papers)
            if unknown:
                raise PlraError(f"{where}: field 'messages' cites {', '.join(unknown)}, not in the knowledge base")
            turns = [(messages[i]["content"], messages[i + 1]["content"]) for i in range(0, len(messages), 2)]
            rows.append(conversation(row["id"], row["lang"], row["task"], turns, sorted(cited)))
    return rows
