"""`plra write`, `plra cite`: every claim cites a knowledge-base paper, the BibTeX parses, and a related-work draft
argues theme by theme from the field's synthesis instead of listing one finding per paper (`plra ideas`: see
tests/test_ideas.py)."""

import json
import re

import bibtexparser
import pytest

from plra.assistant.answer import check_citations
from plra.knowledge import kb
from plra.knowledge.cite import apa, citation_keys
from plra.knowledge.names import display_name
from plra.research.write import MARKER, SENTENCES, gerund, standalone, theme_heading
from plra.settings import load_knowledge
from plra.types import Paper
from tests.conftest import run_plra
from tests.openai_fixture import ScriptedOpenAI

TOPIC = "memory for long-term personalized dialogue"
# Connectors that say nothing: a draft that needs them is listing papers, not arguing.
STOCK_PHRASES = (
    "has been studied from several angles",
    "from several angles",
    "in contrast,",
    "work from another angle",
    "other work",
    "several studies",
    "various aspects",
    "has attracted attention",
)


@pytest.fixture(scope="module")
def knowledge():
    return kb.load(load_knowledge())


def parse_bib(text: str) -> dict[str, dict[str, str]]:
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks, [b.error for b in library.failed_blocks]
    return {e.key: {f.key: f.value for f in e.fields} for e in library.entries}


def assert_every_sentence_cites(draft: str, knowledge) -> set[str]:
    for sentence in filter(str.strip, SENTENCES.split(draft)):
        assert MARKER.search(sentence), f"a sentence without a citation: {sentence!r}"
    _, citations, errors = check_citations(draft, knowledge, {})
    assert errors == []
    return {c.arxiv_id for c in citations}


