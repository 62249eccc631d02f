import json
import shutil
from pathlib import Path

import pytest

from plra.assistant import answer as rag
from plra.knowledge import kb, retrieval
from plra.llm import LLMClient
from plra.settings import load_knowledge
from tests.conftest import run_plra
from tests.openai_fixture import ScriptedOpenAI
from tests.relevance_fixture import OFF_TOPIC

FIELD_DIR = Path(__file__).resolve().parent.parent / "datasets" / "personalized-llm"


@pytest.fixture(scope="module")
def assistant():
    return rag.Assistant(load_knowledge({"datasets_dir": FIELD_DIR.parent}))


def test_valid_citations_become_numbered_sources(assistant):
    answer = (
        "LaMP [arXiv:2304.11406] and LongLaMP (arXiv:2407.11016) test personalization; LaMP again [arXiv:2304.11406]."
    )
    text, citations, errors = rag.check_citations(answer, assistant.knowledge, {})
    assert errors == []
    assert [c.arxiv_id for c in citations] == ["2304.11406", "2407.11016"]
    assert text.count("[1]") == 2 and "[2]" in text and "arXiv:" not in text
    assert citations[0].url == "https://arxiv.org/abs/2304.11406" and citations[0].year == 2023


def test_invented_ids_and_wrong_titles_are_removed_and_reported(assistant):
    answer = (
        'See [arXiv:2401.99999] for details. "A Survey of Cooking Robots" [arXiv:2304.11406] is wrong, '
        'while "LaMP: When Large Language Models Meet Personalization" [arXiv:2304.11406] is right.'
    )
    text, citations, errors = rag.check_citations(answer, assistant.knowledge, {})
    assert [e["cited"] for e in errors] == ["2401.99999", "2304.11406"]
    assert "not a knowledge-base paper" in errors[0]["reason"] and "is not the paper's" in errors[1]["reason"]
    assert "2401.99999" not in text and [c.arxiv_id for c in citations] == ["2304.11406"]
    # an arXiv result retrieved in this turn (by the agent) is a valid source too
    text, citations, errors = rag.check_citations(
        "New work [arXiv:2511.01234].", assistant.knowledge, {"2511.01234": ("A new paper", 2025)}
    )
    assert errors == [] and citations[0].title == "A new paper"


def test_refusal_outside_the_field_in_both_languages(assistant):
    for question in ("What is the best way to grill salmon?", "周末去杭州玩有什么推荐？"):
        result = assistant.ask(question)
        assert result.refused and result.citations == []
    english = assistant.ask("What is the best way to grill salmon?").answer
    assert "personalized large language models" in english
    assert not assistant.ask("How do benchmarks evaluate LLM personalization with user profiles?").refused
    assert not assistant.ask("如何评估大模型的个性化能力？").refused


def _incoming(folder: Path, arxiv_id: str, title: str, abstract: str) -> None:
    """An entry as `plra kb update` writes it (before the relevance gate, an off-topic one could land too)."""
    entry = {"arxiv_id": arxiv_id, "title": title, "authors": ["A. Fixture"], "year": 2000 + int(arxiv_id[:2]),
             "url": f"https://arxiv.org/abs/{arxiv_id}", "curated": False, "source_abstract": abstract}  # fmt: skip
    folder.mkdir(exist_ok=True)
    (folder / f"{arxiv_id}.yaml").write_text(kb.dump_yaml(entry))


MEMORY_PAPER = ("2509.20001", "Personalized Long-Term Memory for LLM Assistants",
                "We study how LLM assistants keep a long-term memory of each user across sessions.")  # fmt: skip


def test_an_off_topic_incoming_paper_never_makes_its_subject_look_in_field(kb_copy):
    bread = OFF_TOPIC[0]
    _incoming(kb_copy / "incoming", bread.arxiv_id, bread.title, bread.abstract)
    _incoming(kb_copy / "incoming", *MEMORY_PAPER)
    settings = load_knowledge()
    assistant = rag.Assistant(settings)
    # the curated papers' own index is saved with the index, so a fresh process need not rebuild it
    reopened = retrieval.open_index(settings)
    assert (retrieval.index_dir(settings) / "bm25-curated").exists() and reopened._curated is not None
    assert {d.arxiv_id for d in reopened.curated_only().docs} == set(assistant.knowledge.papers)
    # the bread paper is in the index, and is what a search for bread finds ...
    assert assistant.index.search("how do I bake sourdough bread?", k=1)[0].arxiv_id == bread.arxiv_id
    # ... but the field is measured on curated papers only: the question stays outside it
    for question in ("How do I bake sourdough bread?", "What hydration and fermentation time make a good sourdough?"):
        result = assistant.ask(question)
        assert result.refused and result.citations == [] and bread.arxiv_id not in result.answer, question
    answered = assistant.ask("Which papers study long-term memory for personalized dialogue?")
    assert not answered.refused and answered.citations
    assert bread.arxiv_id not in {c.arxiv_id for c in answered.citations}


