"""`plra write`: related-work drafts in which every sentence cites a knowledge-base paper, and paper outlines.

- related-work: when the topic is one the field's synthesis covers, the draft argues theme by theme: a
  paragraph per family of approaches in the topic's overview, opening with what that line of work does, then
  why and when it is chosen, the evidence for and against it (the overview's evidence and the claims' hedged
  verdicts, contrary results and conditions), the newest papers on it, and the open problem it leaves. Every
  sentence is the curated synthesis's own, cited as it was written, or one sentence per newer paper from that
  paper's checked findings. A topic no overview covers is drafted from retrieval, with papers grouped by the
  dataset, method or keyword they share. With a model, the model drafts from the same material; sentences
  without a valid citation are dropped, and when fewer than two survive the composed draft is used. Either way
  the draft passes the citation checker before it is rendered in a style (acl: \\citep, neurips: \\cite,
  plain: author-year Markdown) with a BibTeX file holding exactly the cited papers.
- outline: sections from `datasets/<field>/templates/outline.yaml`, each with what it should argue and the
  knowledge-base papers to cite there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from plra.assistant.answer import LOCAL_OPTION, Assistant, build_messages, check_citations
from plra.assistant.compose import OPEN_CUES, best_finding, lower_first, name_of
from plra.errors import PlraError
from plra.io import check_folder_out, write_text_atomic
from plra.knowledge.cite import AnyPaper, apa, bibtex, citation_keys, latex_escape, lookup, surname
from plra.knowledge.kb import KnowledgeBase
from plra.knowledge.retrieval import tokenize
from plra.knowledge.synthesis import sentences
from plra.knowledge.validation import load_yaml_model
from plra.prompts import (
    RELATED_WORK_GROUP,
    RELATED_WORK_INSTRUCTIONS,
    RELATED_WORK_LEFTOVER,
    RELATED_WORK_MATERIAL,
    RELATED_WORK_NEWER,
    RELATED_WORK_TITLE,
    RELATED_WORK_VERBS,
    check_lang,
)
from plra.types import Claim, OutlineTemplate, Overview, Paper, SearchHit, cited_ids

STYLES = ("acl", "neurips", "plain")
ID = r"\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7}"
MARKER = re.compile(rf"\[arXiv:\s*({ID})(?:v\d+)?\]")
MARKER_RUN = re.compile(rf"(?:\s*\[arXiv:\s*(?:{ID})(?:v\d+)?\])+")
SENTENCES = re.compile(r"(?<!\bal\.)(?<!e\.g\.)(?<!i\.e\.)(?<=[.!?])\s+(?=[A-Z0-9\"“])|(?<=[。！？])")
REPEATED_NAME = re.compile(r"(\b[\w\-]+(?: et al\.)?) \(\1, (\d{4})\)")

write_app = typer.Typer(help="Write with real citations: related-work drafts and paper outlines.",
                        no_args_is_help=True)  # fmt: skip

# A draft paragraph: its label and its sentences, each with where it came from ("overview:<topic>/<part>",
# "claim:<id>", "paper:<arXiv id>"), so a reader (and a test) can check a citation against its source.
Sentence = tuple[str, str]
Paragraph = tuple[str, list[Sentence]]

MAX_SENTENCES = 8  # a paragraph longer than this stops arguing and starts listing
NEWER_FIT = 0.6  # a newer paper's retrieval score for a theme, as a share of the theme's best, to join it
NEWER_POOL = 12  # papers retrieval offers each theme
TOKEN_FIT = 0.34  # share of a sentence's words a theme must hold when no cited paper links them
DUPLICATE = 0.7  # share of the shorter sentence's words that makes two sentences say the same thing
CLAUSE_DUPLICATE = 0.6  # share of a clause's words in an earlier sentence that makes the clause a restatement
NUMBER_WORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
CLAUSES = re.compile(r", and |; |, while |, whereas |, but |, as | \(|: ")

# --------------------------------------------------------------------------------- turning synthesis into prose

ORDINAL_WORDS = "first|second|third|fourth|fifth|sixth|last|final|largest|simplest|dominant|baseline"
# "One family measures", "A fifth, agentic family plans", "That first family of persona-grounded generation now":
# the subject says which family, not what it does; the heading comes from what follows.
FAMILY_SUBJECT = re.compile(
    rf"^(?:that|the|a|an|one)\s+(?:(?:{ORDINAL_WORDS})\b,?\s*)?(?:[\w-]+\s+)?(?:family|group|strand)"
    r"(?:\s+of\s+[\w-]+(?:\s+[\w-]+)?)?\s+|^(?:the|a|an)\s+(?:first|second|third|fourth|fifth|sixth|last|final)\s+",
    re.IGNORECASE,
)
FAMILY_MARK = {
    "en": re.compile(
        r"\b(?:one|first|second|third|fourth|fifth|last|another)\b[\s,]+(?:[\w-]+\s+)?"
        r"(?:family|group|strand)\b|^(?:the|a|an)\s+(?:first|second|third|fourth|fifth|last)\b",
        re.I,
    ),
    "zh": re.compile(r"第[一二三四五六]类|其[一二三四五]是|此外还有"),
}
# A sentence that leans on the one before it ("This differs ...", "COMEDY drops ...") stays with it.
ANAPHORA = {
    "en": re.compile(r"^(?:This|These|That|It|Its|Such|Both|They|Their)\b(?!\s+(?:first|second|third)\b)"),
    "zh": re.compile(r"^(?:它|这|该|其|二者|两者)"),
}
LEAD_ADVERBIAL = {
    "en": re.compile(
        r"^(?:(?:Finally|Last|Lastly|Then),\s+|(?:Of|On|For|At|In|Among|Within|Beyond)\b[^,\[]{0,50},\s+)"
    ),
    "zh": re.compile(r"^(?:[^，。\[]{1,10}中，|最后，|此外，|方法大体分为[^，]*，)"),
}
ORDER_WORDS = {"en": re.compile(r"^(?:Finally|Last|Lastly),\s+"), "zh": re.compile(r"^(?:最后|此外|另外)，")}
# Open problems are numbered in their overview ("The first problem is that ...", "a second gap"); out of that
# order the numbers are wrong, so they go.
OPEN_THAT = re.compile(
    r"^(?:The|A|An) (?:first|second|third|fourth|fifth|central|hardest|main)(?: open)?"
    r"(?: problem| gap)? is that\s+",
    re.I,
)
OPEN_NOUN = re.compile(
    r"^(?:The|A|An) (?:first|second|third|fourth|fifth|central|hardest|main)(?: open)?"
    r"(?: problem| gap)? is ([^,:;\[]+?)(?=[,:;]|\s\[)",
    re.I,
)
OPEN_RANK = re.compile(r"\b(is|are) (?:a|the) (?:first|second|third|fourth|fifth)\b(?: (gap|problem|open problem))?")
OPEN_RANK_ZH = re.compile(
    r"^(?:第[一二三四五六]个?(?:开放)?(?:问题|难题|缺口)?是|其次是|再次是|首先是|第[一二三四五六]是|"
    r"首要难题是|核心难题是|最棘手的问题是)"
)
# A claim's verdict often opens with a short answer to its question ("Not reliably:", "It can:"), which means
# nothing without the question; the sentence after the colon stands alone.
VERDICT_PREFIX = {"en": re.compile(r"^([^:\[]{1,90}):\s+(?=\S)"), "zh": re.compile(r"^([^：\[]{1,24})：")}
# A claim sentence whose subject is a pronoun for the claim's topic ("For a real person it falls short").
LEANING = {
    "en": re.compile(r"^(?:It|They|This|These)\b|^[^,]{0,60}\b(?:it|they)\b"),
    "zh": re.compile(r"^(?:它|这|该)"),
}
ROLES = ("why", "evidence", "claim", "benchmark", "tension")
CONTEXTUAL = re.compile(
    r"^(?:This|These|It|Its|Their|They|Such|The (?:analysis|method|approach|paper|framework|"
    r"model|study|system|results?|authors|proposed|same))\b"
)
ZH_CONTEXTUAL = re.compile(r"^(?:将其|把它|作者|该方法|本文|他们|实验中)")
REPORTING = re.compile(r"^(\S+(?: et al\.)?) (?:\[arXiv:[^\]]+\]\s*)*(?:reports?|finds?|shows?)\b")
IRREGULAR_ING = {"is": "being", "are": "being", "has": "having", "does": "doing", "goes": "going", "lies": "lying"}
VERBS = set(
    "act add adapt address align apply are assemble build call carry cast combine compress condition describe distil "
    "distill drop encode extend feed fine-tune fuse generate get give ground infer inject is keep learn let look make "
    "map match measure mix move organize organise pass plan plug produce read replace retrieve route run serve shift "
    "sit sort split steer store tailor take train treat tune turn update use widen work write".split()
)
ADVERBS = {"now", "also", "instead", "itself", "themselves", "then", "still", "often", "mostly"}
FOLLOWERS = {
    "the",
    "a",
    "an",
    "its",
    "their",
    "each",
    "every",
    "one",
    "what",
    "whose",
    "how",
    "where",
    "on",
    "in",
    "into",
    "from",
    "among",
    "to",
    "with",
    "by",
    "as",
    "at",
    "for",
    "over",
    "through",
    "beyond",
    "purely",
    "directly",
}
TRAILING = {
    "the",
    "a",
    "an",
    "of",
    "to",
    "for",
    "with",
    "by",
    "on",
    "in",
    "into",
    "from",
    "as",
    "and",
    "or",
    "rather",
    "than",
    "that",
    "like",
    "its",
    "their",
    "at",
    "over",
    "each",
    "per",
    "such",
    "either",
}
HEADING_WORDS = 8
ZH_SUBJECT_END = re.compile(r"则|把|让|用|在|以|将|通过|为|会|被|从|可|对|是|沿|不断|尚|直接")


def short_label(knowledge: KnowledgeBase, topic: str, lang: str, inside: bool = False) -> str:
    """A topic's name up to its first list ("Pluralistic alignment, multi-objective ..." -> "Pluralistic
    alignment"); inside a sentence, in lower case unless it starts with an acronym."""
    label = re.split(r"、|，|, |(?<=[\u4e00-\u9fff]{4})与", knowledge.topic_label(topic, lang), maxsplit=1)[0]
    return lower_first(label) if inside and lang == "en" else label


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def base_form(verb: str) -> str:
    """'carries' -> 'carry', 'fixes' -> 'fix', 'measures' -> 'measure'; a word without -s stays as it is."""
    word = verb.lower()
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if re.search(r"(?:ss|sh|ch|x|zz)es$", word):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def gerund(verb: str) -> str:
    """'measures' -> 'measuring', 'lets' -> 'letting', 'route' -> 'routing': a heading says what a family does."""
    if verb.lower() in IRREGULAR_ING:
        return IRREGULAR_ING[verb.lower()]
    base = base_form(verb)
    if base.endswith("ie"):
        return base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")) and len(base) > 2:
        return base[:-1] + "ing"
    if re.fullmatch(r"[^aeiou]*[aeiou][^aeiouwxy]", base):  # one short syllable: let -> letting, plan -> planning
        return base + base[-1] + "ing"
    return base + "ing"