@pytest.mark.parametrize("style,lang", [("acl", "en"), ("neurips", "zh"), ("plain", "en")])
def test_related_work_from_the_knowledge_base_cites_every_sentence(knowledge, tmp_path, style, lang):
    result = run_plra("write", "related-work", TOPIC, "--no-llm", "--style", style, "--lang", lang, "--json",
                      "--out", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    draft = json.loads(result.stdout)
    cited = assert_every_sentence_cites(draft["draft"], knowledge)
    assert cited == set(draft["cited"]) and len(cited) >= 3
    bib = parse_bib((tmp_path / "references.bib").read_text())
    assert {fields["eprint"] for fields in bib.values()} == cited, "the .bib holds exactly the cited papers"
    assert all(fields["archivePrefix"] == "arXiv" for fields in bib.values())
    text = (tmp_path / f"related-work.{'md' if style == 'plain' else 'tex'}").read_text()
    if style == "plain":
        assert "\\cite" not in text and text.count("https://doi.org/10.48550/arXiv.") == len(cited)
    else:
        command = "citep" if style == "acl" else "cite"
        used = {key for group in re.findall(rf"\\{command}\{{([^}}]+)\}}", text) for key in group.split(",")}
        assert used == set(bib), "every key in the text has an entry, and every entry is cited"
    if lang == "zh":
        assert re.search(r"[\u4e00-\u9fff]", text)


def test_related_work_from_a_model_keeps_only_cited_sentences(knowledge, tmp_path):
    good, other = "2406.05925", "2305.10250"
    reply = (f"LD-Agent models event memory and personas [arXiv:{good}]. Memory matters a great deal for users. "
             f"MemoryBank keeps a user portrait [arXiv:{other}] and was extended by [arXiv:2401.99999].")  # fmt: skip
    with ScriptedOpenAI([reply]) as server:
        result = run_plra("write", "related-work", TOPIC, "--papers", f"{good},{other}", "--json",
                          "--endpoint", server.url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    draft = json.loads(result.stdout)
    assert draft["from_model"] and draft["dropped_sentences"] == 1
    assert draft["citation_errors"][0]["cited"] == "2401.99999"
    assert "Memory matters a great deal" not in draft["text"] and "2401.99999" not in draft["draft"]
    assert_every_sentence_cites(draft["draft"], knowledge)
    assert {f["eprint"] for f in parse_bib(draft["bibtex"]).values()} == {good, other}


def test_a_model_draft_without_citations_falls_back_to_the_knowledge_base(knowledge):
    with ScriptedOpenAI(["Personalization is important. Many papers study it."]) as server:
        result = run_plra("write", "related-work", TOPIC, "--json", "--endpoint", server.url)
    draft = json.loads(result.stdout)
    assert not draft["from_model"] and draft["dropped_sentences"] == 2
    assert_every_sentence_cites(draft["draft"], knowledge)


def test_related_work_refuses_topics_outside_the_field():
    result = run_plra("write", "related-work", "how to grill salmon on a charcoal barbecue", "--no-llm")
    assert result.returncode == 2 and "does not match the knowledge base's field" in result.stderr


def test_outline_follows_the_template_and_cites_papers_per_section(knowledge):
    result = run_plra("write", "outline", "personalized reward models", "--json")
    assert result.returncode == 0, result.stderr
    outline = json.loads(result.stdout)
    template = kb.read_yaml(load_knowledge().field_dir / "templates" / "outline.yaml")[0]
    assert [s["id"] for s in outline["sections"]] == [s["id"] for s in template["sections"]]
    by_id = {s["id"]: s for s in outline["sections"]}
    assert "personalized reward models" in by_id["introduction"]["argue"]
    assert by_id["limitations-ethics"]["papers"]
    assert all("risks" in knowledge.papers[p["arxiv_id"]].topics for p in by_id["limitations-ethics"]["papers"])
    assert not by_id["conclusion"]["papers"]
    cited = {p["arxiv_id"] for s in outline["sections"] for p in s["papers"]}
    assert {f["eprint"] for f in parse_bib(outline["bibtex"]).values()} == cited


def test_a_broken_outline_template_names_file_line_and_field(kb_copy):
    path = kb_copy / "templates" / "outline.yaml"
    path.write_text(path.read_text().replace("    k: 6\n", "    k: 99\n"))
    result = run_plra("write", "outline", "personalized reward models")
    assert result.returncode == 2
    line = path.read_text().splitlines().index("    k: 99") + 1
    assert f"outline.yaml:{line}: sections.2.k" in result.stderr


def test_cite_prints_bibtex_and_apa_from_knowledge_base_metadata(tmp_path):
    out = tmp_path / "refs.bib"
    result = run_plra("cite", "1801.07243", "arXiv:2304.11406v2", "https://arxiv.org/abs/1801.07243", "-o", str(out))
    assert result.returncode == 0, result.stderr
    bib = parse_bib(out.read_text())
    assert list(bib) == ["zhang2018personalizing", "salemi2023lamp"]
    persona = bib["zhang2018personalizing"]
    assert persona["booktitle"] == "ACL 2018" and persona["eprint"] == "1801.07243"
    assert persona["author"].startswith("Zhang, Saizheng and Dinan, Emily")
    assert "{LaMP:}" in bib["salemi2023lamp"]["title"], "acronyms keep their case"
    apa_text = run_plra("cite", "1801.07243", "--format", "apa").stdout
    assert apa_text.startswith("Zhang, S., Dinan, E., Urbanek, J., Szlam, A., Kiela, D., & Weston, J. (2018).")
    assert apa_text.strip().endswith("https://doi.org/10.48550/arXiv.1801.07243")
    unknown = run_plra("cite", "2401.99999")
    assert unknown.returncode == 2 and "arXiv:2401.99999 is not in the knowledge base" in unknown.stderr


def test_citation_keys_stay_unique_when_two_papers_would_share_one():
    def paper(arxiv_id: str) -> Paper:
        return Paper.model_construct(
            arxiv_id=arxiv_id, title="Personal Agents & 100% Recall", authors=["Ada Lovelace"], year=2024, url=""
        )

    papers = [paper("2401.00001"), paper("2401.00002")]
    assert citation_keys(papers) == {"2401.00001": "lovelace2024personal", "2401.00002": "lovelace2024personala"}
    assert apa(papers[0]).startswith("Lovelace, A. (2024). Personal Agents & 100% Recall. *arXiv*.")
    from plra.knowledge.cite import bibtex

    entries = parse_bib(bibtex(papers))
    assert entries["lovelace2024personal"]["title"] == r"Personal Agents \& 100\% Recall"


@pytest.mark.slow
def test_write_and_ideas_run_with_the_embedded_model(knowledge, tiny_model_dir):
    env = {"PLRA_ENDPOINT": ""}
    result = run_plra("write", "related-work", TOPIC, "--k", "4", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert_every_sentence_cites(json.loads(result.stdout)["draft"], knowledge)
    result = run_plra("ideas", TOPIC, "--n", "2", "--json", env=env)
    assert result.returncode == 0, result.stderr
    for idea in json.loads(result.stdout):
        assert idea["pitch"] is None or len({m for m in MARKER.findall(idea["pitch"])}) >= 2


# ------------------------------------------------------------------------------ a draft that argues, theme by theme


def source_papers(source: str, knowledge, lang: str = "en") -> set[str]:
    """The papers the overview part, claim or paper a draft sentence came from may cite."""
    kind, _, where = source.partition(":")
    if kind == "overview":
        topic, part = where.split("/")
        return set(cited_ids_of(getattr(knowledge.overviews[topic].section(part), lang)))
    if kind == "claim":
        return set(next(c for c in knowledge.claims if c.id == where).papers())
    return set(where.split(","))  # "paper:ID" or "papers:ID,ID"


def cited_ids_of(text: str) -> list[str]:
    return [m.group(1) for m in MARKER.finditer(text)]


def paper_names(knowledge) -> list[str]:
    names = {display_name(p) for p in knowledge.papers.values()} | {
        a for p in knowledge.papers.values() for a in p.aliases
    }
    return sorted((n for n in names if len(n) >= 3), key=len, reverse=True)


def check_argued_draft(draft: dict, knowledge, lang: str = "en") -> None:
    paragraphs = draft["paragraphs"]
    assert len(paragraphs) >= 2, "a related-work section on a topic with an overview has a paragraph per theme"
    assert len({p["label"] for p in paragraphs}) == len(paragraphs), "each paragraph has its own theme"
    names = paper_names(knowledge)
    reporting = re.compile(
        rf"^(?:{'|'.join(map(re.escape, names))})(?: et al\.)?(?:\s*\[arXiv:[^\]]+\])*\s+"
        r"(?:reports?|finds?)\b"
    )
    seen: set[str] = set()
    for paragraph in paragraphs:
        sentences = [s["text"] for s in paragraph["sentences"]]
        cited = {pid for s in sentences for pid in cited_ids_of(s)}
        assert len(cited) >= 2, f"paragraph {paragraph['label']!r} cites {cited}"
        assert sum(bool(reporting.match(s)) for s in sentences) <= 1, f"'X reports/finds' strung in {paragraph}"
        for sentence in paragraph["sentences"]:
            text = sentence["text"]
            key = re.sub(r"\W+", " ", MARKER.sub("", text)).strip().lower()
            assert key not in seen, f"repeated sentence: {text!r}"
            seen.add(key)
            assert not any(phrase in text.lower() for phrase in STOCK_PHRASES), text
            ids = cited_ids_of(text)
            assert ids and all(pid in knowledge.papers for pid in ids), text
            assert set(ids) <= source_papers(sentence["source"], knowledge, lang), (
                f"{text!r} cites papers its source {sentence['source']} does not"
            )
            if lang == "en":
                assert text[:1].isupper() or text[:1].isdigit(), f"sentence starts in lower case: {text!r}"
                assert not re.search(r"et al\.(?:\s*\[arXiv:[^\]]+\])*\s+(?:shows|finds|reports)\b", text), text
                long_titles = [p.title for p in knowledge.papers.values() if len(p.title.split()) > 4]
                assert not any(text.startswith(t) for t in long_titles), f"a full title as the subject: {text!r}"


def run_draft(*args: str) -> dict:
    result = run_plra("write", "related-work", *args, "--no-llm", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_related_work_on_pluralistic_alignment_argues_by_family_with_evidence_and_open_problems(knowledge):
    draft = run_draft("pluralistic alignment", "--style", "plain")
    check_argued_draft(draft, knowledge)
    assert_every_sentence_cites(draft["draft"], knowledge)
    overview = knowledge.overviews["pluralistic-alignment"]
    sources = [s["source"] for p in draft["paragraphs"] for s in p["sentences"]]
    # Every family of the overview opens a paragraph, and the draft draws on the evidence, the claims (for and
    # against) and the open problems, not on the families alone.
    families = [p for p in draft["paragraphs"] if p["sentences"][0]["source"].endswith("/families")]
    assert len(families) >= 4
    for part in ("choosing", "evidence", "open_problems"):
        assert f"overview:pluralistic-alignment/{part}" in sources, part
    claims = {s.split(":")[1] for s in sources if s.startswith("claim:")}
    assert any(next(c for c in knowledge.claims if c.id == cid).contradicts for cid in claims), "no contrary evidence"
    # The family about steerable trade-offs states the conflict between merging and decoding-time combination.
    steer = next(p for p in draft["paragraphs"] if "trade-off" in p["label"].lower())
    assert any("conflict" in s["text"] or "suboptimal" in s["text"] for s in steer["sentences"])
    # Papers the overview does not cite yet (the newest) join the theme they belong to, one sentence each.
    newer = [s for s in sources if s.startswith("paper:")]
    assert newer and all(knowledge.papers[s.split(":")[1]].year >= 2025 for s in newer)
    assert set(overview.central) <= set(draft["cited"])
    assert "\\cite" not in draft["text"] and "### References" in draft["text"]


def test_related_work_on_role_play_and_in_chinese_follows_the_same_rules(knowledge):
    check_argued_draft(run_draft("role-playing agents"), knowledge)
    draft = run_draft("个性化对齐", "--lang", "zh")
    check_argued_draft(draft, knowledge, "zh")
    assert all(re.search(r"[\u4e00-\u9fff]", p["label"]) for p in draft["paragraphs"]), "Chinese headings"
    assert re.search(r"\\paragraph\{[\u4e00-\u9fff]", draft["text"])


def test_related_work_without_an_overview_groups_papers_by_what_they_share(knowledge):
    ids = "2304.11406,2407.11016,2311.09180,2404.05970,2310.20081,2409.09510,2402.04401"
    draft = run_draft("retrieval for personalized generation", "--papers", ids)
    assert_every_sentence_cites(draft["draft"], knowledge)
    assert len(draft["paragraphs"]) >= 2
    for paragraph in draft["paragraphs"]:
        opening = paragraph["sentences"][0]["text"]
        members = cited_ids_of(opening)
        assert len(members) >= 2, "a paragraph opens with what its papers share"
        shared = paragraph["label"].lower()
        for pid in members:
            paper = knowledge.papers[pid]
            values = [
                *paper.datasets,
                *paper.methods,
                *paper.keywords,
                *(knowledge.topic_label(t, "en") for t in paper.topics),
            ]
            assert any(shared in v.lower() for v in values), (pid, shared)
        assert not any(phrase in opening.lower() for phrase in STOCK_PHRASES)


def test_a_model_drafts_from_the_overview_and_claims(knowledge):
    reply = (
        "One line of work measures whose opinions models reflect [arXiv:2303.17548]. Another makes trade-offs "
        "steerable [arXiv:2306.04488]."
    )
    with ScriptedOpenAI([reply]) as server:
        result = run_plra("write", "related-work", "pluralistic alignment", "--json", "--endpoint", server.url)
        prompt = server.requests[0]["messages"][-1]["content"]
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["from_model"]
    assert "One family measures whose opinions models reflect against survey distributions" in prompt
    assert "Conditioning on rich backstories of real respondents fares better" in prompt, (
        "the claims' contrary evidence"
    )


@pytest.mark.parametrize(
    "verb,expected",
    [
        ("measures", "measuring"),
        ("lets", "letting"),
        ("fixes", "fixing"),
        ("carries", "carrying"),
        ("keeps", "keeping"),
        ("route", "routing"),
        ("widens", "widening"),
        ("is", "being"),
    ],
)
def test_gerund(verb, expected):
    assert gerund(verb) == expected


@pytest.mark.parametrize(
    "sentence,lang,heading",
    [
        (
            "A second makes trade-offs between objectives steerable, by interpolating weights [arXiv:2306.04488].",
            "en",
            "Making trade-offs between objectives steerable",
        ),
        (
            "A second family keeps raw units and invests in retrieval, from scoring [arXiv:2304.03442].",
            "en",
            "Keeping raw units and investing in retrieval",
        ),
        (
            "Supervised character training carries the role in the weights: RoleLLM tunes [arXiv:2310.00746].",
            "en",
            "Supervised character training",
        ),
        ("The first is sycophancy, where adapting to the user slides [arXiv:2310.13548].", "en", "Sycophancy"),
        (
            "Finally, parametric memory writes past conversations into a LoRA adapter [arXiv:2411.13405].",
            "en",
            "Parametric memory",
        ),
        ("第二类让多个目标之间的权衡可被调节，方式包括插值[arXiv:2306.04488]。", "zh", "让多个目标之间的权衡可被调节"),
    ],
)
def test_theme_headings_say_what_a_family_does(sentence, lang, heading):
    assert theme_heading(sentence, lang) == heading


@pytest.mark.parametrize(
    "sentence,part,expected",
    [
        (
            "The first problem is that the feedback pool decides the outcome: PRISM [arXiv:2404.16019].",
            "open_problems",
            "The feedback pool decides the outcome: PRISM [arXiv:2404.16019].",
        ),
        (
            "Implicit information is a second gap, since implied preferences are harder [arXiv:2502.09597].",
            "open_problems",
            "Implicit information remains a gap, since implied preferences are harder [arXiv:2502.09597].",
        ),
        (
            "The second is trustworthy evaluation, because judges agree poorly [arXiv:2412.11912].",
            "open_problems",
            "Trustworthy evaluation remains open, because judges agree poorly [arXiv:2412.11912].",
        ),
        (
            "A second makes trade-offs steerable [arXiv:2306.04488].",
            "families",
            "A second family makes trade-offs steerable [arXiv:2306.04488].",
        ),
    ],
)
def test_sentences_lose_the_numbering_of_their_overview(sentence, part, expected):
    assert standalone(sentence, "en", part) == expected
