"""One answer plan per intent, and the composer that writes it as cited prose without a model.

The plan is what the answer must contain: the glossary entry for a definition, a table of the named
papers for a comparison, a paper's card, a reading path for a newcomer. `compose` writes it from the
knowledge base alone (every sentence cites its paper as [arXiv:ID], checked afterwards like a model's
answer); a model writes from the same plan, and `degenerate` says when its output must give way to the
composer's.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field

from plra.assistant.intents import BENCHMARK_WORDS
from plra.assistant.support import supported
from plra.assistant.synthesis import GENERIC, NEGATED
from plra.knowledge.cite import surname
from plra.knowledge.kb import KnowledgeBase
from plra.knowledge.names import NameIndex
from plra.knowledge.retrieval import tokenize
from plra.prompts import COMPOSE, PLAN_INSTRUCTIONS, SYNTHESIS
from plra.types import Claim, GlossaryTerm, Paper, ReadingPath

FINDING_CUES = re.compile(r"表明|发现|显示|证明|结果|提升|优于|降低|说明")
OPEN_CUES = re.compile(
    r"\b(remain|remains|still|fail|fails|struggle|struggles|limited|limitation|gap|forget|ignore|drop|worse|"
    r"risk|bias|leak|hard|challenge|unclear|lack)\w*|仍|尚|不足|局限|挑战|遗忘|忽略|风险|偏差|困难|缺乏|下降"
)


# The sentences of an entry that set up the problem rather than report what the paper found or built.
MOTIVATION = re.compile(
    r"^(However|Existing|Despite|While|Although|As|Most|Current|Prior)\b|"
    r"\b(existing|current|prior|most) (methods|approaches|work|benchmarks|models|systems) (often|typically|mainly|"
    r"usually|fail|ignore|overlook|lack|rely|assume|focus)|"
    r"但现有|然而|现有[^，。；]{0,16}(主要|往往|通常|大多|难以|无法|忽视|忽略|缺乏)|为此|^(随着|尽管|虽然|目前)|"
    r"^[^，。]{0,20}(是|作为)[^，。]{0,20}(核心|关键|重要)"
)


@dataclass
class Plan:
    intent: str
    lang: str
    papers: list[str]  # arXiv ids, named ones first
    named: list[str] = field(default_factory=list)  # the papers the question (or its history) names
    term: GlossaryTerm | None = None
    path: ReadingPath | None = None
    claim: Claim | None = None  # the evidence claim that answers the question (plra.assistant.synthesis)
    topic: str | None = None  # the topic whose overview answers it
    sections: tuple[str, ...] = ()  # which parts of that overview
    other_term: GlossaryTerm | None = None  # a difference question's second term: the answer contrasts the two
    year: int | None = None  # the year a recent-work question names ("2026 年"): only that year's papers answer
    phrase: str | None = None  # a definition asked of a phrase no glossary term covers ("persona sparsity")
    lead: str | None = None  # an overview sentence that answers first (a difference it states), then its part


def cite(arxiv_id: str) -> str:
    return f"[arXiv:{arxiv_id}]"


def lower_first(text: str) -> str:
    """'Adding items ...' -> 'adding items ...' inside a sentence; names and acronyms ('LaMP', 'GPT-4') stay."""
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if first[:1].isupper() and (first[1:].islower() or first == "A") else text


def best_finding(paper: Paper, question: str, lang: str, cues: re.Pattern | None = None) -> str:
    """The finding that best fits the question: English key findings, or a sentence of the Chinese summary."""
    if lang == "zh":
        sentences = [s for s in re.split(r"(?<=[。！？])", paper.summary_zh) if s.strip()]
    else:
        sentences = list(paper.key_findings)
    wanted = set(tokenize(question))

    def fit(sentence: str) -> tuple[bool, int, int, int]:
        cue = bool((cues or FINDING_CUES).search(sentence)) if (cues or lang == "zh") else 0
        # A paper's motivation ("existing reward models ignore ...") is no finding, whatever words it shares;
        # an open-problems plan (cues given) wants exactly those sentences.
        plain = cues is not None or not MOTIVATION.search(sentence)
        return (plain, cue, len(wanted & set(tokenize(sentence))), -sentences.index(sentence))

    return max(sentences, key=fit).strip().rstrip("。.") if sentences else paper.title


def name_of(paper: Paper, names: NameIndex) -> str:
    """The short name a sentence uses (LaMP); a paper with none is named by its authors, never by a pasted title."""
    name = names.display_name(paper.arxiv_id)
    if name != paper.title or len(paper.title.split()) <= 4:
        return name
    first = surname(paper.authors[0])
    return first if len(paper.authors) == 1 else f"{first} et al."


def sentence(template_key: str, lang: str, **values: str) -> str:
    return COMPOSE[template_key][lang].format(**values)


def _join(items: list[str], lang: str) -> str:
    items = [i for i in items if i]
    if lang == "zh":
        return "、".join(items)
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1] if items else ""


# Openings that make a paper's own sentence read as pasted ("This paper ...", "本文提出 ...", "结果显示，...").
SELF_REFERENCE = re.compile(
    r"^(this (paper|work|survey|study|method)|we|it)\b\s*|^(本文|本综述|该文|这篇论文|本研究|该方法|它)(自称)?", re.I
)
# "The testbed ...", "该基准 ...": a finding whose subject is the paper's artefact, unnamed.
THE_THING = re.compile(r"^The (testbed|benchmark|dataset|method|model|framework|approach|system|survey|study)\b")
THE_THING_ZH = re.compile(r"^该(基准|数据集|方法|模型|框架|系统|测试平台)")
LEAD_IN = re.compile(r"^(结果(显示|表明)|实验(显示|表明)|研究(显示|表明)|在[^，,]{0,30}上的实验表明)[，,：:]?\s*")


def claim_of(paper: Paper, question: str, names: NameIndex, lang: str, cues: re.Pattern | None = None) -> str:
    """A paper's best finding written as the claim it makes, the paper named by its short name where the
    entry says "this paper" or "本文", without the entry's lead-in ("结果显示，")."""
    finding = best_finding(paper, question, lang, cues).strip()
    finding = LEAD_IN.sub("", finding)
    name = name_of(paper, names)
    if lang == "en" and (thing := THE_THING.match(finding)):  # "The testbed contains ..." -> "PERSONA's testbed"
        finding = f"{name}'s {thing.group(1)}{finding[thing.end() :]}"
    elif lang == "zh" and (thing := THE_THING_ZH.match(finding)):
        finding = f"{name} 的{thing.group(1)}{finding[thing.end() :]}"
    if SELF_REFERENCE.search(finding):
        # A Latin name in Chinese text keeps a space before the Chinese that follows it.
        subject = f"{name} " if lang == "en" or name[-1:].isascii() else name
        finding = SELF_REFERENCE.sub(subject, finding, count=1)
        if lang == "zh" and finding[len(subject) :].startswith(("首个", "第一")):  # "X 首个系统梳理" -> "X 是首个"
            finding = f"{subject}是{finding[len(subject) :]}"
    # "Agent4Rec 提出 Agent4Rec：一个……": the name said twice once "本文" became the name.
    finding = re.sub(rf"^{re.escape(name)}\s*提出\s*{re.escape(name)}[：:]\s*", f"{name} 是", finding)
    return finding[:1].upper() + finding[1:] if lang == "en" else finding


