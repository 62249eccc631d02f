"""The field's written synthesis: topic overviews (`overviews/<topic>.yaml`) and evidence claims
(`claims/<topic>.yaml`), loaded into the knowledge base and checked against its curated papers.

The rules are the ones a survey editor applies: every sentence is cited, every cited id is a curated paper, the
English and the Chinese of a section cite the same papers, an overview cites its topic's central papers, and a
claim's papers are on the claim's topics.
"""

from __future__ import annotations

import re
from pathlib import Path

from plra.knowledge.validation import Issue, load_list, load_model, locate
from plra.types import CJK, OVERVIEW_SECTIONS, WORD, Claim, Overview, Paper, Topic, cited_ids

EN_WORDS = (400, 800)  # the whole overview, all five sections
ZH_CHARS = (600, 1600)  # Chinese characters of the whole overview (about 400-800 words' worth)
EN_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\[(\"“0-9\u4e00-\u9fff])")
ZH_SENTENCE_END = re.compile(r"(?<=[。！？])")


def sentences(text: str) -> list[str]:
    """Split English or Chinese prose into sentences (English at '. ' before a capital, Chinese at 。！？)."""
    parts = [p for chunk in EN_SENTENCE_END.split(text.strip()) for p in ZH_SENTENCE_END.split(chunk)]
    return [p.strip() for p in parts if len(p.strip()) > 1]


def uncited_sentences(text: str) -> list[str]:
    return [s for s in sentences(text) if not cited_ids(s)]


def _issue(path: Path, lines: dict[tuple, int], loc: tuple, message: str) -> Issue:
    return Issue(path, locate(lines, loc), ".".join(map(str, loc)), message)


def check_overview(
    papers: dict[str, Paper], topics: dict[str, Topic], overview: Overview, path: Path, lines: dict[tuple, int]
) -> list[Issue]:
    issues: list[Issue] = []
    if path.stem != overview.topic:
        issues.append(_issue(path, lines, ("topic",), f"file must be named {overview.topic}.yaml"))
    if overview.topic not in topics:
        issues.append(_issue(path, lines, ("topic",), f"unknown topic '{overview.topic}' (see taxonomy.yaml)"))
    kinds = [s.kind for s in overview.sections]
    if kinds != list(OVERVIEW_SECTIONS):
        issues.append(_issue(path, lines, ("sections",), f"sections must be {', '.join(OVERVIEW_SECTIONS)} in order"))
    for index, section in enumerate(overview.sections):
        for lang in ("en", "zh"):
            text = getattr(section, lang)
            for other in cited_ids(text):
                paper = papers.get(other)
                if paper is None:
                    issues.append(_issue(path, lines, ("sections", index, lang), f"{other} is not a curated paper"))
            for sentence in uncited_sentences(text)[:3]:
                issues.append(
                    _issue(path, lines, ("sections", index, lang), f"sentence cites nothing: {sentence[:70]!r}")
                )
        only_en = set(cited_ids(section.en)) - set(cited_ids(section.zh))
        only_zh = set(cited_ids(section.zh)) - set(cited_ids(section.en))
        if only_en or only_zh:
            detail = "; ".join(
                f"only in {lang}: {', '.join(sorted(ids))}" for lang, ids in (("en", only_en), ("zh", only_zh)) if ids
            )
            issues.append(
                _issue(path, lines, ("sections", index), f"English and Chinese cite different papers ({detail})")
            )
    words = len(WORD.findall(overview.text("en")))
    if not EN_WORDS[0] <= words <= EN_WORDS[1]:
        issues.append(
            _issue(path, lines, ("sections",), f"English has {words} words, expected {EN_WORDS[0]}-{EN_WORDS[1]}")
        )
    han = len(CJK.findall(overview.text("zh")))
    if not ZH_CHARS[0] <= han <= ZH_CHARS[1]:
        issues.append(
            _issue(path, lines, ("sections",), f"Chinese has {han} characters, expected {ZH_CHARS[0]}-{ZH_CHARS[1]}")
        )
    cited = set(cited_ids(overview.text("en")))
    for index, central in enumerate(overview.central):
        paper = papers.get(central)
        if paper is None:
            issues.append(_issue(path, lines, ("central", index), f"{central} is not a curated paper"))
        elif overview.topic not in paper.topics:
            issues.append(_issue(path, lines, ("central", index), f"{central} does not carry topic '{overview.topic}'"))
        if central not in cited:
            issues.append(_issue(path, lines, ("central", index), f"central paper {central} is not cited"))
    return issues


def check_claim(
    papers: dict[str, Paper], topics: dict[str, Topic], claim: Claim, path: Path, lines: dict[tuple, int]
) -> list[Issue]:
    issues: list[Issue] = []
    for index, topic in enumerate(claim.topics):
        if topic not in topics:
            issues.append(_issue(path, lines, ("topics", index), f"unknown topic '{topic}' (see taxonomy.yaml)"))
    if claim.topics[0] != path.stem:
        issues.append(_issue(path, lines, ("topics", 0), f"the first topic must be the file's, '{path.stem}'"))
    for key in ("supports", "contradicts"):
        for index, other in enumerate(getattr(claim, key)):
            paper = papers.get(other)
            if paper is None:
                issues.append(_issue(path, lines, (key, index), f"{other} is not a curated paper"))
            elif not set(paper.topics) & set(claim.topics):
                issues.append(
                    _issue(
                        path, lines, (key, index), f"{other} is on {', '.join(paper.topics)}, not on the claim's topics"
                    )
                )
    listed = set(claim.papers())
    en, zh = set(cited_ids(claim.claim_en)), set(cited_ids(claim.claim_zh))
    if en != zh:
        issues.append(_issue(path, lines, ("claim_zh",), "claim_en and claim_zh cite different papers"))
    if not en:
        issues.append(_issue(path, lines, ("claim_en",), "the claim cites no paper"))
    for other in sorted((en | zh) - listed):
        issues.append(
            _issue(path, lines, ("claim_en",), f"cites {other}, which is in neither supports nor contradicts")
        )
    return issues


def load_synthesis(
    root: Path, papers: dict[str, Paper], topics: dict[str, Topic], issues: list[Issue]
) -> tuple[dict[str, Overview], list[Claim]]:
    """Read and check overviews/ and claims/ (both optional) under a field's folder; problems go to issues."""
    overviews: dict[str, Overview] = {}
    for path in sorted((root / "overviews").glob("*.yaml")):
        overview, lines = load_model(path, Overview, issues)
        if overview is not None:
            issues.extend(check_overview(papers, topics, overview, path, lines))
            overviews[overview.topic] = overview
    claims: list[Claim] = []
    seen: set[str] = set()
    for path in sorted((root / "claims").glob("*.yaml")):
        for claim, lines in load_list(path, "claims", Claim, issues):
            if claim.id in seen:
                issues.append(_issue(path, lines, ("id",), f"duplicate claim id '{claim.id}'"))
            seen.add(claim.id)
            issues.extend(check_claim(papers, topics, claim, path, lines))
            claims.append(claim)
    return overviews, claims
