"""`plra cite`: BibTeX and APA references for knowledge-base papers, from their checked metadata.

- Every entry carries the arXiv eprint fields; a paper whose venue is known becomes @inproceedings
  (or @article for a journal), one without becomes @misc, as arXiv's own export does.
- Keys are `<first author's surname><year><first content word of the title>`, made unique within one
  bibliography with a, b, ... so a draft and its .bib always agree.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import typer

from plra.errors import PlraError
from plra.io import check_file_out, write_text_atomic
from plra.knowledge import kb as kb_module
from plra.settings import load_knowledge
from plra.types import IncomingPaper, Paper, bare_arxiv_id

JOURNAL_HINTS = re.compile(r"journal|transactions|tacl|tmlr|neurocomputing|political analysis|nature|science", re.I)
TITLE_STOP = set(
    "a an the on of for to in and is are do does can how what when why towards toward with from by at be "
    "your you we i".split()
)
LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip
ARXIV_DOI = "https://doi.org/10.48550/arXiv.{id}"  # the DOI arXiv registers for every paper

AnyPaper = Paper | IncomingPaper


def _ascii(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if c.isascii() and c.isalnum()).lower()


def surname(author: str) -> str:
    return author.split()[-1] if author.split() else author


def base_key(paper: AnyPaper) -> str:
    words = [_ascii(w) for w in re.split(r"[\s:\-–—/]+", paper.title)]
    word = next((w for w in words if w and w not in TITLE_STOP), "paper")
    return f"{_ascii(surname(paper.authors[0])) or 'anon'}{paper.year}{word}"


def citation_keys(papers: list[AnyPaper]) -> dict[str, str]:
    """arXiv id -> BibTeX key, unique within this list (a, b, ... on collisions, in list order)."""
    keys: dict[str, str] = {}
    taken: dict[str, int] = {}
    for paper in papers:
        key = base_key(paper)
        count = taken.get(key, 0)
        taken[key] = count + 1
        keys[paper.arxiv_id] = key if count == 0 else f"{key}{chr(ord('a') + count - 1)}"
    return keys


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(c, c) for c in text)


def _protect_case(title: str) -> str:
    """Braces around words BibTeX styles must not lower-case (acronyms, CamelCase such as LaMP)."""
    words = latex_escape(title).split()
    return " ".join(f"{{{w}}}" if any(re.search(r"[A-Z]", part[1:]) for part in w.split("-")) else w for w in words)


def bibtex_entry(paper: AnyPaper, key: str) -> str:
    fields = [
        ("title", _protect_case(paper.title)),
        ("author", " and ".join(latex_escape(_inverted(a)) for a in paper.authors)),
        ("year", str(paper.year)),
    ]
    venue = getattr(paper, "venue", None)
    if venue:
        kind = "article" if JOURNAL_HINTS.search(venue) else "inproceedings"
        fields.append(("journal" if kind == "article" else "booktitle", latex_escape(venue)))
    else:
        kind = "misc"
    fields += [("eprint", paper.arxiv_id), ("archivePrefix", "arXiv")]
    if isinstance(paper, IncomingPaper) and paper.categories:
        fields.append(("primaryClass", paper.categories[0]))
    fields += [("doi", f"10.48550/arXiv.{paper.arxiv_id}"), ("url", paper.url)]
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@{kind}{{{key},\n{body}\n}}\n"


def _inverted(author: str) -> str:
    """'Saizheng Zhang' -> 'Zhang, Saizheng': BibTeX then never mistakes which part is the surname."""
    parts = author.split()
    return author if len(parts) < 2 else f"{parts[-1]}, {' '.join(parts[:-1])}"


def bibtex(papers: list[AnyPaper]) -> str:
    keys = citation_keys(papers)
    return "\n".join(bibtex_entry(p, keys[p.arxiv_id]) for p in papers)


def _initials(given: str) -> str:
    return " ".join(f"{part[0]}." for part in re.split(r"[\s]+", given) if part and part[0].isalpha())


def apa_authors(authors: list[str]) -> str:
    names = []
    for author in authors:
        parts = author.split()
        names.append(author if len(parts) < 2 else f"{parts[-1]}, {_initials(' '.join(parts[:-1]))}")
    if len(names) == 1:
        return names[0]
    if len(names) > 20:  # APA 7: the first 19, an ellipsis, then the last author
        return ", ".join(names[:19]) + ", . . . " + names[-1]
    return ", ".join(names[:-1]) + ", & " + names[-1]


def apa(paper: AnyPaper) -> str:
    venue = getattr(paper, "venue", None)
    where = f" In *{venue}*." if venue else " *arXiv*."
    return f"{apa_authors(paper.authors)} ({paper.year}). {paper.title.rstrip('.')}.{where} " + ARXIV_DOI.format(
        id=paper.arxiv_id
    )


def lookup(knowledge: kb_module.KnowledgeBase, ids: list[str]) -> list[AnyPaper]:
    """The papers for ids (duplicates dropped, order kept); an unknown id is a one-line error naming it."""
    papers: list[AnyPaper] = []
    for raw in ids:
        arxiv_id = bare_arxiv_id(raw)
        if arxiv_id is None:
            raise PlraError(f"{raw.strip()!r} is not an arXiv id (e.g. 2304.11406, arXiv:2304.11406v2 or its URL)")
        paper = knowledge.get(arxiv_id)
        if paper is None:
            raise PlraError(f"arXiv:{arxiv_id} is not in the knowledge base: find ids with `plra search` or "
                            f"add it with `plra kb update`")  # fmt: skip
        if paper not in papers:
            papers.append(paper)
    return papers


def render(papers: list[AnyPaper], fmt: str) -> str:
    if fmt == "bibtex":
        return bibtex(papers)
    if fmt == "apa":
        return "\n".join(apa(p) for p in papers) + "\n"
    raise PlraError(f"--format {fmt!r} is not known: use bibtex or apa")


def cite_command(
    ids: list[str] = typer.Argument(..., help="arXiv ids of knowledge-base papers (2304.11406, arXiv:..., URLs)"),
    fmt: str = typer.Option("bibtex", "--format", "-f", help="bibtex or apa"),
    out: Path = typer.Option(None, "--out", "-o", help="write to this file instead of printing"),
) -> None:
    """Print BibTeX (or APA) references for knowledge-base papers."""
    if out:
        check_file_out(out, "--out", "references.bib" if fmt == "bibtex" else "references.txt")
    papers = lookup(kb_module.load(load_knowledge()), ids)
    text = render(papers, fmt)
    if out:
        write_text_atomic(out, text)
        typer.echo(f"wrote {len(papers)} reference(s) to {out}", err=True)
    else:
        typer.echo(text, nl=False)