def _claims(papers: list[Paper], question: str, names: NameIndex, lang: str, cues=None) -> list[str]:
    """One cited sentence per paper, the finding as the subject and the paper as its source: no connector
    phrases ("X also reports", "同样指出") stringing the papers together."""
    out = []
    for paper in papers:
        text = claim_of(paper, question, names, lang, cues).rstrip("。.")
        out.append(f"{text}{cite(paper.arxiv_id)}。" if lang == "zh" else f"{text} {cite(paper.arxiv_id)}.")
    return out


def by_idea(papers: list[Paper], question: str, names: NameIndex, lang: str, cues=None) -> list[str]:
    """Paragraphs by idea: the papers grouped by the topic they share first, one paragraph per group."""
    groups: dict[str, list[Paper]] = {}
    for paper in papers:
        groups.setdefault(paper.topics[0] if paper.topics else "", []).append(paper)
    return [" ".join(_claims(group, question, names, lang, cues)) for group in groups.values()]


def _entry_text(paper: Paper) -> str:
    return " ".join([paper.title, *paper.aliases, paper.summary_en, paper.summary_zh, *paper.keywords,
                     *paper.key_findings, *paper.methods, *paper.datasets])  # fmt: skip


LIST_WORDS = (  # how a list is asked: no subject, so no paper need use these words
    "list give some few exist exists studies study work works address addresses knowledge base your "
    "列 列出 几篇 篇 一些 相关 工作 有没有 研究 这个 知识库 "  # in a first turn or a follow-up ("研究这个")
    "representative key important classic notable 代表 代表性 经典 重要 请 关于 "
    "read only time one two should 挑 一两篇 看看 系统 想"  # "想挑一两篇系统看看" picks, it names no subject
)
_KNOWN: dict[int, set[str]] = {}
LIST_SHOWN = 6  # papers a list names: a field's representative set is rarely fewer


def known_words(kb: KnowledgeBase) -> set[str]:
    """Every word of every curated entry (computed once per knowledge base)."""
    if id(kb) not in _KNOWN:
        _KNOWN[id(kb)] = {w for p in kb.papers.values() for w in tokenize(_entry_text(p))}
    return _KNOWN[id(kb)]


def mentions(paper: Paper, term: GlossaryTerm) -> bool:
    """Does the paper's entry speak of the term (by its name, an alias or a Chinese name)?"""
    text = " ".join([paper.title, paper.summary_en, paper.summary_zh, *paper.keywords, *paper.key_findings]).lower()
    return any(n.lower() in text for n in (term.term, *term.aliases, *term.names_zh) if len(n) >= 3)


def _first_sentence(text: str, lang: str) -> str:
    return (text.split("。")[0] + "。") if lang == "zh" else re.split(r"(?<=\.)\s", text.strip())[0]


