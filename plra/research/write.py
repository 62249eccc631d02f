"""`plra write`: related-work drafts in which every sentence cites a knowledge-base paper, and paper outlines.

- related-work: the model drafts from the chosen papers' summaries; sentences without a valid citation are
  dropped, and when fewer than two survive the draft is built from the knowledge base itself (one sentence
  a paper, from its checked key findings, grouped by topic). Either way the draft passes the citation
  checker before it is rendered in a style (acl: \\citep, neurips: \\cite, plain: author-year Markdown)
  with a BibTeX file holding exactly the cited papers.
- outline: sections from `datasets/<field>/templates/outline.yaml`, each with what it should argue and the
  knowledge-base papers to cite there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer

from plra.assistant.answer import Assistant, build_messages, check_citations
from plra.errors import PlraError
from plra.io import write_text_atomic
from plra.knowledge.cite import AnyPaper, apa, bibtex, citation_keys, latex_escape, lookup, surname
from plra.knowledge.kb import KnowledgeBase
from plra.knowledge.validation import load_yaml_model
from plra.prompts import (
    RELATED_WORK_INSTRUCTIONS,
    RELATED_WORK_SENTENCE,
    RELATED_WORK_TITLE,
    RELATED_WORK_TOPIC_OPENING,
    check_lang,
)
from plra.types import OutlineTemplate, Paper, SearchHit

STYLES = ("acl", "neurips", "plain")
ID = r"\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7}"
MARKER = re.compile(rf"\[arXiv:\s*({ID})(?:v\d+)?\]")
MARKER_RUN = re.compile(rf"(?:\s*\[arXiv:\s*(?:{ID})(?:v\d+)?\])+")
SENTENCES = re.compile(r"(?<!\bal\.)(?<!e\.g\.)(?<!i\.e\.)(?<=[.!?])\s+(?=[A-Z0-9\"“])|(?<=[。！？])")
REPEATED_NAME = re.compile(r"(\b[\w\-]+(?: et al\.)?) \(\1, (\d{4})\)")
RESULT_CUE = re.compile(r"结果|表明|发现|显示|提升|优于|证明")

write_app = typer.Typer(help="Write with real citations: related-work drafts and paper outlines.",
                        no_args_is_help=True)  # fmt: skip


def topic_papers(assistant: Assistant, topic: str, ids: list[str] | None, k: int) -> list[AnyPaper]:
    """The papers to write about: those named, else the curated papers that match the topic best."""
    if ids:
        return lookup(assistant.knowledge, ids)
    topic = (topic or "").strip()
    if not topic:
        raise PlraError("give a topic, e.g. plra write related-work 'memory for personalized dialogue'")
    if not assistant.in_field(topic):
        raise PlraError(f"{topic!r} does not match the knowledge base's field: rephrase it, or name the papers "
                        f"with --papers ID,ID")  # fmt: skip
    hits = assistant.index.search(topic, k=3 * k)
    papers = [assistant.knowledge.papers[h.arxiv_id] for h in hits if h.arxiv_id in assistant.knowledge.papers][:k]
    if len(papers) < 2:
        raise PlraError(f"fewer than two curated papers match {topic!r}: name them with --papers ID,ID")
    return papers


def short_name(paper: AnyPaper) -> str:
    """How a sentence names the work: its short alias (LaMP), else its authors (Wang et al.)."""
    alias = next((a for a in getattr(paper, "aliases", []) if len(a) <= 24), None)
    return alias or short_author(paper, "and")


def finding(paper: AnyPaper, lang: str) -> str:
    """What the paper showed, as a clause (no final stop), from its checked entry."""
    if lang == "zh" and getattr(paper, "summary_zh", ""):
        sentences = [s for s in re.split(r"(?<=[。！？])", paper.summary_zh) if s.strip()]
        return next((s for s in sentences if RESULT_CUE.search(s)), sentences[0]).strip().rstrip("。")
    text = paper.key_findings[0] if isinstance(paper, Paper) else re.split(r"(?<=\.)\s", paper.source_abstract)[0]
    text = text.strip().rstrip(".")
    first = text.split()[0] if text.split() else ""
    keep_case = len(first) > 1 and (first.isupper() or any(c.isupper() for c in first[1:]))
    return text if keep_case else text[:1].lower() + text[1:]


def template_draft(papers: list[AnyPaper], knowledge: KnowledgeBase, lang: str) -> list[tuple[str, str]]:
    """(topic label, paragraph) per topic: an opening citing the group, then one cited sentence a paper."""
    groups: dict[str, list[AnyPaper]] = {}
    for paper in papers:
        groups.setdefault(paper.topics[0] if isinstance(paper, Paper) else "", []).append(paper)
    paragraphs = []
    stop = "。" if lang == "zh" else "."
    for topic, members in groups.items():
        label = knowledge.topic_label(topic, lang) or ("其他工作" if lang == "zh" else "Other work")
        cites = " ".join(f"[arXiv:{p.arxiv_id}]" for p in members)
        sentences = [RELATED_WORK_TOPIC_OPENING[lang].format(label=label).rstrip(stop) + f" {cites}{stop}"]
        for i, paper in enumerate(members):
            pattern = RELATED_WORK_SENTENCE[lang][i % len(RELATED_WORK_SENTENCE[lang])]
            who = short_name(paper)
            plural = who.endswith("et al.") or " and " in who
            sentences.append(pattern.format(who=who, cite=f"[arXiv:{paper.arxiv_id}]", what=finding(paper, lang),
                                            s="" if plural else "s") + stop)  # fmt: skip
        paragraphs.append((label, ("" if lang == "zh" else " ").join(sentences)))
    return paragraphs


def cited_sentences(text: str, knowledge: KnowledgeBase) -> tuple[str, int]:
    """Only the sentences that cite at least one knowledge-base paper; and how many were dropped."""
    kept, dropped = [], 0
    for sentence in (s.strip() for s in SENTENCES.split(text.strip())):
        if not sentence:
            continue
        if any(knowledge.get(m.group(1)) for m in MARKER.finditer(sentence)):
            kept.append(sentence)
        else:
            dropped += 1
    return " ".join(kept), dropped


def render(paragraphs: list[tuple[str, str]], papers: dict[str, AnyPaper], style: str, lang: str) -> str:
    keys = citation_keys(list(papers.values()))
    if style == "plain":

        def author_year(run: re.Match) -> str:
            ids = MARKER.findall(run.group())
            return " (" + "; ".join(f"{short_author(papers[i])}, {papers[i].year}" for i in ids) + ")"

        stop = "：" if lang == "zh" else "."
        body = "\n\n".join(f"**{label}{stop}** {MARKER_RUN.sub(author_year, text)}" for label, text in paragraphs)
        body = REPEATED_NAME.sub(r"\1 (\2)", body)  # "Wang et al. (Wang et al., 2023)" -> "Wang et al. (2023)"
        references = "\n".join(f"- {apa(p)}" for p in papers.values())
        refs_title = "参考文献" if lang == "zh" else "References"
        return f"## {RELATED_WORK_TITLE[lang]}\n\n{body}\n\n### {refs_title}\n\n{references}\n"
    command = "citep" if style == "acl" else "cite"

    def latex_cite(run: re.Match) -> str:
        return f" \\{command}{{{','.join(keys[i] for i in MARKER.findall(run.group()))}}}"

    body = "\n\n".join(
        f"\\paragraph{{{latex_escape(label)}.}} {MARKER_RUN.sub(latex_cite, latex_escape(text))}"
        for label, text in paragraphs
    )
    return f"\\section{{{RELATED_WORK_TITLE[lang]}}}\n\n{body}\n"


def short_author(paper: AnyPaper, conjunction: str = "&") -> str:
    names = [surname(a) for a in paper.authors]
    if len(names) == 2:
        return f"{names[0]} {conjunction} {names[1]}"
    return names[0] if len(names) == 1 else f"{names[0]} et al."


def related_work(assistant: Assistant, topic: str, ids: list[str] | None = None, style: str = "acl",
                 lang: str = "en", llm=None, k: int = 8) -> dict[str, Any]:  # fmt: skip
    """A related-work draft on topic: text in the style, the checked draft, the cited ids and their BibTeX."""
    if style not in STYLES:
        raise PlraError(f"--style {style!r} is not known: use one of {', '.join(STYLES)}")
    check_lang(lang)
    knowledge = assistant.knowledge
    papers = topic_papers(assistant, topic, ids, k)
    paragraphs, dropped, from_model, errors = [], 0, False, []
    if llm is not None:
        hits = [SearchHit(arxiv_id=p.arxiv_id, title=p.title, year=p.year, score=0.0, snippet="") for p in papers]
        raw = llm.chat(build_messages(topic or "", hits, knowledge, lang, RELATED_WORK_INSTRUCTIONS[lang]))
        _, _, errors = check_citations(raw, knowledge, {})
        rejected = {e["cited"] for e in errors}  # then a sentence whose only citation was rejected is dropped too
        raw = MARKER.sub(lambda m: "" if m.group(1) in rejected else m.group(), raw)
        text, dropped = cited_sentences(raw, knowledge)
        if len(SENTENCES.split(text)) >= 2:
            paragraphs, from_model = [(topic or RELATED_WORK_TITLE[lang], text)], True
    if not paragraphs:
        paragraphs = template_draft(papers, knowledge, lang)
    _, citations, _ = check_citations("\n\n".join(text for _, text in paragraphs), knowledge, {})
    cited = {c.arxiv_id: knowledge.get(c.arxiv_id) for c in citations}
    return {
        "topic": topic,
        "style": style,
        "lang": lang,
        "text": render(paragraphs, cited, style, lang),
        "draft": "\n\n".join(text for _, text in paragraphs),
        "cited": list(cited),
        "bibtex": bibtex(list(cited.values())),
        "from_model": from_model,
        "dropped_sentences": dropped,
        "citation_errors": errors,
    }


def outline(assistant: Assistant, topic: str, lang: str = "en") -> dict[str, Any]:
    """The outline template filled in for topic: per section, what to argue and which papers to cite."""
    topic = (topic or "").strip()
    if not topic:
        raise PlraError("give a topic, e.g. plra write outline 'personalized reward models'")
    path = assistant.settings.field_dir / "templates" / "outline.yaml"
    template = load_yaml_model(path, OutlineTemplate)
    sections, cited = [], {}
    for section in template.sections:
        query = section.query.replace("{topic}", topic)
        hits: list[SearchHit] = []
        if section.k:
            for wanted in section.topics or [None]:
                hits += assistant.index.search(query, k=section.k, topic=wanted)
        papers = []
        for hit in sorted(hits, key=lambda h: -h.score):
            paper = assistant.knowledge.papers.get(hit.arxiv_id)
            if paper and paper not in papers and len(papers) < section.k:
                papers.append(paper)
        cited |= {p.arxiv_id: p for p in papers}
        sections.append({
            "id": section.id,
            "title": section.title_zh if lang == "zh" else section.title_en,
            "argue": (section.argue_zh if lang == "zh" else section.argue_en).replace("{topic}", topic),
            "papers": [{"arxiv_id": p.arxiv_id, "title": p.title, "year": p.year} for p in papers],
        })  # fmt: skip
    return {"topic": topic, "lang": lang, "template": str(path), "sections": sections,
            "cited": list(cited), "bibtex": bibtex(list(cited.values()))}  # fmt: skip


def outline_markdown(result: dict[str, Any]) -> str:
    cite_label = "引用" if result["lang"] == "zh" else "Cite"
    lines = [f"# {'论文大纲' if result['lang'] == 'zh' else 'Outline'}: {result['topic']}"]
    for number, section in enumerate(result["sections"], 1):
        lines += ["", f"## {number}. {section['title']}", section["argue"]]
        if section["papers"]:
            lines += [f"{cite_label}:"] + [f"- {p['title']} ({p['year']}) [arXiv:{p['arxiv_id']}]"
                                           for p in section["papers"]]  # fmt: skip
    return "\n".join(lines) + "\n"


def _write_out(out: Path | None, name: str, text: str, bib: str) -> None:
    if out is None:
        return
    write_text_atomic(out / name, text)
    write_text_atomic(out / "references.bib", bib)
    typer.echo(f"wrote {out / name} and {out / 'references.bib'}", err=True)


@write_app.command("related-work")
def related_work_command(
    topic: str = typer.Argument(None, help="what the section is about (English or Chinese)"),
    papers: str = typer.Option(None, "--papers", help="comma-separated arXiv ids to write about (default: search)"),
    style: str = typer.Option("acl", "--style", help="acl (\\citep), neurips (\\cite) or plain (Markdown)"),
    lang: str = typer.Option("en", "--lang", help="en or zh"),
    k: int = typer.Option(8, "--k", "-k", help="papers to draw on when searching"),
    no_llm: bool = typer.Option(False, "--no-llm", help="build the draft from the knowledge base, no model"),
    endpoint: str = typer.Option(None, "--endpoint", help="OpenAI-compatible URL (default as for `plra ask`)"),
    out: Path = typer.Option(None, "--out", "-o", help="folder for related-work.tex|md and references.bib"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object: text, draft, cited, bibtex, ..."),
) -> None:
    """Draft a related-work section where every sentence cites a knowledge-base paper, with its BibTeX."""
    from plra.assistant.answer import model_for

    ids = [i for i in (papers or "").split(",") if i.strip()]
    result = related_work(Assistant(), topic or "", ids, style, lang, None if no_llm else model_for(endpoint), k)
    _write_out(out, f"related-work.{'md' if style == 'plain' else 'tex'}", result["text"], result["bibtex"])
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(result["text"])
    if style != "plain" and out is None:
        typer.echo(result["bibtex"])
    if result["dropped_sentences"]:
        typer.echo(f"(dropped {result['dropped_sentences']} sentence(s) without a valid citation)", err=True)


@write_app.command("outline")
def outline_command(
    topic: str = typer.Argument(..., help="the paper's topic"),
    lang: str = typer.Option("en", "--lang", help="en or zh"),
    out: Path = typer.Option(None, "--out", "-o", help="folder for outline.md and references.bib"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """A paper outline from the field's template: what each section argues and which papers it cites."""
    check_lang(lang)
    result = outline(Assistant(), topic, lang)
    text = outline_markdown(result)
    _write_out(out, "outline.md", text, result["bibtex"])
    typer.echo(json.dumps(result, ensure_ascii=False) if as_json else text)