def test_incoming_sources_are_marked_not_yet_reviewed(kb_copy):
    _incoming(kb_copy / "incoming", *MEMORY_PAPER)
    assistant = rag.Assistant(load_knowledge())
    reply = (f"LLM assistants can keep a long-term memory of each user [arXiv:{MEMORY_PAPER[0]}], and LaMP "
             "benchmarks personalization with user profiles [arXiv:2304.11406].")  # fmt: skip
    with ScriptedOpenAI([reply]) as server:
        result = assistant.ask("Which papers study long-term memory for personalized assistants?",
                               llm=LLMClient.from_url(server.url))  # fmt: skip
    assert not result.refused and result.fallback is None
    reviewed = {c.arxiv_id: c.reviewed for c in result.citations}
    assert reviewed == {MEMORY_PAPER[0]: False, "2304.11406": True}
    sources = result.answer.split("Sources:")[1].strip().splitlines()
    assert sources[0].endswith(f"arXiv:{MEMORY_PAPER[0]} [not yet reviewed]")
    assert sources[1].endswith("arXiv:2304.11406")  # a curated paper carries no marker
    assert [c["reviewed"] for c in result.to_json()["citations"]] == [False, True]  # what --json prints
    from plra import app

    panel = app.sources_markdown(result)
    assert f"arXiv:{MEMORY_PAPER[0]} [not yet reviewed]" in panel and "arXiv:2304.11406 [" not in panel
    chinese = rag.with_sources("文本", result.citations, "zh")
    assert chinese.splitlines()[-2].endswith("[未审核]") and not chinese.endswith("]")


def test_no_llm_json_answer_is_composed_prose_with_citations():
    result = run_plra("ask", "Which papers study memory for long-term dialogue?", "--no-llm", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"answer", "citations", "refused", "citation_errors", "timings", "query", "rewrite",
                         "intent", "fallback", "writer", "history_trimmed"}  # fmt: skip
    assert data["writer"] == "composed from the knowledge base"
    assert not data["refused"] and len(data["citations"]) >= 5 and data["citation_errors"] == []
    assert set(data["citations"][0]) == {"arxiv_id", "title", "year", "url", "reviewed"}
    assert all(c["reviewed"] for c in data["citations"])  # the shipped knowledge base: curated papers only
    assert data["intent"] == "list" and data["query"] == "Which papers study memory for long-term dialogue?"
    body = data["answer"].split("\n\nSources:")[0]
    assert "[1]" in body and "[5]" in body and not body.lstrip().startswith("-")
    chinese = json.loads(run_plra("ask", "角色扮演智能体如何评测人格一致性？", "--no-llm", "--json").stdout)
    body = chinese["answer"].split("参考文献：")[0]
    assert "[1]" in body and "。" in body and "\n- " not in body  # sentences, not a list


def test_calibration_reports_precision_recall_f1(tmp_path, monkeypatch, isolated_config):
    target = tmp_path / "datasets" / "personalized-llm"
    shutil.copytree(FIELD_DIR, target, ignore=shutil.ignore_patterns(".index", "incoming"))
    (target / "benchmark" / "refusal.json").unlink(missing_ok=True)
    monkeypatch.setenv("PLRA_DATASETS_DIR", str(target.parent))
    result = run_plra("ask", "--calibrate", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["questions"] == {"in_field": 122, "out_of_field": 115}
    assert report["cross_validated"]["f1"] >= 0.85 and report["in_sample"]["precision"] >= 0.9
    assert set(report["threshold"]) == {"en", "zh"}
    kinds = report["by_kind"]
    assert set(kinds) == {"topical", "newcomer", "meta", "off_topic", "near_miss"}
    assert kinds["newcomer"]["refused"] <= 2 and kinds["near_miss"]["recall"] >= 0.8
    assert json.loads((target / "benchmark" / "refusal.json").read_text()) == report


@pytest.mark.slow
def test_ask_with_the_tiny_model_checks_what_it_cites(assistant, tiny_model_dir):
    model = rag.LocalModel(tiny_model_dir)
    result = assistant.ask("What does the LaMP benchmark measure?", llm=model, k=3)
    assert not result.refused and result.answer.strip()
    cited = {c.arxiv_id for c in result.citations}
    assert cited <= set(assistant.knowledge.papers)
    assert all(e["cited"] not in assistant.knowledge.papers or "title" in e["reason"] for e in result.citation_errors)
    assert result.timings["generation_ms"] > 0


def test_with_no_endpoint_commands_compose_and_the_tiny_model_is_opt_in(monkeypatch, tmp_path):
    from plra import llm

    monkeypatch.delenv("PLRA_ENDPOINT", raising=False)
    monkeypatch.setattr(llm, "SERVE_STATE_DIR", tmp_path)  # no `plra serve` running either
    assert rag.model_for(None) is None  # the composer answers at once
    assert isinstance(rag.model_for(None, local=True), rag.LocalModel)
    monkeypatch.setenv("PLRA_ENDPOINT", "http://127.0.0.1:9/v1")
    assert isinstance(rag.model_for(None), llm.LLMClient)  # a configured model is used without asking