def _is(name: str, definition: str, lang: str) -> str:
    """'个性化对齐指让模型……' / 'personalized alignment is the problem of ...': a term and its definition."""
    if lang == "en":
        return f"{name} is {lower_first(definition.rstrip('.'))}"
    if definition.startswith(("指", "是", "即")):
        return f"{name}{definition.rstrip('。')}"
    body = definition.rstrip("。")
    return f"{name}的{body}" if body.startswith("目标") else f"{name}——{body}"


def _term_name(term: GlossaryTerm, lang: str) -> str:
    return (term.names_zh or [term.term])[0] if lang == "zh" else term.term


def _cross_sentence(a: GlossaryTerm, b: GlossaryTerm, lang: str) -> str | None:
    """A sentence of one definition that speaks of the other term: where the glossary states the difference."""
    for this, other in ((a, b), (b, a)):
        text = this.zh if lang == "zh" else this.en
        others = [n.lower() for n in (other.term, *other.aliases, *other.names_zh) if len(n) >= 3]
        split = re.split(r"(?<=。)" if lang == "zh" else r"(?<=\.)\s", text)
        for line in split[1:]:  # the first sentence is the definition itself
            pronoun = r"^(It|This)\b" if lang == "en" else r"^(它|该概念|这一概念)"
            # Only a sentence whose subject is the term itself: one that says "it" midway reads as orphaned.
            if any(n in line.lower() for n in others) and re.match(pronoun, line.strip()):
                return re.sub(pronoun, _term_name(this, lang), line.strip())
    return None


