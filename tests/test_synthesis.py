"""The field's written synthesis: every topic has an overview and the claims are many, and the validation
rules catch what a survey editor would (uncited sentences, ids that are not curated, English and Chinese citing
different papers, a missing central paper, a claim citing papers off its topics)."""

from __future__ import annotations

import pytest
import yaml

from plra.data import synthesis as synthesis_data
from plra.knowledge import kb
from plra.knowledge.synthesis import sentences, uncited_sentences
from plra.settings import load_knowledge
from plra.types import OVERVIEW_SECTIONS, cited_ids
from tests.conftest import FIELD_DIR


@pytest.fixture(scope="module")
def knowledge():
    return kb.load(load_knowledge({"datasets_dir": FIELD_DIR.parent}))


def test_every_topic_has_a_valid_overview_and_there_are_many_claims(knowledge):
    assert knowledge.issues == []
    assert set(knowledge.overviews) == set(knowledge.topics)
    assert len(knowledge.claims) >= 60
    for overview in knowledge.overviews.values():
        assert [s.kind for s in overview.sections] == list(OVERVIEW_SECTIONS)


def test_sentences_split_english_and_chinese_and_find_uncited_ones():
    text = "LaMP has seven tasks [arXiv:2304.11406]. Scores rose 1.5 points. 记忆很重要[arXiv:2410.10813]。没有引用。"
    assert sentences(text) == [
        "LaMP has seven tasks [arXiv:2304.11406].",
        "Scores rose 1.5 points.",
        "记忆很重要[arXiv:2410.10813]。",
        "没有引用。",
    ]
    assert uncited_sentences(text) == ["Scores rose 1.5 points.", "没有引用。"]
    assert cited_ids("[arXiv:1][arXiv:2] and [arXiv:1]") == ["1", "2"]


def _edit(path, change):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _issues(field_dir) -> list[str]:
    return [str(i) for i in kb.load(load_knowledge({"datasets_dir": field_dir.parent}), strict=False).issues]


def test_overview_rules_name_the_file_and_the_problem(kb_copy):
    path = kb_copy / "overviews" / "memory.yaml"
    first = yaml.safe_load(path.read_text(encoding="utf-8"))["sections"][0]
    zh_only_id = cited_ids(first["zh"])[0]

    def break_it(data):
        sections = data["sections"]
        sections[0]["en"] += " Nobody cited this sentence."
        sections[0]["zh"] = sections[0]["zh"].replace(f"[arXiv:{zh_only_id}]", "")
        sections[1]["en"] += " A made-up paper says so [arXiv:2999.00001]."
        data["central"][0] = "2304.11406"  # LaMP is not on memory

    _edit(path, break_it)
    found = "\n".join(i for i in _issues(kb_copy) if str(path) in i)
    assert "sentence cites nothing: 'Nobody cited this sentence.'" in found
    assert f"English and Chinese cite different papers (only in en: {zh_only_id}" in found
    assert "2999.00001 is not a curated paper" in found
    assert "2304.11406 does not carry topic 'memory'" in found


def test_overview_length_and_section_order_are_checked(kb_copy):
    path = kb_copy / "overviews" / "memory.yaml"
    _edit(path, lambda data: data.update(sections=data["sections"][:2]))
    found = "\n".join(i for i in _issues(kb_copy) if str(path) in i)
    assert "sections must be families, choosing, evidence, benchmarks, open_problems in order" in found
    assert "English has" in found and "expected 400-800" in found


def test_claim_rules_catch_off_topic_papers_and_mismatched_citations(kb_copy):
    path = kb_copy / "claims" / "memory.yaml"

    def break_it(data):
        claim = data["claims"][0]
        claim["supports"].append("2304.11406")  # LaMP is on benchmark and retrieval-augmented, not memory
        claim["topics"] = ["memory"]
        claim["claim_zh"] = "这是一条没有任何引用的结论性陈述。"
        data["claims"][1]["id"] = claim["id"]

    _edit(path, break_it)
    found = "\n".join(i for i in _issues(kb_copy) if str(path) in i)
    assert "2304.11406 is on benchmark, retrieval-augmented, not on the claim's topics" in found
    assert "claim_en and claim_zh cite different papers" in found
    assert "duplicate claim id 'memory-01'" in found


def test_the_synthesis_becomes_training_data_in_both_languages(knowledge):
    docs = synthesis_data.pretrain_documents(knowledge)
    conversations = synthesis_data.sft_conversations(knowledge)
    assert len(docs) == 2 * (len(knowledge.overviews) + len(knowledge.claims))
    sections = sum(len(o.sections) for o in knowledge.overviews.values())
    assert len(conversations) == 2 * (sections + len(knowledge.claims))
    assert {c["lang"] for c in conversations} == {"en", "zh"}
    memory = next(c for c in conversations if c["id"] == "syn-evidence-memory-zh")
    assert memory["messages"][-1]["content"] == knowledge.overviews["memory"].section("evidence").zh
    assert set(memory["sources"]) == set(cited_ids(memory["messages"][-1]["content"]))


def test_dpo_pairs_reject_the_answer_that_contradicts_a_claim(knowledge):
    claim = knowledge.claims[0].model_copy(update={"contrary_en": "Memory never matters [arXiv:2410.10813].",
                                                   "contrary_zh": None})  # fmt: skip
    knowledge = kb.KnowledgeBase(root=knowledge.root, topics=knowledge.topics, claims=[claim])
    (pair,) = synthesis_data.dpo_pairs(knowledge)
    assert pair["rejection"] == "contradicts_claim" and pair["lang"] == "en"
    assert pair["rejected"][0]["content"] == "Memory never matters [arXiv:2410.10813]."
    assert pair["chosen"][0]["content"].startswith(claim.claim_en)
    assert pair["prompt"][-1]["content"] == claim.question_en
