import json
import shutil
from pathlib import Path

import pytest

from plra import rag
from plra.settings import load_knowledge
from tests.conftest import run_plra

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


def test_no_llm_json_answer_is_composed_prose_with_citations():
    result = run_plra("ask", "Which papers study memory for long-term dialogue?", "--no-llm", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"answer", "citations", "refused", "citation_errors", "timings", "query", "rewrite",
                         "intent", "fallback"}  # fmt: skip
    assert not data["refused"] and len(data["citations"]) == 5 and data["citation_errors"] == []
    assert set(data["citations"][0]) == {"arxiv_id", "title", "year", "url"}
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
