"""The support check between a sentence and the entries of the papers it cites, enforced on every answer.

A citation whose paper's entry shares too few content words with its sentence is dropped, and a sentence whose
citations are all dropped is dropped with them: an answer may say less, never cite a paper for what it does not
say. The rubric (plra.assistant.rubric) measures the same check on the final answer.
"""

from __future__ import annotations

import re

from plra.knowledge.kb import KnowledgeBase
from plra.toolchain.scoring import content_units

SUPPORT_UNITS = 3  # a sentence is supported by an entry that shares this many content words with it
SUPPORT_SHARE = 0.25  # ... or this share of the sentence's content words
NUMBERED = re.compile(r"\[(\d+)\]")
ARXIV = re.compile(r"\s*\[arXiv:\s*([^\]\s]+)\]")
# A sentence ends at 。！？, or at .!? before a capital, a citation, a quote or a number (as synthesis.sentences).
# Not after "et al.", "e.g.", "i.e." or "vs.": a name with its year would lose its citation to the next sentence.
BOUNDARY = re.compile(
    r"((?<=[。！？])|(?<=[.!?])(?<!\bal\.)(?<!e\.g\.)(?<!i\.e\.)(?<!\bvs\.)\s+(?=[A-Z\[(\"“0-9\u4e00-\u9fff]))"
)
# Words any sentence shares with any entry: they support nothing.
FUNCTION_WORDS = set(
    "the and with that this for from are was were its their than into over more less which also both such can not "
    "but has have had they them these those when where while only one two its all any each most some other new "
    "use used using uses show shows shown found find finds about between across within without".split()
)


def sentences(text: str) -> list[str]:
    """The text's sentences, line by line, split where enforce() splits them."""
    return [piece.strip() for line in text.split("\n") for piece in BOUNDARY.split(line)[::2] if piece.strip()]


def entry_units(kb: KnowledgeBase, arxiv_id: str) -> set[str]:
    paper = kb.papers.get(arxiv_id)
    if paper is None:
        return set()
    text = " ".join([paper.title, *paper.aliases, paper.summary_en, paper.summary_zh, *paper.key_findings,
                     *paper.methods, *paper.datasets, *paper.metrics, *paper.keywords])  # fmt: skip
    return content_units(text)


def supported(sentence: str, kb: KnowledgeBase, arxiv_id: str) -> bool:
    """Does the paper's entry back the sentence: 3 shared content words, or a quarter of the sentence's?"""
    units = content_units(NUMBERED.sub("", ARXIV.sub("", sentence))) - FUNCTION_WORDS
    shared = units & entry_units(kb, arxiv_id)
    return len(shared) >= SUPPORT_UNITS or (bool(units) and len(shared) / len(units) >= SUPPORT_SHARE)


def _checked_sentence(sentence: str, kb: KnowledgeBase, dropped: list[dict[str, str]]) -> str:
    """The sentence without its unsupported citations, or '' when none of its citations is supported.
    A paper outside the curated set (an arXiv result of this turn) has no entry to check against: kept."""
    cited = ARXIV.findall(sentence)
    if not cited:
        return sentence
    bad = {pid for pid in cited if pid in kb.papers and not supported(sentence, kb, pid)}
    for pid in sorted(bad):
        dropped.append({"cited": pid, "reason": "its entry does not support the sentence"})
    if bad and bad >= set(cited):
        return ""
    return ARXIV.sub(lambda m: "" if m.group(1) in bad else m.group(0), sentence)


def _plain(text: str) -> str:
    """The words alone: the composer places citations where the curated text may have none, or others."""
    return re.sub(r"\s+", "", ARXIV.sub("", text))


def enforce(text: str, kb: KnowledgeBase, curated: str = "") -> tuple[str, list[dict[str, str]]]:
    """The answer with unsupported citations and unsupported sentences dropped, and what was dropped.
    Table rows are left whole: their cells are the paper's own fields, and a row cannot lose a cell.
    `curated`: the overview or claim text the answer quotes; its sentences were written from the papers and
    checked by `plra kb check`, and a word-overlap test would drop true citations of them ("reflective facts"
    against an entry that says "reflective questions"), so they stay whole."""
    dropped: list[dict[str, str]] = []
    trusted = _plain(curated)
    lines = []
    for line in text.split("\n"):
        if line.lstrip().startswith("|"):
            lines.append(line)
            continue
        pieces = BOUNDARY.split(line)  # sentence, separator, sentence, ...
        kept = []
        for i in range(0, len(pieces), 2):
            plain = _plain(pieces[i])
            trust = len(plain) > 20 and plain in trusted
            sentence = pieces[i] if trust else _checked_sentence(pieces[i], kb, dropped)
            if sentence.strip():
                kept.append(sentence + (pieces[i + 1] if i + 1 < len(pieces) else ""))
        joined = "".join(kept).rstrip()
        if joined or not line.strip():  # a line all of whose sentences were dropped goes too
            lines.append(joined)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip(), dropped