def _trim(words: list[str]) -> str:
    words = words[:HEADING_WORDS]
    while words and words[-1].lower() in TRAILING:
        words.pop()
    return " ".join(words)


def _verb_phrase(text: str) -> str:
    """'keeps raw units and invests in retrieval, ...' -> 'Keeping raw units and investing in retrieval'."""
    clause = re.split(r"[,:;(\[]| — ", text, maxsplit=1)[0].split()
    while clause and clause[0].lower() in ADVERBS:
        clause = clause[1:]
    if not clause:
        return ""
    if clause[0].lower() in ("is", "are"):  # "The first is sycophancy": the family is named, not described
        return _capital(_trim(clause[1:]))
    words = [gerund(clause[0])]
    for index, word in enumerate(clause[1:], 1):
        after = clause[index + 1].lower() if index + 1 < len(clause) else ""
        if clause[index - 1] == "and" and word.endswith("s") and word.islower():
            if after not in FOLLOWERS:  # "and asks questions": a second verb phrase that would need rewriting
                words.pop()
                break
            word = gerund(word)
        words.append(word)
    return _capital(_trim(words))


def _subject(text: str) -> str:
    """The noun phrase before the verb ('Supervised character training carries ...' -> that phrase)."""
    clause = re.split(r"[,:;(\[]", text, maxsplit=1)[0].split()
    for strict in (True, False):
        for index in range(1, len(clause)):
            word, before = clause[index], clause[index - 1]
            if word.lower() in ADVERBS:
                return " ".join(clause[:index])
            third_person = word.endswith("s") and word.islower() and base_form(word) in VERBS
            plain = word in VERBS and (before.endswith("s") or not strict)
            if third_person or plain:
                return " ".join(clause[:index])
    return " ".join(clause) if len(clause) <= 5 else ""


