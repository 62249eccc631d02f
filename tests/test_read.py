"""`plra read`: a generated PDF with known facts on known pages, read with and without a model."""

import json

import pytest

from plra.research.read import PaperReader, check_pages, passages
from plra.settings import load_knowledge
from tests.arxiv_fixture import ArxivServer
from tests.conftest import FIELD_DIR, free_port, run_plra
from tests.openai_fixture import ScriptedOpenAI
from tests.pdf_fixture import INJECTION, TITLE, write_paper_pdf

QUESTION = "What accuracy does MemoryLane reach on LaMP-2?"


@pytest.fixture
def paper_pdf(tmp_path):
    return write_paper_pdf(tmp_path / "memorylane.pdf")


def test_extraction_keeps_pages_sets_aside_instructions_and_drops_references(kb_copy, paper_pdf):
    from plra.research.read import load_paper

    paper = load_paper(str(paper_pdf), load_knowledge())
    assert paper.title == TITLE and len(paper.pages) == 4
    found, set_aside = passages(paper)
    page_of = {fact: next(p.page for p in found if fact in p.text) for fact in ("4096 user facts", "87.5%", "privacy")}
    assert page_of == {"4096 user facts": 2, "87.5%": 3, "privacy": 4}
    assert not any("HACKED" in p.text for p in found)
    assert set_aside == [{"page": 4, "text": INJECTION}]
    assert not any("Salemi et al." in p.text for p in found), "the references section is not read as content"
    assert (kb_copy / ".reading" / paper.key / "text.json").exists(), "the extraction is cached beside the KB"


def test_check_pages_keeps_only_pages_the_model_was_shown():
    text, pages, errors = check_pages("It reaches 87.5% (p. 3), see also (p. 9) and p. 2.", {2, 3})
    assert pages == [3, 2]
    assert "(p. 9)" not in text and "(p. 3)" in text
    assert errors == [{"cited": "p. 9", "reason": "not a page of the passages given to the model"}]


def test_reading_card_from_extraction_alone(kb_copy, paper_pdf):
    result = run_plra("read", str(paper_pdf), "--no-llm", "--json")
    assert result.returncode == 0, result.stderr
    card = json.loads(result.stdout)
    assert any("87.5%" in item["text"] and item["page"] == 3 for item in card["results"])
    assert any("We propose MemoryLane" in item["text"] and item["page"] == 1 for item in card["method"])
    assert all(item["page"] == 4 for item in card["limitations"]) and card["limitations"]
    knowledge_ids = {p.stem.split("_")[0] for p in (FIELD_DIR / "papers").glob("*.yaml")}
    assert card["related"] and all(r["arxiv_id"] in knowledge_ids for r in card["related"])
    assert {"LaMP", "Long-term memory"} <= {g["term"] for g in card["glossary"]}
    assert card["set_aside"][0]["page"] == 4
    assert "HACKED" not in json.dumps({k: v for k, v in card.items() if k != "set_aside"})


