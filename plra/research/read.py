"""`plra read`: one paper (a PDF or an arXiv id) as a reading card, or answers cited by page.

- Text comes from pypdf (BSD licence, pure Python), page by page. Passages never cross a page, so every
  passage, card line and answer keeps the page it came from; the references section is left out.
- An arXiv id is downloaded from the arXiv API's host and cached with its extracted text beside the
  knowledge base (`datasets/<field>/.reading/<key>/`); a local PDF's text is cached under its hash.
- Text in a paper is data. Sentences that read like instructions to an assistant are set aside and
  reported; the rest reaches the model only inside <paper> tags that the system prompt declares data.
- Page citations in a model's answer are checked like paper citations: a page that was not among the
  passages shown to the model is removed and reported.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import typer

from plra.assistant.answer import LOCAL_OPTION, Assistant, Citation, check_citations, tidy_spacing, with_sources
from plra.errors import PlraError
from plra.io import write_json_atomic
from plra.knowledge.arxiv_client import MAX_PDF_BYTES, download_pdf
from plra.knowledge.retrieval import is_chinese, tokenize
from plra.prompts import (
    CARD_LABELS,
    CONTEXT_HEADER,
    PAPER_EXCERPTS,
    PASSAGES_READ,
    READ_ANSWER_INSTRUCTIONS,
    READ_EXTRACTIVE_HEADER,
    READ_SUMMARY_INSTRUCTIONS,
    READ_SYSTEM,
    check_lang,
)
from plra.settings import KnowledgeSettings
from plra.types import PaperText, Passage, bare_arxiv_id

PASSAGE_WORDS = 120
SENTENCE = re.compile(r"(?<=[.!?。！？])\s+")
HEADING = re.compile(
    r"^(?:\d+(?:\.\d+)*\.?\s+)?(abstract|introduction|background|related work|preliminaries|method|methods|methodology|"
    r"approach|our approach|model|experiments?|experimental setup|setup|results|evaluation|analysis|discussion|"
    r"limitations?|conclusions?|ethics statement|broader impact|references|bibliography|appendix)\s*:?$",
    re.I,
)
# Phrases that address an assistant rather than a reader; a paper has no reason to contain them.
INJECTION = re.compile(
    r"ignore\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier|preceding|your)\s+"
    r"(?:instructions?|prompts?|directions|rules)|disregard\s+(?:all\s+|any\s+)?(?:the\s+)?"
    r"(?:previous|prior|above|system)|you\s+are\s+now\b|new\s+instructions?\s*:|(?:reveal|print|repeat)\s+"
    r"(?:your|the)\s+(?:system\s+)?(?:prompt|instructions)|as\s+an\s+ai\s+(?:assistant|language\s+model)\s*,?\s*"
    r"(?:you\s+)?must|忽略(?:之前|以上|前面|先前)的?(?:所有)?(?:指令|指示|提示)",
    re.I,
)
PAGE_CITE = re.compile(r"\(\s*(?:p|pp|page)\.?\s*(\d{1,4})\s*\)|(?<![A-Za-z])p\.\s?(\d{1,4})\b", re.I)
CUES = {
    "problem": r"\b(problem|challeng\w*|however|lack\w*|remains?|difficult|limited|struggle\w*|gap|we (study|address|"
    r"investigate|ask))\b",
    "method": r"\b(we (propose|introduce|present|design|develop|train|build)|our (method|approach|framework|model))\b",
    "data": r"\b(datasets?|benchmarks?|corpus|corpora|collect\w*|annotat\w*|participants|examples|samples)\b",
    "results": r"\b(improv\w*|outperform\w*|achiev\w*|accuracy|gains?|increas\w*|reduc\w*|scores?|better|higher|"
    r"lower)\b",
    "limitations": r"\b(limitations?|future work|does not|do not|cannot|fails?|only|restricted)\b",
}
PREFERRED_SECTIONS = {
    "problem": ("abstract", "introduction"),
    "method": ("abstract", "method", "methods", "methodology", "approach", "our approach", "model"),
    "data": ("experimental setup", "setup", "experiments", "experiment", "evaluation", "abstract"),
    "results": ("results", "experiments", "experiment", "evaluation", "analysis", "abstract", "conclusion"),
    "limitations": ("limitations", "limitation", "conclusion", "conclusions", "discussion"),
}
CARD_SIZES = {"problem": 2, "method": 2, "data": 2, "results": 3, "limitations": 2}


# ------------------------------------------------------------------------------------------ source and text


def cache_dir(settings: KnowledgeSettings) -> Path:
    return settings.field_dir / ".reading"


def _clean(text: str) -> str:
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text.replace("\r", ""))  # words hyphenated across lines
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def extract(pdf: Path, digest: str, arxiv_id: str | None, title: str | None) -> PaperText:
    """The text of every page; a one-line error for a file pypdf cannot read or that holds no text."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(pdf)
        if reader.is_encrypted and not reader.decrypt(""):
            raise PlraError(f"{pdf}: the PDF is password-protected; save an unlocked copy and read that")
        pages = [_clean(page.extract_text() or "") for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as err:
        raise PlraError(f"{pdf}: not a readable PDF ({str(err)[:120]})") from None
    if not any(p.strip() for p in pages):
        raise PlraError(f"{pdf}: no text could be extracted (a scanned PDF? run OCR on it first, e.g. ocrmypdf)")
    first_line = next((line for line in pages[0].splitlines() if len(line) > 8), "") if pages else ""
    return PaperText(key=arxiv_id or digest[:16], sha256=digest, title=title or meta_title.strip() or first_line,
                     arxiv_id=arxiv_id, pages=pages)  # fmt: skip


def load_paper(source: str, settings: KnowledgeSettings, title_for: dict[str, str] | None = None) -> PaperText:
    """source: a PDF path or an arXiv id (downloaded once, then read from the cache)."""
    path = Path(source).expanduser()
    arxiv_id = bare_arxiv_id(source)
    if path.is_file():
        data = path.read_bytes()
        if not data.startswith(b"%PDF"):
            raise PlraError(f"{path} is not a PDF (it does not start with %PDF)")
        if len(data) > MAX_PDF_BYTES:
            raise PlraError(f"{path} is larger than {MAX_PDF_BYTES >> 20} MB")
        arxiv_id = None
    elif arxiv_id:
        pdf = cache_dir(settings) / arxiv_id.replace("/", "_") / "paper.pdf"
        if not pdf.exists():
            download_pdf(settings, arxiv_id, pdf)
        path, data = pdf, pdf.read_bytes()
    else:
        raise PlraError(f"{source!r} is neither a PDF file nor an arXiv id (e.g. 2304.11406)")
    digest = hashlib.sha256(data).hexdigest()
    cached = cache_dir(settings) / (arxiv_id or digest[:16]).replace("/", "_") / "text.json"
    if cached.exists():
        try:
            text = PaperText.model_validate_json(cached.read_text())
            if text.sha256 == digest:
                return text
        except ValueError:
            pass  # an older or damaged cache entry: extract again
    text = extract(path, digest, arxiv_id, (title_for or {}).get(arxiv_id or ""))
    write_json_atomic(cached, text.model_dump())
    return text


def _flush(out: list[Passage], buffer: list[str], page: int, section: str) -> None:
    if buffer:
        out.append(Passage(page=page, section=section, text=" ".join(buffer)))
        buffer.clear()


def passages(paper: PaperText) -> tuple[list[Passage], list[dict[str, Any]]]:
    """Page-bound passages of about PASSAGE_WORDS words, split at headings; and the sentences set aside."""
    out: list[Passage] = []
    set_aside: list[dict[str, Any]] = []
    section = "front"
    for number, page in enumerate(paper.pages, 1):
        buffer: list[str] = []
        paragraph: list[str] = []
        for line in [*page.splitlines(), ""]:
            heading = HEADING.match(line.strip())
            if line.strip() and not heading:
                paragraph.append(line.strip())
                continue
            for sentence in SENTENCE.split(" ".join(paragraph)):
                if not sentence.strip():
                    continue
                if INJECTION.search(sentence):
                    set_aside.append({"page": number, "text": sentence[:200]})
                    continue
                buffer.append(sentence.strip())
                if sum(len(s.split()) for s in buffer) >= PASSAGE_WORDS:
                    _flush(out, buffer, number, section)
            paragraph = []
            if heading:
                _flush(out, buffer, number, section)
                section = heading.group(1).lower()
        _flush(out, buffer, number, section)
    return [p for p in out if p.section not in ("references", "bibliography")], set_aside


# ------------------------------------------------------------------------------------------ reading


@dataclass
class ReadAnswer:
    answer: str
    pages: list[int] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    citation_errors: list[dict[str, str]] = field(default_factory=list)
    passages: list[dict[str, Any]] = field(default_factory=list)
    set_aside: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_pages(text: str, allowed: set[int]) -> tuple[str, list[int], list[dict[str, str]]]:
    """Keep page citations to pages the model was shown; drop the rest and report them."""
    cited: list[int] = []
    errors: list[dict[str, str]] = []

    def replace(match: re.Match) -> str:
        page = int(match.group(1) or match.group(2))
        if page not in allowed:
            errors.append({"cited": f"p. {page}", "reason": "not a page of the passages given to the model"})
            return ""
        if page not in cited:
            cited.append(page)
        return f"(p. {page})"

    return tidy_spacing(PAGE_CITE.sub(replace, text)), cited, errors


def _fence(text: str) -> str:
    """Paper text may not close the data block it sits in."""
    return re.sub(r"</?\s*paper\s*>", " ", text, flags=re.I)


class PaperReader:
    """One paper's passages, searchable, plus the knowledge base to relate it to."""

    def __init__(self, paper: PaperText, assistant: Assistant) -> None:
        import bm25s

        self.paper = paper
        self.assistant = assistant
        self.passages, self.set_aside = passages(paper)
        if not self.passages:
            raise PlraError(f"{paper.title or paper.key}: no text outside the references to read")
        self.bm25 = bm25s.BM25()
        self.bm25.index([tokenize(p.text) or ["_"] for p in self.passages], show_progress=False)

    @classmethod
    def open(cls, source: str, assistant: Assistant | None = None) -> PaperReader:
        assistant = assistant or Assistant()
        titles = {pid: p.title for pid, p in assistant.knowledge.papers.items()}
        return cls(load_paper(source, assistant.settings, titles), assistant)

    def search(self, query: str, k: int = 4) -> list[Passage]:
        tokens = [t for t in tokenize(query) if t in self.bm25.vocab_dict]
        if not tokens:
            return self.passages[:k]
        scores = self.bm25.get_scores(tokens)
        order = sorted(range(len(self.passages)), key=lambda i: -scores[i])
        return [self.passages[i] for i in order[:k] if scores[i] > 0] or self.passages[:k]

    def _messages(self, shown: list[Passage], kb_hits, instructions: str, question: str, lang: str):
        excerpts = "\n\n".join(f"[p. {p.page}] {_fence(p.text)}" for p in shown)
        parts = [f'{PAPER_EXCERPTS[lang]}\n<paper title="{_fence(self.paper.title)}">\n{excerpts}\n</paper>']
        if kb_hits:
            kb = "\n".join(f"[arXiv:{h.arxiv_id}] {h.title} ({h.year}): {h.snippet}" for h in kb_hits)
            parts.append(f"{CONTEXT_HEADER[lang]}\n{kb}")
        parts += [instructions, question]
        return [{"role": "system", "content": READ_SYSTEM[lang]}, {"role": "user", "content": "\n\n".join(parts)}]

    def ask(self, question: str, llm=None, k: int = 4, lang: str | None = None) -> ReadAnswer:
        """An answer grounded in the paper (page citations), with knowledge-base citations where it compares."""
        question = question.strip()
        if not question:
            raise PlraError("the question is empty")
        lang = lang or ("zh" if is_chinese(question) else "en")
        shown = self.search(question, k)
        kb_hits = [h for h in self.assistant.index.search(question, k=3) if h.arxiv_id != self.paper.arxiv_id]
        if llm is None:
            query = set(tokenize(question))
            lines = [READ_EXTRACTIVE_HEADER[lang]]
            for passage in shown[:3]:
                sentences = SENTENCE.split(passage.text)
                best = max(sentences, key=lambda s: len(query & set(tokenize(s))))
                lines.append(f"- {best} (p. {passage.page})")
            raw = "\n".join(lines)
        else:
            raw = llm.chat(self._messages(shown, kb_hits, READ_ANSWER_INSTRUCTIONS[lang], question, lang))
        extra = {h.arxiv_id: (h.title, h.year) for h in kb_hits}
        text, citations, errors = check_citations(raw, self.assistant.knowledge, extra)
        text, pages, page_errors = check_pages(text, {p.page for p in shown})
        read = ", ".join(f"p. {p}" for p in dict.fromkeys(p.page for p in shown))
        return ReadAnswer(
            f"{with_sources(text, citations, lang)}\n\n({PASSAGES_READ[lang]}: {read})",
            pages,
            citations,
            errors + page_errors,
            [{"page": p.page, "section": p.section, "text": p.text[:240]} for p in shown],
            self.set_aside,
        )

    def _pick(self, kind: str, used: set[str]) -> list[dict[str, Any]]:
        cue = re.compile(CUES[kind], re.I)
        scored = []
        for order, passage in enumerate(self.passages):
            for sentence in SENTENCE.split(passage.text):
                words = len(sentence.split())
                if sentence in used or not 6 <= words <= 80:
                    continue
                score = len(cue.findall(sentence)) + 1.5 * (passage.section in PREFERRED_SECTIONS[kind])
                if kind == "results":
                    if not re.search(r"\d", sentence):
                        continue
                    score += 1 + bool(re.search(r"\d+(\.\d+)?\s*%|\d+\.\d+", sentence))
                if score >= 1.5:
                    scored.append((score, -order, sentence, passage.page))
        best = sorted(scored, reverse=True)[: CARD_SIZES[kind]]
        used.update(s for _, _, s, _ in best)
        return [{"text": s, "page": page} for _, _, s, page in sorted(best, key=lambda b: -b[1])]

    def card(self, llm=None, lang: str = "en") -> dict[str, Any]:
        """The structured reading card; with a model, also a short summary whose page citations are checked."""
        used: set[str] = set()
        card: dict[str, Any] = {"title": self.paper.title, "arxiv_id": self.paper.arxiv_id, "key": self.paper.key,
                                "pages": len(self.paper.pages), "lang": lang}  # fmt: skip
        for kind in CARD_SIZES:
            card[kind] = self._pick(kind, used)
        probe = " ".join([self.paper.title, *(p.text for p in self.passages[:3])])[:1500]
        hits = [h for h in self.assistant.index.search(probe, k=6) if h.arxiv_id != self.paper.arxiv_id][:5]
        if not (self.paper.arxiv_id in self.assistant.knowledge.papers or self.assistant.in_field(self.paper.title)):
            hits = []  # a document from another field: any "related" paper would be noise
        card["related"] = [{"arxiv_id": h.arxiv_id, "title": h.title, "year": h.year, "why": h.snippet} for h in hits]
        card["glossary"] = self._glossary(lang)
        card["set_aside"] = self.set_aside
        card["summary"], card["citation_errors"] = None, []
        if llm is not None:
            shown = [Passage(page=i["page"], section=kind, text=i["text"]) for kind in CARD_SIZES for i in card[kind]]
            shown = shown or self.passages[:4]
            raw = llm.chat(self._messages(shown, [], READ_SUMMARY_INSTRUCTIONS[lang], self.paper.title, lang))
            card["summary"], _, card["citation_errors"] = check_pages(raw, {p.page for p in shown})
        return card

    def _glossary(self, lang: str, limit: int = 10) -> list[dict[str, str]]:
        body = " ".join(p.text for p in self.passages).lower()
        counts: Counter = Counter()
        for term in self.assistant.knowledge.glossary:
            names = [n for n in (term.term, *term.aliases) if len(n) >= 3]
            found = sum(len(re.findall(rf"(?<![a-z]){re.escape(n.lower())}(?![a-z])", body)) for n in names)
            if found:
                counts[term.term] = found
        terms = {t.term: t for t in self.assistant.knowledge.glossary}
        return [{"term": name, "definition": first_sentence(terms[name].zh if lang == "zh" else terms[name].en),
                 "count": n}
                for name, n in counts.most_common(limit)]  # fmt: skip


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+|(?<=[。！？])", text.strip(), maxsplit=1)[0]


def card_markdown(card: dict[str, Any]) -> str:
    labels = CARD_LABELS[card["lang"]]
    head = f"## {card['title']}" + (f" (arXiv:{card['arxiv_id']})" if card["arxiv_id"] else "")
    lines = [head, f"_{card['pages']} pages_"]
    if card.get("summary"):
        lines += ["", f"**{labels['summary']}**", card["summary"]]
    for kind in CARD_SIZES:
        lines += ["", f"**{labels[kind]}**"] + ([f"- {i['text']} (p. {i['page']})" for i in card[kind]] or ["- —"])
    lines += ["", f"**{labels['related']}**"]
    lines += [f"- {r['title']} ({r['year']}) [arXiv:{r['arxiv_id']}]: {r['why']}" for r in card["related"]] or ["- —"]
    if card["glossary"]:
        lines += ["", f"**{labels['glossary']}**"] + [f"- {g['term']}: {g['definition']}" for g in card["glossary"]]
    if card["set_aside"]:
        lines += ["", f"**{labels['warnings']}**"] + [f"- p. {w['page']}: {w['text']}" for w in card["set_aside"]]
    return "\n".join(lines)


def read_command(
    source: str = typer.Argument(..., help="a PDF file or an arXiv id (downloaded through ARXIV_API_URL's host)"),
    question: str = typer.Option(None, "--ask", "-q", help="ask about the paper instead of printing its card"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    no_llm: bool = typer.Option(False, "--no-llm", help="extraction only: no model (card and answers from the text)"),
    lang: str = typer.Option(None, "--lang", help="en or zh (default: the question's language, else en)"),
    endpoint: str = typer.Option(None, "--endpoint", help="OpenAI-compatible URL (default as for `plra ask`)"),
    local: bool = LOCAL_OPTION,
    k: int = typer.Option(4, "--k", "-k", help="passages of the paper in the prompt"),
) -> None:
    """Read one paper: a reading card (problem, method, data, results, limitations, related papers, terms),
    or, with --ask, an answer that cites pages as (p. N)."""
    if lang is not None:
        check_lang(lang)
    from plra.assistant.answer import model_for

    reader = PaperReader.open(source)
    llm = None if no_llm else model_for(endpoint, local)
    if question:
        result = reader.ask(question, llm=llm, k=k, lang=lang)
        if as_json:
            typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
            return
        typer.echo(result.answer)
        for error in result.citation_errors:
            typer.echo(f"(removed citation {error['cited']}: {error['reason']})", err=True)
        return
    card = reader.card(llm=llm, lang=lang or "en")
    typer.echo(json.dumps(card, ensure_ascii=False) if as_json else card_markdown(card))