def theme_heading(sentence: str, lang: str) -> str:
    """A short label for the theme a family sentence opens: what the family does, or what it is called."""
    text = MARKER_RUN.sub("", sentence).strip().rstrip(".。")
    if lang == "zh":
        mark = re.search(r"(?:第[一二三四五六]类(?:方法)?|其[一二三四五])是?|此外还有", text)
        if mark:
            head = re.split(r"[，：；。（(\[]", text[mark.end() :], maxsplit=1)[0]
        else:
            text = LEAD_ADVERBIAL["zh"].sub("", text)
            cut = ZH_SUBJECT_END.search(text, 2)
            head = text[: cut.start()] if cut and cut.start() <= 14 else re.split(r"[，：；]", text, maxsplit=1)[0]
        return head[:16]
    parts = [p.strip() for p in text.split(";")]
    text = next((p for p in parts if FAMILY_SUBJECT.match(LEAD_ADVERBIAL["en"].sub("", p))), parts[0])
    text = LEAD_ADVERBIAL["en"].sub("", text)
    match = FAMILY_SUBJECT.match(text)
    heading = _verb_phrase(text[match.end() :]) if match else re.sub(r"^(?:The|A|An) ", "", _subject(text))
    return _capital(heading) if heading else _capital(_trim(text.split()[:5]))


def standalone(sentence: str, lang: str, part: str = "") -> str:
    """The sentence as it can stand outside its overview's order: no 'Finally,', no numbered open problems."""
    text = ORDER_WORDS[lang].sub("", sentence.strip())
    if part == "open_problems":
        if lang == "zh":
            ranked = OPEN_RANK_ZH.match(text)
            text = OPEN_RANK_ZH.sub("", text)
            head = re.match(r"([^，：；\[]{1,12})[，：]", text)
            # "其次是隐式信息，..." names the problem; "第一个问题是反馈者群体决定了结果：..." states it.
            if ranked and head and not re.search(r"了|会|能|是|在", head.group(1)):
                text = f"{head.group(1)}仍待解决：{text[head.end() :]}"
        else:
            if OPEN_THAT.match(text):
                text = OPEN_THAT.sub("", text)
            elif match := OPEN_NOUN.match(text):
                noun = match.group(1)
                verb = "remain" if re.search(r"\band\b", noun) else "remains"
                text = f"{_capital(noun)} {verb} open" + text[match.end() :]
            text = OPEN_RANK.sub(
                lambda m: ("remain" if m.group(1) == "are" else "remains") + f" a {m.group(2) or 'gap'}", text
            )
    elif part == "families" and lang == "en":
        # "A second makes trade-offs ..." opens a paragraph of its own here: the elided noun comes back.
        text = re.sub(
            r"^(A|The) (second|third|fourth|fifth|last)\b(?!,? (?:[\w-]+ )?(?:family|group|strand))",
            r"\1 \2 family",
            text,
        )
        text = re.sub(r"^That first family", "The first family", text)
    return _capital(text) if lang == "en" else text


def head_clause(sentence: str, lang: str) -> str:
    """The part of a sentence before its reasons and evidence: an open problem's name."""
    text = MARKER_RUN.sub("", sentence).strip()
    if lang == "zh":
        return re.split(r"[：，；。]", text, maxsplit=1)[0]
    cut = re.split(
        r":|;|, (?:since|because|so|which|as|where|although|while|and this|an inequity)\b| — ", text, maxsplit=1
    )
    return cut[0].strip().rstrip(".")


def claim_sentences(claim: Claim, lang: str) -> list[tuple[str, str]]:
    """(role, sentence) of a claim: its verdict's sentences (evidence, or contrast where they cite a contradicting
    paper) and its conditions, each standing on its own: a short answer to the claim's question is dropped, and
    'It' becomes the question's subject ('Is merging weights ... a good way' -> 'Merging weights ...')."""
    verdict, conditions = (
        (claim.claim_zh, claim.conditions_zh) if lang == "zh" else (claim.claim_en, claim.conditions_en)
    )
    subject = re.match(
        r"^(?:Is|Are) (?!it\b|they\b)(.+?) (?:a|an|the|more|less|enough|better|worse|viable|"
        r"automatically|always|really)\b",
        claim.question_en,
    )
    out: list[tuple[str, str]] = []
    for index, text in enumerate(sentences(verdict)):
        prefix = VERDICT_PREFIX[lang].match(text)
        if index == 0 and prefix and (lang == "zh" or len(prefix.group(1).split()) <= 12):
            text = text[prefix.end() :]
            text = _capital(text) if lang == "en" else text
        if lang == "en" and text.startswith("It ") and subject:
            text = _capital(subject.group(1)) + text[2:]
        role = "contrast" if set(cited_ids(text)) & set(claim.contradicts) else "evidence"
        out.append((role, text))
    out += [("condition", text) for text in sentences(conditions)]
    return [(role, text) for role, text in out if cited_ids(text)]