def compose_difference(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    """The difference first (where the glossary states it), then what each term names, then a study of each."""
    a, b, lang = plan.term, plan.other_term, plan.lang
    assert a is not None and b is not None
    name_a, name_b = _term_name(a, lang), _term_name(b, lang)
    def_a, def_b = (_first_sentence(t.zh if lang == "zh" else t.en, lang) for t in (a, b))
    if lang == "zh":
        contrast = f"{name_a}与{name_b}的区别在于：{_is(name_a, def_a, lang)}；而{_is(name_b, def_b, lang)}。"
    else:
        contrast = (f"{name_a} and {name_b} differ: {_is(name_a.lower(), def_a, lang)}, "
                    f"while {_is(name_b.lower(), def_b, lang)}.")  # fmt: skip
    parts = [x for x in [_cross_sentence(a, b, lang), contrast] if x]
    studied = [kb.papers[t.papers[0]] for t in (a, b) if t.papers and t.papers[0] in kb.papers]
    return " ".join(parts) + ("\n\n" + " ".join(by_idea(studied, question, names, lang)) if studied else "")


def _cited_inside(text: str, arxiv_id: str, kb: KnowledgeBase, lang: str) -> tuple[str, str]:
    """The text with the paper's citation placed in the first of its sentences the paper's entry supports, and
    that citation ('' when no sentence is supported: the text goes uncited)."""
    pieces = re.split(r"(?<=。)" if lang == "zh" else r"(?<=\.)(?=\s)", text.strip())
    for i, piece in enumerate(pieces):
        if piece.strip() and supported(piece, kb, arxiv_id):
            body = piece.rstrip()
            stop = body[-1] if body[-1:] in ".。" else ""
            body = body[: len(body) - len(stop)]
            pieces[i] = f"{body}{'' if lang == 'zh' else ' '}{cite(arxiv_id)}{stop}"
            return "".join(pieces), cite(arxiv_id)
    return text, ""


DEFINING = re.compile(
    r"\b(call|calls|called|term|terms|termed|refers? to|defined?|defines|known as|dubbed|i\.e\.)\b"
    r"|称为|称之为|即|指的?是|定义",
    re.I,
)


def phrase_sentence(paper: Paper, phrase: str, lang: str) -> str | None:
    """The sentence of a paper's entry (key findings, then summaries) that uses the phrase, or None."""
    pool = [*paper.key_findings, *_sentences(paper.summary_en, "en")]
    pool = [*_sentences(paper.summary_zh, "zh"), *pool] if lang == "zh" else pool
    wanted = phrase.lower()
    # Only a sentence that names or defines the phrase ("a problem the authors call persona sparsity"): one that
    # merely uses it ("persona drift detection") defines nothing.
    return next((s for s in pool if wanted in s.lower() and DEFINING.search(s)), None)


def compose_phrase(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    """A phrase the glossary lacks, defined by the sentence of the paper that uses it; other papers after."""
    papers = [kb.papers[p] for p in plan.papers if p in kb.papers][:4]
    first = papers[0]
    said = phrase_sentence(first, plan.phrase or "", plan.lang) or best_finding(first, question, plan.lang)
    lead = f"{said.rstrip('.。')}{cite(first.arxiv_id)}。" if plan.lang == "zh" else (
        f"{said.rstrip('.')} {cite(first.arxiv_id)}.")  # fmt: skip
    return "\n\n".join([lead, *by_idea(papers[1:], question, names, plan.lang)])


def compose_definition(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    """The glossary's definition first; the papers that study the term after it, grouped by idea."""
    if plan.other_term is not None:
        return compose_difference(plan, kb, names, question)
    if plan.term is None and plan.phrase:
        return compose_phrase(plan, kb, names, question)
    term = plan.term
    assert term is not None
    definition = term.zh if plan.lang == "zh" else term.en
    studied = [kb.papers[p] for p in dict.fromkeys([*term.papers, *plan.papers]) if p in kb.papers][:3]
    shown = _term_name(term, plan.lang)
    # The glossary is the definition's source; a paper is cited inside the one sentence of it that its entry backs
    # (after a full stop a citation stands alone, a "sentence" with no words that the support check drops).
    lead = ""
    if studied:
        definition, lead = _cited_inside(definition, studied[0].arxiv_id, kb, plan.lang)
    first = sentence("definition", plan.lang, term=shown, definition=definition, cite="")
    rest = by_idea(studied[1:] if lead else studied, question, names, plan.lang)
    return "\n\n".join([first.strip(), *rest])


def _cell(values: list[str], arxiv_id: str, limit: int = 3) -> str:
    return f"{'; '.join(values[:limit]) or '—'} {cite(arxiv_id)}"


def _own_methods(paper: Paper, names: NameIndex) -> list[str]:
    """The techniques a paper's entry lists, without its own name (OPPU's methods start with "OPPU")."""
    own = {name_of(paper, names).lower(), *(a.lower() for a in paper.aliases)}
    return [m for m in paper.methods if m.lower() not in own][:2]


def _axes(papers: list[Paper], kb: KnowledgeBase, names: NameIndex, lang: str) -> list[str]:
    """The comparison on shared axes, each paper in each sentence: the line of work they share, what each
    does (its methods), and what each is evaluated on, the papers that share data grouped."""
    shown = _join([name_of(p, names) for p in papers], lang)
    out = []
    shared = [t for t in papers[0].topics if all(t in p.topics for p in papers) and t in kb.topics]
    if shared:
        # Uncited: the taxonomy places them there, and a topic label's words need not be in each entry.
        topic = kb.topic_label(shared[0], lang)
        out.append(sentence("compare_topic", lang, names=shown, topic=lower_first(topic) if lang == "en" else topic,
                            all="both" if len(papers) == 2 else "all"))  # fmt: skip
    methods = [(p, _own_methods(p, names)) for p in papers]
    if sum(bool(m) for _, m in methods) >= 2:
        items = [sentence("compare_method_item", lang, name=name_of(p, names), methods=_join(m, lang),
                          cite=cite(p.arxiv_id)) for p, m in methods if m]  # fmt: skip
        out.append(sentence("compare_methods", lang, items=("；" if lang == "zh" else "; ").join(items)))
    groups: dict[tuple[str, ...], list[Paper]] = {}
    for p in papers:  # a benchmark "evaluated on" itself says nothing: its own name is no data
        data = [d for d in p.datasets if d.lower() != name_of(p, names).lower()][:3]
        if data:
            groups.setdefault(tuple(data), []).append(p)
    if len(groups) >= 1 and sum(len(g) for g in groups.values()) >= 2:
        items = [sentence("compare_data_item", lang, names=_join([name_of(p, names) for p in group], lang),
                          data=_join(list(data), lang), cites="".join(cite(p.arxiv_id) for p in group),
                          be="are" if len(group) > 1 else "is")
                 for data, group in groups.items()]  # fmt: skip
        out.append(sentence("compare_data", lang, items=("；" if lang == "zh" else "; ").join(items)))
    return out


def compose_compare(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    """Every compared paper on the same axes (line of work, method, data), then what each finds, then the table.
    No stock "A and B differ in what they show": papers that agree would be framed as disagreeing."""
    papers = [kb.papers[p] for p in (plan.named if len(plan.named) >= 2 else plan.papers)[:4] if p in kb.papers]
    lang = plan.lang
    header = COMPOSE["compare_header"][lang]
    rows = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    for p in papers:
        finding = best_finding(p, question, lang)
        rows.append(f"| {name_of(p, names)} ({p.year}) | {_cell(p.methods, p.arxiv_id)} "
                    f"| {_cell(p.datasets, p.arxiv_id)} "
                    f"| {_cell(p.metrics, p.arxiv_id)} | {finding} {cite(p.arxiv_id)} |")  # fmt: skip
    if len(papers) < 2:
        prose = [sentence("compare_intro", lang, names=name_of(papers[0], names))] if papers else []
        return " ".join(prose) + "\n\n" + "\n".join(rows)
    axes = " ".join(_axes(papers, kb, names, lang))
    findings = " ".join(_claims(papers, question, names, lang))
    return "\n\n".join(x for x in [axes, findings, "\n".join(rows)] if x)


# How a question about one paper is put: these words ask for the card, not for a point in it.
PAPER_ASKING = (
    "find found finding findings show paper tell about summarize summarise summary describe explain propose do did "
    "does is are it its this that in on of the what which how why differ difference between "
    "论文 这篇 介绍 一下 讲 发现 结论 主要 做了 什么"
)


def asked_point(paper: Paper, question: str, lang: str) -> list[str]:
    """The entry's sentences (key findings, then the summary) that answer the specific point a question about a
    paper asks ("the user-based vs the time-based split", "does it hold for longer contexts"), best first; [] when
    it asks for the card as a whole."""
    own = set(tokenize(" ".join([paper.title, *paper.aliases, "arxiv"])))
    question = re.sub(r"\s*(?:\(about: .*\)|（指：.*）)\s*$", "", question)  # a follow-up's note of its paper
    wanted = {w for w in tokenize(question) if not w.isdigit()} - set(tokenize(GENERIC + " " + PAPER_ASKING)) - own
    if not wanted:
        return []
    summary = paper.summary_zh if lang == "zh" else paper.summary_en
    pool = _sentences(summary, lang) if lang == "zh" else [*paper.key_findings, *_sentences(summary, lang)]
    scored = [(len(wanted & set(tokenize(s))), -i, s) for i, s in enumerate(pool)]
    need = max(2, (len(wanted) + 1) // 2)  # one shared word ("model") is no answer
    return [s for n, _, s in sorted(scored, reverse=True) if n >= min(need, len(wanted))][:2]


def compose_paper(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    paper = kb.papers[plan.named[0] if plan.named else plan.papers[0]]
    lang = plan.lang
    summary = paper.summary_zh if lang == "zh" else paper.summary_en
    # The asked point first, in the entry's own sentences; the card after it, without those sentences again.
    point = asked_point(paper, question, lang)
    for line in point:
        summary = summary.replace(line, "")
    answer = " ".join(f"{line.rstrip('.。')}{cite(paper.arxiv_id)}。" if lang == "zh"
                      else f"{line.rstrip('.')} {cite(paper.arxiv_id)}." for line in point)  # fmt: skip
    lead = sentence("paper_lead", lang, title=paper.title, venue=paper.venue or "arXiv", year=str(paper.year),
                    cite=cite(paper.arxiv_id))  # fmt: skip
    # Key findings the summary does not already state (a finding said twice reads as a template).
    said = set(tokenize(summary))
    fresh = [f for f in paper.key_findings[:3]
             if len(set(tokenize(f)) - said) > len(set(tokenize(f))) / 3 and f not in point]  # fmt: skip
    findings = "" if lang == "zh" else " ".join(f"{f.rstrip('.')} {cite(paper.arxiv_id)}." for f in fresh)
    facts = [
        COMPOSE[key][lang].format(values=_join(values[:4], lang), cite=cite(paper.arxiv_id))
        for key, values in (
            ("paper_methods", paper.methods),
            ("paper_data", paper.datasets),
            ("paper_metrics", paper.metrics),
        )
        if values
    ]
    summary = " ".join([*facts, summary.strip()])  # the facts first: a follow-up asks for data or metrics
    related = [kb.papers[r] for r in paper.related if r in kb.papers][:2]
    tail = (
        sentence("paper_related", lang, names=_join([f"{name_of(r, names)} {cite(r.arxiv_id)}" for r in related], lang))
        if related
        else ""
    )
    card = " ".join(x for x in [lead, summary.strip(), findings, tail] if x)
    return f"{answer}\n\n{card}" if answer else card


PICK_FEW = re.compile(
    r"\bone or two\b|\bonly (have )?time for\b|\bwhich (one|two)\b|一两篇|一两本|挑(一|两|几)|选(一|两)篇", re.I
)
SURVEY_WORDS = re.compile(r"\bsurveys?\b|\breviews? of\b|综述", re.I)


def is_survey(paper: Paper) -> bool:
    """A survey by its topic, or by its title (a survey filed under its subject's topic)."""
    return "survey" in paper.topics or bool(re.search(r"\bsurvey\b|\breview\b|综述", paper.title, re.I))


def compose_list(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    """Only items of the asked kind: the papers that speak of the named term, benchmarks when benchmarks are asked
    for; the answer names them first, then says in a line each what each one is."""
    papers = [kb.papers[p] for p in plan.papers if p in kb.papers]
    if plan.term is not None:  # the term's own papers (the glossary lists them) and those that speak of it
        on_term = [p for p in papers if p.arxiv_id in plan.term.papers or mentions(p, plan.term)]
        papers = on_term if len(on_term) >= 2 else papers
    if BENCHMARK_WORDS.search(question) and len(benchmarks := [p for p in papers if "benchmark" in p.topics]) >= 2:
        papers = benchmarks
    if SURVEY_WORDS.search(question) and (surveys := [p for p in papers if is_survey(p)]):
        papers = surveys  # "which surveys on memory?": a system or a study is not a survey
    # The question's own words beyond the field's and the term's ("tutoring" in "papers on personalized LLM
    # tutoring"): a paper whose entry has none of them is not on what is asked, and an empty list says so.
    asked = GENERIC + " " + LIST_WORDS + " " + (" ".join([plan.term.term, *plan.term.names_zh]) if plan.term else "")
    generic = set(tokenize(asked))
    specific = (set(tokenize(question)) - generic) & known_words(kb)  # "列几篇" is no subject: words papers use
    if specific and plan.term is None:  # a named term is the subject already: its papers need no more words
        # the papers that hold most of the asked words: a wide pool holds many with one common word
        held = {p.arxiv_id: len(specific & set(tokenize(_entry_text(p)))) for p in papers}
        most = max(held.values(), default=0)
        papers = [p for p in papers if held[p.arxiv_id] and 2 * held[p.arxiv_id] >= most]
    papers = papers[:LIST_SHOWN]
    if not papers:
        return COMPOSE["nothing"][plan.lang]
    shown = _join([name_of(p, names) for p in papers], plan.lang)
    shown = shown.rstrip(".") if plan.lang == "en" else shown  # "Zhang et al." before the closing period
    n = str(len(papers)) + ("" if plan.lang == "zh" else (" paper" if len(papers) == 1 else " papers"))
    lines = [sentence("list_intro", plan.lang, n=n, names=shown)]
    for paper in papers:
        text = claim_of(paper, question, names, plan.lang).rstrip("。.")
        lines.append(f"- {name_of(paper, names)} ({paper.year}) {cite(paper.arxiv_id)}: {text}")
    if PICK_FEW.search(question) and len(papers) >= 2:
        # "想挑一两篇系统看看": the asker wants a choice, not only the list; the two that fit the words best.
        fit = {p.arxiv_id: len(specific & set(tokenize(_entry_text(p)))) for p in papers}
        chosen = sorted(papers, key=lambda p: -fit[p.arxiv_id])[:2]  # stable: retrieval's order breaks ties
        shown = [name_of(p, names) for p in chosen]
        both = " 和 ".join(shown) if plan.lang == "zh" else _join(shown, "en")
        lines.append("\n" + sentence("list_pick", plan.lang, names=both))
    return "\n".join(lines)


def compose_open(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    if plan.topic in kb.overviews:
        return compose_sections(plan, kb, names, question)
    papers = [kb.papers[p] for p in plan.papers if p in kb.papers][:4]
    intro = sentence("open_intro", plan.lang)
    return " ".join([intro, *by_idea(papers, question, names, plan.lang, cues=OPEN_CUES)])


TARGET = re.compile(
    r"(?:\b(?:get|getting|move|moving|switch|switching) (?:in)?to|想做|想了解|想学|转向|转到|转做)(?P<to>.+)$",
    re.I | re.S,
)
PATH_STOP = {"了解", "应该", "开始", "想要", "希望", "如何", "怎么", "进入"}


def pick_path(paths: list[ReadingPath], question: str, lang: str) -> ReadingPath:
    """The reading path whose audience and title best match the background the question states."""
    # A background is a subject ("推荐系统"), not the verbs around it ("做", "想了解"), which one path's audience
    # sentence happened to share; and a path's title names its subject, so it counts twice.
    # The field's own words ("个性化", "LLM", "new") fit every path and say nothing about the reader.
    # Nor does the reader's stage ("a first-year PhD student"): "year" would pick the year's new-work path.
    stop = PATH_STOP | set(
        tokenize(
            GENERIC + " get start read come coming field area 入门 新手 阅读 顺序 "
            "year first phd student order list please 年级 博士 硕士 学生"
        )
    )
    # "推荐一些入门资料" asks for recommendations; only "推荐系统" names recommender systems as a background.
    question = re.sub(r"推荐(一些|几篇|几本|一下|点|些)|\brecommend (me )?(some|a few)\b", " ", question, flags=re.I)
    wanted = Counter(w for w in tokenize(question) if len(w) > 1 and w not in stop)
    # Where the reader wants to go ("get into role-playing agents") outweighs where they come from ("NLP dialogue
    # systems"): the path is for the destination, the background only breaks ties.
    if target := TARGET.search(question):
        wanted.update({w: 2 * c for w, c in Counter(tokenize(target.group("to"))).items() if w in wanted})

    def fit(path: ReadingPath) -> tuple[float, int]:
        audience = set(tokenize(f"{path.audience_en} {path.audience_zh}"))
        title = set(tokenize(f"{path.title_en} {path.title_zh}"))
        score = sum(c * ((w in audience) + 2 * (w in title)) for w, c in wanted.items())
        return (score, -paths.index(path))  # ties: the first path

    return max(paths, key=fit)


def compose_newcomer(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    path = plan.path
    assert path is not None
    lang = plan.lang
    title, audience = (path.title_zh, path.audience_zh) if lang == "zh" else (path.title_en, path.audience_en)
    lines = [sentence("path_intro", lang, title=title, audience=audience.rstrip("。.") or title)]
    for i, step in enumerate(path.steps, 1):
        paper = kb.papers.get(step.arxiv_id)
        if paper is None:
            continue
        why = step.why_zh if lang == "zh" else step.why_en
        lines.append(f"{i}. {name_of(paper, names)} ({paper.year}) {cite(paper.arxiv_id)}: {why}")
    return "\n".join(lines)


def compose_general(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    """The term's definition first when one is named; then the papers' findings, a paragraph per idea."""
    papers = [kb.papers[p] for p in plan.papers if p in kb.papers][:4]
    parts = [_first_sentence(plan.term.zh if plan.lang == "zh" else plan.term.en, plan.lang)] if plan.term else []
    if plan.term and parts and plan.lang == "zh" and parts[0].startswith("指"):
        parts[0] = _term_name(plan.term, "zh") + parts[0]  # "指……" alone lacks its subject
    parts += by_idea(papers, question, names, plan.lang)
    return "\n\n".join(parts) if parts else COMPOSE["nothing"][plan.lang]


def compose_evidence(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    """The claim's hedged verdict first (its evidence and numbers are in it), then when it holds."""
    claim = plan.claim
    if claim is None:  # no claim fits: the evidence part of the topic's overview
        return compose_sections(plan, kb, names, question)
    verdict, conditions = (claim.claim_zh, claim.conditions_zh) if plan.lang == "zh" else (claim.claim_en,
                                                                                       claim.conditions_en)  # fmt: skip
    parts = [verdict]
    for pid in (p for p in plan.papers if p not in claim.papers() and p in kb.papers):  # the best hit, if the claim
        paper = kb.papers[pid]  # does not cite it: the question may describe that very study
        finding = lower_first(best_finding(paper, question, plan.lang)).rstrip(".。")
        parts.append(SYNTHESIS["see_also"][plan.lang].format(name=name_of(paper, names), cite=cite(pid),
                                                             finding=finding))  # fmt: skip
    return " ".join(parts) + f"\n\n{SYNTHESIS['conditions'][plan.lang].format(text=conditions)}"


def compose_sections(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    """The parts of the topic overview that answer the question (families and choosing, benchmarks, open problems)."""
    overview = kb.overviews[plan.topic]
    parts = [overview.section(kind) for kind in plan.sections]
    text = "\n\n".join(getattr(part, plan.lang) for part in parts if part is not None)
    if plan.lead and plan.lead in text:  # the sentence that answers first; its part follows without it
        rest = text.replace(plan.lead, "", 1).strip()
        return f"{plan.lead}\n\n{rest}" if rest else plan.lead
    return text


def _sentences(text: str, lang: str) -> list[str]:
    """An overview part's sentences, each with its citations (they follow the words they support)."""
    pattern = r"(?<=。)" if lang == "zh" else r"(?<=[.\]])\s+(?=[A-Z])"
    return [s.strip() for s in re.split(pattern, text) if s.strip()]


NO_TRAINING = re.compile(r"fine-?tun|train|update (the )?weights|微调|训练", re.I)
TRAINS = re.compile(r"\btrain|fine-?tun|\bDPO\b|\bRLHF\b|\bRL\b|微调|训练", re.I)
FROZEN = re.compile(r"frozen|\bAPI\b|black-box|closed model|without retrain|avoids retrain|冻结|黑盒|免去", re.I)


def sentences_of(text: str, lang: str) -> list[str]:
    """An overview part's sentences (public: the planner looks for the one that states a difference)."""
    return _sentences(text, lang)


def _advice_first(plan: Plan, overview, question: str) -> str:
    """The overview's advice by situation, the piece that fits the situation the question states first: its
    words, and a constraint it states ("I can't fine-tune the API model" puts the frozen-model advice first and
    the training routes last)."""
    part = overview.section("choosing")
    lines = _sentences(getattr(part, plan.lang), plan.lang) if part is not None else []
    if len(lines) < 2:
        return compose_sections(plan, None, None, question) if part is None else getattr(part, plan.lang)
    negated = " ".join(m.group(0) for m in NEGATED.finditer(question))
    no_training = bool(NO_TRAINING.search(negated))
    # The constraint's object stays a wanted word ("the API model" in "I can't fine-tune the API model"); only
    # the ruled-out verb goes.
    wanted = set(tokenize(question)) - set(tokenize(GENERIC + " use should fine tune tuning train training 微调 训练"))

    def fit(i: int) -> tuple[int, int]:
        line = lines[i]
        score = len(wanted & set(tokenize(line)))
        if no_training:
            score += 3 if FROZEN.search(line) else (-3 if TRAINS.search(line) else 0)
        return (score, -i)

    best = max(range(1, len(lines)), key=fit)  # the first sentence frames the choice; it stays first
    if fit(best)[0] <= 0:
        return getattr(part, plan.lang)
    rest = [line for i, line in enumerate(lines) if i not in (0, best)]
    if no_training:  # the routes the asker ruled out come last, kept for completeness
        rest.sort(key=lambda line: bool(TRAINS.search(line)) and not FROZEN.search(line))
    gap = "" if plan.lang == "zh" else " "
    return gap.join([lines[best], lines[0], *rest])


RULED_OUT = re.compile(r"\b(not|rather than|instead of|other than|beyond|besides)\b|不要|不是|而非|以外|之外", re.I)


def compose_recommend(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    """What to use first: the overview sentence that best fits the goal the question states leads, its first
    benchmark named as the pick; the other options follow as the alternatives for other goals."""
    overview = kb.overviews.get(plan.topic or "")
    if overview is not None and plan.sections == ("choosing",):
        return _advice_first(plan, overview, question)
    if overview is None or plan.sections != ("benchmarks",):
        return compose_sections(plan, kb, names, question)
    part = overview.section("benchmarks")
    text = getattr(part, plan.lang) if part is not None else ""
    lines = _sentences(text, plan.lang)
    wanted = set(tokenize(question)) - set(tokenize(GENERIC + " benchmark benchmarks evaluate use should 基准 评测"))
    if not lines or not wanted:
        return text
    fits = [len(wanted & set(tokenize(line))) for line in lines]
    best = max(range(len(lines)), key=lambda i: (fits[i], -i))
    ids = [p for p in re.findall(r"\[arXiv:([^\]]+)\]", lines[best]) if p in kb.papers]
    if not ids or fits[best] == 0:
        return text
    # The pick is the benchmark the sentence names ("LaMP is the common ground ..., used by PPlug" names LaMP),
    # else its first cited benchmark, else its first source.
    named = [m.key for m in names.mentions(lines[best]) if m.kind == "paper" and m.key in kb.papers]
    # A benchmark the question sets aside ("not the short LaMP tasks") is never the pick.
    foils = set(plan.named) if RULED_OUT.search(question) else set()
    ranked = [p for p in dict.fromkeys([*named, *ids]) if p not in foils] or ids
    pick_id = next((p for p in ranked if "benchmark" in kb.papers[p].topics), ranked[0])
    pick = name_of(kb.papers[pick_id], names)
    # The lead names the pick without a citation: the curated sentence after it carries the source, and the
    # support check would judge the short lead on too few words.
    lead = sentence("recommend_lead", plan.lang, name=pick)
    rest = [line for i, line in enumerate(lines) if i != best]
    gap = "" if plan.lang == "zh" else " "
    others = sentence("recommend_others", plan.lang) + gap + gap.join(rest) if rest else ""
    return "\n\n".join(x for x in [f"{lead}{gap}{lines[best]}", others] if x)


def compose_recent(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    """How far the knowledge base reaches, then its newest papers on the question, newest first."""
    date = str(kb.reviewed_through)
    if plan.topic is None:
        topic = question.rstrip("?？")
    else:  # Chinese names the whole topic; English its label, in lower case
        topic = kb.topics[plan.topic].zh if plan.lang == "zh" else kb.topic_label(plan.topic, "en").lower()
    if plan.year is None:
        lines = [SYNTHESIS["recent_intro"][plan.lang].format(date=date, topic=topic)]
    else:  # say plainly what the knowledge base holds from the asked year, none included
        key = "recent_year" if plan.papers else "recent_year_none"
        n = str(len(plan.papers)) + ("" if plan.lang == "zh" else " paper" + "s" * (len(plan.papers) != 1))
        lines = [SYNTHESIS[key][plan.lang].format(date=date, topic=topic, year=plan.year, n=n)]
    for pid in plan.papers[: 8 if plan.year else 6]:
        paper = kb.papers.get(pid)
        if paper is not None:
            lines.append(f"- {name_of(paper, names)} ({paper.year}) {cite(pid)}: "
                         f"{claim_of(paper, question, names, plan.lang)}")  # fmt: skip
    lines.append(SYNTHESIS["recent_outro"][plan.lang].format(date=date))
    return "\n".join(lines)


COMPOSERS = {
    "definition": compose_definition,
    "compare": compose_compare,
    "paper": compose_paper,
    "list": compose_list,
    "newcomer": compose_newcomer,
    "open_question": compose_open,
    "general": compose_general,
    "evidence": compose_evidence,
    "overview": compose_sections,
    "recommend": compose_recommend,
    "recent": compose_recent,
}


def compose(plan: Plan, kb: KnowledgeBase, names: NameIndex, question: str) -> str:
    """The plan written from the knowledge base alone; every sentence cites its paper."""
    return COMPOSERS[plan.intent](plan, kb, names, question).strip()


def curated_text(plan: Plan, kb: KnowledgeBase) -> str:
    """The field's written synthesis the plan quotes (its claim, its overview parts), in the plan's language."""
    zh = plan.lang == "zh"
    parts = [plan.claim.claim_zh if zh else plan.claim.claim_en] if plan.claim else []
    if plan.claim:  # as the answer words it, label and all: a trusted sentence is matched whole
        conditions = plan.claim.conditions_zh if zh else plan.claim.conditions_en
        parts.append(SYNTHESIS["conditions"][plan.lang].format(text=conditions))
    overview = kb.overviews.get(plan.topic or "")
    parts += [getattr(part, plan.lang) for kind in plan.sections if overview and (part := overview.section(kind))]
    if plan.intent == "definition":  # the glossary is curated too; compose_definition cites a paper only where
        # its entry backs the whole definition, so the definition's last sentence must not lose that citation
        parts += [t.zh if zh else t.en for t in (plan.term, plan.other_term) if t is not None]
    return " ".join(parts)


def plan_instructions(plan: Plan) -> str:
    return PLAN_INSTRUCTIONS[plan.intent][plan.lang]


# ------------------------------------------------------------------------------------ degenerate output


def repetition(text: str) -> float:
    """Share of word 4-grams that repeat an earlier one (0: none; a looping small model: > 0.3)."""
    words = re.findall(r"\w+|[\u4e00-\u9fff]", text.lower())
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    return 1 - len(set(grams)) / len(grams) if len(grams) >= 8 else 0.0


def degenerate(answer: str, question: str, cited: int) -> str | None:
    """Why a model's answer must not be shown, or None: repetition, an echo of the question, no citation."""
    stripped = answer.strip()
    if len(stripped) < 20:
        return "too short"
    if repetition(stripped) > 0.3:
        return "repetition"
    head = stripped[: max(len(question) * 2, 40)]
    if difflib.SequenceMatcher(None, head.lower(), question.lower()).ratio() > 0.7:
        return "echo of the question"
    if cited == 0:
        return "no valid citation"
    return None
