"""`plra write`, `plra ideas`, `plra cite`: every claim cites a knowledge-base paper, and the BibTeX parses."""

import json
import re

import bibtexparser
import pytest

from plra.assistant.answer import check_citations
from plra.knowledge import kb
from plra.knowledge.cite import apa, citation_keys
from plra.research.write import MARKER, SENTENCES
from plra.settings import load_knowledge
from plra.types import Paper
from tests.conftest import run_plra
from tests.openai_fixture import ScriptedOpenAI

TOPIC = "memory for long-term personalized dialogue"


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


def test_ideas_each_cite_two_papers_and_name_a_benchmark_and_metric(knowledge):
    result = run_plra("ideas", "memory for personalized assistants", "--n", "4", "--no-llm", "--json")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert len(items) == 4 and {i["kind"] for i in items} == {"transfer", "combine", "risk"}
    for idea in items:
        in_text = {m.group(1) for m in MARKER.finditer(idea["gap"] + idea["experiment"])}
        assert len(in_text) >= 2 and in_text <= set(idea["cited"])
        assert all(knowledge.get(pid) for pid in idea["cited"])
        bench = knowledge.papers[idea["benchmark"]["arxiv_id"]]
        assert idea["benchmark"]["dataset"] in bench.datasets
        assert idea["benchmark"]["metric"] in {m for pid in idea["cited"] for m in knowledge.papers[pid].metrics}
        assert idea["risk"] and idea["title"]
    assert len({i["cited"][0] for i in items}) == 4, "each idea starts from a different paper"


def test_idea_pitches_from_a_model_are_kept_only_with_two_valid_citations():
    with ScriptedOpenAI([lambda r: " ".join(re.findall(r"\[arXiv:\d{4}\.\d{4,5}\]", r["messages"][1]["content"])[:2]),
                         "A pitch citing only [arXiv:2401.99999]."]) as server:  # fmt: skip
        result = run_plra("ideas", "memory for personalized assistants", "--n", "2", "--json",
                          "--endpoint", server.url)  # fmt: skip
    first, second = json.loads(result.stdout)
    assert first["pitch"] and len(MARKER.findall(first["pitch"])) == 2
    assert second["pitch"] is None


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