# --------------------------------------------------------------------------------------- the themed draft


@dataclass
class Unit:
    """Sentences that go together (a claim's verdict and conditions; a sentence and the one leaning on it)."""

    role: str  # why | evidence | benchmark | tension | claim
    parts: list[tuple[str, str]]  # (role, sentence)
    source: str
    cites: set[str] = field(default_factory=set)
    own: bool = True  # False for a claim filed under another topic

    def text(self) -> str:
        return " ".join(s for _, s in self.parts)


@dataclass
class Theme:
    heading: str
    opening: list[str]
    papers: set[str]  # the papers its family sentences cite
    units: list[Unit] = field(default_factory=list)
    reached: set[str] = field(default_factory=set)  # the method papers its units brought in
    newer: list[Paper] = field(default_factory=list)

    def text(self) -> str:
        return " ".join([*self.opening, *(u.text() for u in self.units)])

    def core(self) -> str:
        """What the family is and why it is chosen, without the evidence that other families share words with."""
        return " ".join([*self.opening, *(u.text() for u in self.units if u.role == "why")])


def _words(text: str) -> set[str]:
    return set(tokenize(MARKER.sub("", text)))


def _fit(part: set[str], whole: set[str]) -> float:
    return len(part & whole) / len(part) if part else 0.0


def _units(text: str, lang: str, role: str, source: str) -> list[Unit]:
    """One unit per sentence of an overview part; a sentence that leans on the one before joins it."""
    units: list[Unit] = []
    for sentence in sentences(text):
        if units and ANAPHORA[lang].match(sentence):
            units[-1].parts.append((role, sentence))
            units[-1].cites |= set(cited_ids(sentence))
        else:
            units.append(Unit(role, [(role, sentence)], source, set(cited_ids(sentence))))
    return units


def _segment(overview: Overview, assistant: Assistant, lang: str) -> tuple[list[str], list[Theme]]:
    """The families part as (framing sentences, themes): a theme per family, in the overview's order."""
    intro: list[str] = []
    themes: list[Theme] = []
    for index, sentence in enumerate(sentences(getattr(overview.section("families"), lang))):
        mentions = assistant.name_index.mentions(sentence)
        paper_led = bool(mentions) and mentions[0].start == 0 and mentions[0].kind == "paper"
        marked = bool(FAMILY_MARK[lang].search(sentence))
        follows = (ANAPHORA[lang].match(sentence) or paper_led) and not marked
        if (index == 0 and not marked) or (follows and not themes):
            intro.append(sentence)
        elif follows:
            themes[-1].opening.append(sentence)
            themes[-1].papers |= set(cited_ids(sentence))
        else:
            themes.append(Theme(theme_heading(sentence, lang), [sentence], set(cited_ids(sentence))))
    return intro, themes


def _assign(units: list[Unit], themes: list[Theme], benchmarks: set[str]) -> list[Unit]:
    """Each unit to the theme whose papers it cites most (ties: whose words it shares most); a unit that cites
    none of any theme's papers goes by shared words alone, if enough are shared. A unit's method papers join its
    theme, so a later unit can reach the theme through them; benchmarks do not (every family is measured on
    them), nor do the papers of another topic's claim (they would pull in that topic). Returns the units left."""

    def measuring(papers: set[str], share: float) -> bool:
        return bool(papers) and len(papers & benchmarks) >= share * len(papers)

    def overlap(unit: Unit, theme: Theme) -> int:
        # A unit about benchmarks ("which benchmark measures what") belongs to a family only if that family is
        # itself one of measuring; otherwise it goes with the topic's benchmarks.
        if measuring(unit.cites, 2 / 3) and not measuring(theme.papers, 1 / 2):
            return 0
        return len(unit.cites & theme.papers) + len((unit.cites - benchmarks) & theme.reached)

    pending = list(units)
    changed = True
    while changed and pending:
        changed = False
        scored = []
        for unit in pending:
            words = _words(unit.text())
            best = max(themes, key=lambda t: (overlap(unit, t), _fit(words, _words(t.text()))))
            scored.append((overlap(unit, best), unit, best))
        for links, unit, best in sorted(scored, key=lambda s: -s[0]):
            if links and unit in pending:
                best.units.append(unit)
                best.reached |= (unit.cites - benchmarks) if unit.own else set()
                pending.remove(unit)
                changed = True
    left = []
    for unit in pending:
        words = _words(unit.text())
        fit, best = max(((_fit(words, _words(t.text())), t) for t in themes), key=lambda s: s[0])
        if fit >= TOKEN_FIT and unit.role not in ("tension", "benchmark") and not unit.cites & benchmarks:
            best.units.append(unit)
        else:
            left.append(unit)
    return left