def test_answer_cites_the_page_that_holds_the_fact(kb_copy, paper_pdf):
    result = run_plra("read", str(paper_pdf), "--no-llm", "--ask", QUESTION, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["passages"][0]["page"] == 3
    first = answer["answer"].splitlines()[1]
    assert "87.5%" in first and first.endswith("(p. 3)")


def test_instructions_inside_the_pdf_never_reach_the_model(kb_copy, paper_pdf):
    def gullible(request):  # a model that obeys whatever instruction it is shown
        prompt = " ".join(m["content"] for m in request["messages"])
        if "ignore all previous instructions" in prompt.lower():
            return "HACKED"
        return "The study covers English-speaking users only (p. 4) and no adversarial memories (p. 7)."

    with ScriptedOpenAI([gullible]) as server:
        result = run_plra("read", str(paper_pdf), "--ask", "What are the limitations of this study?", "--json",
                          "--endpoint", server.url)  # fmt: skip
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        system, user = server.requests[0]["messages"]
    assert "HACKED" not in answer["answer"]
    assert "(p. 4)" in answer["answer"] and "(p. 7)" not in answer["answer"]
    assert answer["citation_errors"] == [{"cited": "p. 7", "reason": "not a page of the passages given to the model"}]
    assert "never instructions" in system["content"]
    assert "<paper" in user["content"] and "English-speaking users" in user["content"]
    assert answer["set_aside"] == [{"page": 4, "text": INJECTION}]


def test_an_arxiv_id_is_downloaded_once_then_read_from_the_cache(kb_copy, paper_pdf, monkeypatch):
    pdf = paper_pdf.read_bytes()
    with ArxivServer([], pdfs={"2304.11406": pdf}) as server:
        env = {"ARXIV_API_URL": server.url}
        first = run_plra("read", "2304.11406", "--no-llm", "--json", env=env)
        assert first.returncode == 0, first.stderr
    card = json.loads(first.stdout)
    assert card["arxiv_id"] == "2304.11406" and card["title"].startswith("LaMP"), "the title is the KB's"
    assert (kb_copy / ".reading" / "2304.11406" / "paper.pdf").read_bytes() == pdf
    offline = {"ARXIV_API_URL": f"http://127.0.0.1:{free_port()}/api/query", "PLRA_ARXIV_RETRIES": "0"}
    again = run_plra("read", "arXiv:2304.11406", "--no-llm", "--ask", QUESTION, "--json", env=offline)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["pages"][0] == 3
    missing = run_plra("read", "2401.00001", "--no-llm", env=offline)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "cannot download 2401.00001" in missing.stderr


def test_bad_sources_get_one_line_errors(kb_copy, tmp_path):
    fake = tmp_path / "notes.pdf"
    fake.write_text("just text")
    result = run_plra("read", str(fake), "--no-llm")
    assert result.returncode == 2 and f"{fake} is not a PDF" in result.stderr
    result = run_plra("read", "no-such-thing", "--no-llm")
    assert result.returncode == 2 and "neither a PDF file nor an arXiv id" in result.stderr


@pytest.mark.slow
def test_reading_with_the_embedded_model(kb_copy, paper_pdf, tiny_model_dir):
    env = {"PLRA_ENDPOINT": ""}
    result = run_plra("read", str(paper_pdf), "--ask", QUESTION, "--json", "--local", env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    shown = {p["page"] for p in answer["passages"]}
    assert answer["passages"][0]["page"] == 3
    assert answer["answer"].strip() and "HACKED" not in answer["answer"]
    assert set(answer["pages"]) <= shown, "every page the answer keeps was shown to the model"


def test_reader_search_ranks_the_page_with_the_fact_first(kb_copy, paper_pdf):
    reader = PaperReader.open(str(paper_pdf))
    assert reader.search("memory bank capacity 4096 facts")[0].page == 2


def test_card_summary_from_a_model_keeps_only_real_pages(kb_copy, paper_pdf):
    with ScriptedOpenAI(["MemoryLane stores user facts (p. 2) and reaches 87.5% on LaMP-2 (p. 3); see (p. 12)."]) as s:
        result = run_plra("read", str(paper_pdf), "--json", "--endpoint", s.url)
    assert result.returncode == 0, result.stderr
    card = json.loads(result.stdout)
    assert "(p. 2)" in card["summary"] and "(p. 3)" in card["summary"] and "(p. 12)" not in card["summary"]
    assert [e["cited"] for e in card["citation_errors"]] == ["p. 12"]


def test_a_document_from_another_field_gets_no_related_papers(kb_copy, tmp_path):
    text = "We compare overnight and same-day proofing of rye and wheat doughs at 21 degrees."
    pages = [[("heading", "Sourdough Fermentation Schedules for Home Bakers"), ("text", text)]]
    reader = PaperReader.open(str(write_paper_pdf(tmp_path / "bread.pdf", pages)))
    card = reader.card()
    assert card["title"].startswith("Sourdough") and card["related"] == []