class Writer:
    """Sentences into paragraphs, each said once: a sentence whose words (or whose number and paper) an earlier
    one already gave is skipped, and a paragraph names at most one paper as the subject of 'reports'/'finds'."""

    def __init__(self, assistant: Assistant, lang: str) -> None:
        self.assistant = assistant
        self.lang = lang
        self.seen: list[tuple[set[str], set[str], set[str]]] = []

    @staticmethod
    def numbers(text: str) -> set[str]:
        """The figures a sentence gives ('12.8%', '1,586', 'six times' as '6x'), to catch a result said twice."""
        text = re.sub(
            rf"\b({'|'.join(NUMBER_WORDS)}) times\b",
            lambda m: f"{NUMBER_WORDS.index(m.group(1)) + 2}x",
            MARKER.sub("", text).lower(),
        )
        return {
            n.replace(",", "")
            for n in re.findall(
                r"\d[\d,]*(?:\.\d+)?%|\d+(?:\.\d+)?x\b|\d+\.\d+|"
                r"\d{1,3}(?:,\d{3})+",
                text,
            )
        }

    def repeats(self, text: str) -> bool:
        """Whether the sentence says again what was said: most of its words in one earlier sentence (or one earlier
        sentence's in it), or in what the earlier sentences on its papers said together, or one of its clauses
        restating an earlier sentence, or a number an earlier sentence on the same paper gave."""
        words, numbers, cites = _words(text), self.numbers(text), set(cited_ids(text))
        clauses = [_words(c) for c in CLAUSES.split(MARKER.sub("", text))]
        said: set[str] = set()
        for seen_words, seen_numbers, seen_cites in self.seen:
            shorter = min(len(words), len(seen_words))
            if shorter >= 4 and len(words & seen_words) / shorter >= DUPLICATE:
                return True
            if len(clauses) > 1 and any(len(c) >= 6 and _fit(c, seen_words) >= CLAUSE_DUPLICATE for c in clauses):
                return True
            if cites & seen_cites:
                said |= seen_words
                if numbers & seen_numbers:
                    return True
        return _fit(words, said) >= DUPLICATE

    def add(self, out: list[Sentence], text: str, source: str) -> bool:
        text = text.strip()
        if not cited_ids(text) or self.repeats(text) or len(out) >= MAX_SENTENCES:
            return False
        if REPORTING.match(text) and any(REPORTING.match(s) for s, _ in out):
            return False
        self.seen.append((_words(text), self.numbers(text), set(cited_ids(text))))
        out.append((text, source))
        return True


def as_clause(sentence: str, names: tuple[str, ...] = ()) -> str:
    """A sentence to go after "that" or a colon: lower case, unless it starts with a name ("LaMP", "GPT-4",
    or one of names, such as the paper's own "Memanto")."""
    first = re.split(r"[\s,:;'’]", sentence, maxsplit=1)[0]
    if first in names:
        return sentence
    return re.sub(
        r"^(A|An|The|In|On|For|When|With|Across|Only) ", lambda m: m.group(1).lower() + " ", lower_first(sentence)
    )


def standing_finding(paper: Paper, text: str, lang: str) -> str:
    """The paper's finding that best fits the text, among those that stand alone: one that opens with "The
    analysis ..." or "This ..." leans on the paper's own text (no final stop)."""
    alone = [f for f in paper.key_findings if not CONTEXTUAL.match(f)] or paper.key_findings
    alone_zh = "".join(
        s
        for s in re.split(r"(?<=[。！？])", paper.summary_zh)
        if not ANAPHORA["zh"].match(s) and not ZH_CONTEXTUAL.match(s)
    )
    standing = paper.model_copy(update={"key_findings": alone, "summary_zh": alone_zh or paper.summary_zh})
    return best_finding(standing, text, lang).rstrip(".。")


def _newer_sentence(paper: Paper, theme_text: str, assistant: Assistant, lang: str) -> str:
    name = name_of(paper, assistant.name_index)
    finding = standing_finding(paper, theme_text, lang)
    plural = name.endswith("et al.") or " and " in name
    if lang == "en":
        finding = as_clause(finding, (name, *paper.aliases))
    return RELATED_WORK_NEWER[lang].format(
        name=name,
        cite=f"[arXiv:{paper.arxiv_id}]",
        year=paper.year,
        finding=finding,
        verb=RELATED_WORK_VERBS["plural" if plural else "singular"],
    )


def _attach_newer(themes: list[Theme], topic: str, assistant: Assistant, cited: set[str], k: int) -> None:
    """The topic's recent papers that the synthesis does not cite yet, each to the theme whose core retrieval
    ranks it highest for (one a theme, at most k in all): the newest work belongs in a related-work section."""
    knowledge = assistant.knowledge
    newest = max((p.year for p in knowledge.papers.values() if topic in p.topics), default=0)
    offers: list[tuple[float, int, Theme, Paper]] = []
    for theme in themes:
        hits = assistant.index.search(MARKER.sub("", theme.core())[:500], k=NEWER_POOL, topic=topic)
        top = hits[0].score if hits else 0.0
        for rank, hit in enumerate(hits):
            paper = knowledge.papers.get(hit.arxiv_id)
            if paper and hit.arxiv_id not in cited and paper.year >= newest - 1 and hit.score >= NEWER_FIT * top:
                offers.append((hit.score / top, -rank, theme, paper))
    # A paper goes only to the theme it fits best: a theme left without one is better than one given a misfit.
    best: dict[str, tuple[float, int, Theme, Paper]] = {}
    for offer in offers:
        if offer[3].arxiv_id not in best or offer[:2] > best[offer[3].arxiv_id][:2]:
            best[offer[3].arxiv_id] = offer
    taken = 0
    for _, _, theme, paper in sorted(best.values(), key=lambda o: (o[0], o[1]), reverse=True):
        if not theme.newer and taken < k:
            theme.newer.append(paper)
            taken += 1


def _claim_into(out: list[Sentence], unit: Unit, writer: Writer, lang: str, conditions: bool, budget: int) -> None:
    """A claim's sentences in order. A sentence leaning on the one before ("It ...") needs that one said here;
    the rest need the verdict said here or already said by the paragraph. A condition qualifies only results the
    paragraph has given, so it needs all its papers cited before it."""
    said = context = False
    start = len(out)
    for index, (role, sentence) in enumerate(unit.parts):
        if len(out) - start >= budget:
            return
        before = {pid for text, _ in out for pid in cited_ids(text)}
        leaning = bool(LEANING[lang].match(sentence))
        if (leaning and not said) or (not leaning and index and not context):
            said = False
            continue
        if role == "condition" and (not conditions or not set(cited_ids(sentence)) <= before):
            said = False
            continue
        said = writer.add(out, sentence, unit.source)
        # Another topic's claim must set up its own context: its verdict, said elsewhere, may be about other papers.
        context = context or said or (index == 0 and unit.own and writer.repeats(sentence))


def _theme_paragraph(theme: Theme, writer: Writer, lang: str, where: str) -> list[Sentence]:
    """Opening (what the family does), why and when it is chosen, the evidence and the claims' verdicts with
    their contrary results, the newest paper on it, how it is measured, and the problem it leaves open."""
    out: list[Sentence] = []
    by_role = {role: [u for u in theme.units if u.role == role] for role in ROLES}
    # Room is kept for the newest paper and the open problem: they are what a reader of related work needs most.
    reserve = bool(theme.newer) + bool(by_role["tension"])
    for sentence in theme.opening:
        writer.add(out, standalone(sentence, lang, "families"), f"{where}/families")
    for unit in by_role["why"][:1] + by_role["evidence"][:2]:
        for _, sentence in unit.parts:
            if len(out) < MAX_SENTENCES - reserve:
                writer.add(out, sentence, unit.source)
    for unit in sorted(by_role["claim"], key=lambda u: not u.own)[:2]:
        room = min(3 if unit.own else 2, MAX_SENTENCES - reserve - len(out))
        _claim_into(out, unit, writer, lang, conditions=not by_role["tension"], budget=room)
    for paper in theme.newer:
        writer.add(out, _newer_sentence(paper, theme.text(), writer.assistant, lang), f"paper:{paper.arxiv_id}")
    for unit in by_role["benchmark"][:1] + by_role["tension"][:2]:
        for _, sentence in unit.parts:
            writer.add(out, sentence, unit.source)
    return out


def synthesis_draft(assistant: Assistant, topic: str, lang: str, k: int = 8) -> list[Paragraph]:
    """Paragraphs on a topic that has an overview: framing, then one argued paragraph per family, then the data
    and open problems no family takes."""
    knowledge = assistant.knowledge
    overview = knowledge.overviews[topic]
    intro, themes = _segment(overview, assistant, lang)
    if not themes:
        return []
    where = f"overview:{topic}"
    units: list[Unit] = []
    for part, role in (("choosing", "why"), ("evidence", "evidence"), ("benchmarks", "benchmark")):
        units += _units(getattr(overview.section(part), lang), lang, role, f"{where}/{part}")
    for claim in knowledge.claims:
        if topic in claim.topics[:2]:
            parts = claim_sentences(claim, lang)
            cites = {pid for _, text in parts for pid in cited_ids(text)}
            units.append(Unit("claim", parts, f"claim:{claim.id}", cites, claim.topics[0] == topic))
    tensions = [
        Unit(
            "tension", [("tension", standalone(s, lang, "open_problems"))], f"{where}/open_problems", set(cited_ids(s))
        )
        for s in sentences(getattr(overview.section("open_problems"), lang))
    ]
    # Benchmarks link no unit to a family, unless the topic is about benchmarks or its family is defined by one.
    benchmarks = (
        set()
        if topic == "benchmark"
        else (
            set(cited_ids(getattr(overview.section("benchmarks"), lang)))
            | {pid for pid, p in knowledge.papers.items() if p.topics[0] == "benchmark"}
        )
    )
    left = _assign(units, themes, benchmarks) + _assign(tensions, themes, benchmarks)
    cited = {pid for t in themes for pid in t.papers | t.reached} | {pid for s in intro for pid in cited_ids(s)}
    cited |= {pid for t in themes for u in t.units for pid in u.cites}
    _attach_newer(themes, topic, assistant, cited | {p for u in left for p in u.cites}, k)

    writer = Writer(assistant, lang)
    paragraphs: list[Paragraph] = []
    if intro:
        out: list[Sentence] = []
        for sentence in intro:
            writer.add(out, standalone(sentence, lang), f"{where}/families")
        paragraphs.append((short_label(knowledge, topic, lang), out))
    for theme in themes:
        paragraphs.append((theme.heading, _theme_paragraph(theme, writer, lang, where)))
    # What no family takes: how the topic is measured (benchmarks, field-wide evidence, its claims), then what
    # stays open.
    measured: list[Sentence] = []
    for role in ("benchmark", "evidence", "claim"):
        for unit in (u for u in left if u.role == role and u.own):
            said = False
            for part, sentence in unit.parts:
                if part == "condition" or (LEANING[lang].match(sentence) and not said):
                    continue
                said = writer.add(measured, sentence, unit.source)
    open_problems: list[Sentence] = []
    for unit in (u for u in left if u.role == "tension"):
        for _, sentence in unit.parts:
            writer.add(open_problems, sentence, unit.source)
    if len({pid for text, _ in open_problems for pid in cited_ids(text)}) >= 2:
        paragraphs += [
            (RELATED_WORK_LEFTOVER["evidence"][lang], measured),
            (RELATED_WORK_LEFTOVER["open"][lang], open_problems),
        ]
    else:  # one open problem is no paragraph of its own
        paragraphs.append(
            (RELATED_WORK_LEFTOVER["both" if open_problems else "evidence"][lang], measured + open_problems)
        )
    return _merge_thin(paragraphs)


def _merge_thin(paragraphs: list[Paragraph]) -> list[Paragraph]:
    """A paragraph citing fewer than two papers joins the one before it (or after it, when it comes first)."""
    merged: list[Paragraph] = []
    for label, out in paragraphs:
        if not out:
            continue
        if len({pid for s, _ in out for pid in cited_ids(s)}) < 2 and merged:
            merged[-1] = (merged[-1][0], merged[-1][1] + out)
        else:
            merged.append((label, out))
    if len(merged) > 1 and len({pid for s, _ in merged[0][1] for pid in cited_ids(s)}) < 2:
        merged[1] = (merged[1][0], merged[0][1] + merged[1][1])
        merged = merged[1:]
    return merged


# ------------------------------------------------------------------------- without an overview: shared ground


def _clean(value: str) -> str:
    """'PrefEval (3,000 preference-query pairs, 20 topics)' -> 'PrefEval'."""
    return re.sub(r"\s*\([^)]*\)", "", value).strip()


def _join(items: list[str], lang: str) -> str:
    if lang == "zh":
        return "、".join(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _shared_groups(papers: list[Paper]) -> list[tuple[str, str, list[Paper]]]:
    """(kind, value, papers): greedily, the dataset, method or keyword that the most remaining papers share."""
    remaining = list(papers)
    groups = []
    while len(remaining) >= 2:
        counts: dict[tuple[str, str], list[Paper]] = {}
        shown: dict[tuple[str, str], str] = {}
        for paper in remaining:
            for kind, values in (("dataset", paper.datasets), ("method", paper.methods), ("keyword", paper.keywords)):
                for value in {_clean(v).lower(): _clean(v) for v in values if _clean(v)}.items():
                    counts.setdefault((kind, value[0]), []).append(paper)
                    shown.setdefault((kind, value[0]), value[1])
        rank = {"dataset": 0, "method": 1, "keyword": 2}
        best = max(counts.items(), key=lambda item: (len(item[1]), -rank[item[0][0]]), default=None)
        if best is None or len(best[1]) < 2:
            break
        groups.append((best[0][0], shown[best[0]], best[1]))
        remaining = [p for p in remaining if p not in best[1]]
    by_topic: dict[str, list[Paper]] = {}
    for paper in remaining:
        by_topic.setdefault(paper.topics[0], []).append(paper)
    groups += [("topic", topic, members) for topic, members in by_topic.items() if len(members) >= 2]
    return groups


def _distinct(paper: Paper, field_name: str, shared: str, name: str) -> str:
    """The paper's first method (or dataset) that is neither its own name nor what its group shares."""
    skip = {name.lower(), shared.lower(), *(alias.lower() for alias in paper.aliases)}
    return next((_clean(v) for v in getattr(paper, field_name) if _clean(v).lower() not in skip), "")


def grouped_draft(assistant: Assistant, papers: list[AnyPaper], query: str, lang: str) -> list[Paragraph]:
    """Paragraphs for papers no overview covers: each group says what its papers share, where they part ways,
    what they found, and what stays open (a claim's conditions on them, or a finding that names a limit)."""
    knowledge = assistant.knowledge
    curated = [p for p in papers if isinstance(p, Paper)]
    writer = Writer(assistant, lang)
    paragraphs: list[Paragraph] = []
    names = assistant.name_index

    def cite(paper: Paper) -> str:
        return f"[arXiv:{paper.arxiv_id}]"

    for kind, value, members in _shared_groups(curated):
        members = members[:4]
        label = knowledge.topic_label(value, lang) if kind == "topic" else value
        attr = label.lower() if kind == "topic" and lang == "en" else label
        out: list[Sentence] = []
        opening = RELATED_WORK_GROUP[kind][lang].format(
            names=_join([name_of(p, names) for p in members], lang), attr=attr, cites=" ".join(cite(p) for p in members)
        )
        writer.add(out, opening, "papers:" + ",".join(p.arxiv_id for p in members))
        a, b = members[0], members[1]
        differ, field_name = ("differ_data", "datasets") if kind == "method" else ("differ_methods", "methods")
        x, y = (_distinct(p, field_name, value, name_of(p, names)) for p in (a, b))
        if x and y and x.lower() != y.lower():
            writer.add(
                out,
                RELATED_WORK_GROUP[differ][lang].format(
                    a=name_of(a, names), ca=cite(a), x=x, b=name_of(b, names), cb=cite(b), y=y
                ),
                f"papers:{a.arxiv_id},{b.arxiv_id}",
            )
        for paper in members[:2]:
            finding = best_finding(paper, query, lang).rstrip(".。")
            writer.add(out, f"{finding} {cite(paper)}{'。' if lang == 'zh' else '.'}", f"paper:{paper.arxiv_id}")
        ranked = [p.arxiv_id for p in members]
        claim, _ = assistant.synthesis.best_claim(" ".join([query, *(p.title for p in members)]), None, ranked)
        if claim is not None and set(claim.papers()) & set(ranked):
            for role, sentence in claim_sentences(claim, lang):
                if role == "condition" and not ANAPHORA[lang].match(sentence):  # "Both studies ..." needs its claim
                    writer.add(out, sentence, f"claim:{claim.id}")
        else:
            for paper in members[2:] + members[:2]:
                limits = [f for f in paper.key_findings if OPEN_CUES.search(f)] if lang == "en" else []
                if limits:
                    writer.add(out, f"{limits[0].rstrip('.')} {cite(paper)}.", f"paper:{paper.arxiv_id}")
                    break
        paragraphs.append((label, out))
    return _merge_thin(paragraphs)


# ------------------------------------------------------------------------------------------------- the draft


def overview_topic(assistant: Assistant, topic: str) -> str | None:
    """The topic whose overview the request is about, when the synthesis index is sure of one."""
    ranked = [h.arxiv_id for h in assistant.index.search(topic, k=10)]
    found, sure = assistant.synthesis.best_topic(topic, ranked)
    return found if sure and found in assistant.knowledge.overviews else None


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


def compose_draft(assistant: Assistant, topic: str, ids: list[str] | None, lang: str, k: int) -> list[Paragraph]:
    """The draft without a model: themed from the topic's overview and claims, else grouped by shared ground."""
    papers = topic_papers(assistant, topic, ids, k)
    covered = None if ids else overview_topic(assistant, topic)
    paragraphs = synthesis_draft(assistant, covered, lang, k) if covered else []
    if len(paragraphs) < 2:
        paragraphs = grouped_draft(assistant, papers, topic, lang)
    if not paragraphs:  # nothing shared at all: one paragraph of the papers' own findings
        out: list[Sentence] = []
        writer = Writer(assistant, lang)
        for paper in papers:
            finding = best_finding(paper, topic, lang).rstrip(".。") if isinstance(paper, Paper) else paper.title
            writer.add(
                out, f"{finding} [arXiv:{paper.arxiv_id}]{'。' if lang == 'zh' else '.'}", f"paper:{paper.arxiv_id}"
            )
        paragraphs = [(topic or RELATED_WORK_TITLE[lang], out)]
    return paragraphs


def _text(out: list[Sentence], lang: str) -> str:
    return ("" if lang == "zh" else " ").join(s for s, _ in out)


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
    """A related-work draft on topic: text in the style, the checked draft, the cited ids and their BibTeX, and
    each sentence with the overview part, claim or paper it came from."""
    if style not in STYLES:
        raise PlraError(f"--style {style!r} is not known: use one of {', '.join(STYLES)}")
    check_lang(lang)
    knowledge = assistant.knowledge
    composed = compose_draft(assistant, topic, ids, lang, k)
    paragraphs = [(label, _text(out, lang)) for label, out in composed]
    dropped, from_model, errors = 0, False, []
    if llm is not None:
        # The model writes from the same material the composer argues with, and the summaries of its papers.
        cited = list(dict.fromkeys(pid for _, text in paragraphs for pid in cited_ids(text)))[: max(k, 2)]
        hits = [
            SearchHit(arxiv_id=p.arxiv_id, title=p.title, year=p.year, score=0.0, snippet="")
            for p in lookup(knowledge, ids or cited)
        ]
        material = "\n\n".join(f"{label}: {text}" for label, text in paragraphs)[:3000]
        instructions = RELATED_WORK_MATERIAL[lang].format(material=material) + "\n\n" + RELATED_WORK_INSTRUCTIONS[lang]
        raw = llm.chat(build_messages(topic or "", hits, knowledge, lang, instructions))
        _, _, errors = check_citations(raw, knowledge, {})
        rejected = {e["cited"] for e in errors}  # then a sentence whose only citation was rejected is dropped too
        raw = MARKER.sub(lambda m: "" if m.group(1) in rejected else m.group(), raw)
        text, dropped = cited_sentences(raw, knowledge)
        if len(SENTENCES.split(text)) >= 2:
            paragraphs, from_model = [(topic or RELATED_WORK_TITLE[lang], text)], True
            composed = [(topic or RELATED_WORK_TITLE[lang], [(s, "model") for s in SENTENCES.split(text) if s])]
    _, citations, _ = check_citations("\n\n".join(text for _, text in paragraphs), knowledge, {})
    cited_papers = {c.arxiv_id: knowledge.get(c.arxiv_id) for c in citations}
    return {
        "topic": topic,
        "style": style,
        "lang": lang,
        "text": render(paragraphs, cited_papers, style, lang),
        "draft": "\n\n".join(text for _, text in paragraphs),
        "paragraphs": [
            {"label": label, "sentences": [{"text": s, "source": src} for s, src in out]} for label, out in composed
        ],
        "cited": list(cited_papers),
        "bibtex": bibtex(list(cited_papers.values())),
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


WRITE_MARKER = ".plra-write"  # in every folder `plra write --out` wrote: only there are its files replaced


def _check_out(out: Path | None, name: str) -> None:
    """--out is a folder (new, or one that exists) where writing name and references.bib replaces no file a
    person made: each is absent, or the folder is one plra write wrote before. Checked before any work."""
    if out is None:
        return
    check_folder_out(out, "--out", f"{name} and references.bib")
    taken = [out / n for n in (name, "references.bib") if (out / n).exists()]
    if taken and not (out / WRITE_MARKER).exists():
        raise PlraError(
            f"--out {out}: {taken[0]} exists and plra write did not write it; give a new or empty "
            f"folder, or move the file (nothing was changed)"
        )


def _write_out(out: Path | None, name: str, text: str, bib: str) -> None:
    if out is None:
        return
    _check_out(out, name)
    out.mkdir(parents=True, exist_ok=True)
    # The marker first: files plra wrote and a crash left half done are plra's to replace on the next run.
    (out / WRITE_MARKER).write_text("written by plra write; its files here are replaced by the next run\n")
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
    local: bool = LOCAL_OPTION,
    out: Path = typer.Option(None, "--out", "-o", help="folder for related-work.tex|md and references.bib"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object: text, draft, cited, bibtex, ..."),
) -> None:
    """Draft a related-work section where every sentence cites a knowledge-base paper, with its BibTeX."""
    from plra.assistant.answer import model_for

    name = f"related-work.{'md' if style == 'plain' else 'tex'}"
    _check_out(out, name)
    ids = [i for i in (papers or "").split(",") if i.strip()]
    result = related_work(Assistant(), topic or "", ids, style, lang, None if no_llm else model_for(endpoint, local), k)
    _write_out(out, name, result["text"], result["bibtex"])
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
    _check_out(out, "outline.md")
    result = outline(Assistant(), topic, lang)
    text = outline_markdown(result)
    _write_out(out, "outline.md", text, result["bibtex"])
    typer.echo(json.dumps(result, ensure_ascii=False) if as_json else text)
