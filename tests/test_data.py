import json
import re
import shutil
from pathlib import Path

import pytest

from plra.data import build as data_build
from plra.data.leakage import find_leaks
from plra.errors import PlraError
from plra.knowledge import kb
from plra.settings import load_knowledge
from plra.types import ARXIV_ID

FIELD_DIR = Path(__file__).resolve().parent.parent / "datasets" / "personalized-llm"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    settings = load_knowledge({"datasets_dir": FIELD_DIR.parent})
    out = tmp_path_factory.mktemp("data") / "personalized-llm"
    manifest = data_build.build(settings, out, seed=0, log=lambda _m: None)
    return out, manifest, kb.load(settings)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_counts_cover_every_task_and_both_languages(built):
    out, manifest, _ = built
    counts = manifest["counts"]
    assert counts["sft"] >= 2000 and counts["dpo"] >= 500
    assert counts["sft_handwritten"] >= 200 and counts["sft_multi_turn"] >= 20
    for task in (
        "summary",
        "findings",
        "concept",
        "compare",
        "which_papers",
        "reading_path",
        "related_work",
        "ideas",
        "redirect",
        "overview",
        "claim",
    ):
        assert set(manifest["sft_by_task_lang"][task]) == {"en", "zh"}, task
    assert set(manifest["dpo_by_rejection_lang"]) == {
        "fabricated_citation",
        "wrong_year",
        "wrong_author",
        "wrong_attribution",
        "unhelpful_refusal",
        "contradicts_claim",
    }
    assert counts["pretrain_synthesis"] > 0 and counts["sft_synthesis"] > 0 and counts["dpo_claims"] > 0
    assert len(_rows(out / "sft.jsonl")) == counts["sft"] and len(_rows(out / "pretrain.jsonl")) == counts["pretrain"]


def test_build_is_deterministic(built, tmp_path):
    _, manifest, _ = built
    again = data_build.build(
        load_knowledge({"datasets_dir": FIELD_DIR.parent}), tmp_path / "again", seed=0, log=lambda _m: None
    )
    assert again["files"] == manifest["files"]


def test_sft_is_in_xtuner_openai_format_and_cites_only_known_papers(built):
    out, _, knowledge = built
    for row in _rows(out / "sft.jsonl"):
        roles = [m["role"] for m in row["messages"]]
        assert roles[0] == "system" and roles[1] == "user" and roles[-1] == "assistant"
        for message in row["messages"][1:]:
            for cited in re.findall(r"\[arXiv:([^\]]+)\]", message["content"]):
                assert cited in knowledge.papers, cited


def test_dpo_pairs_differ_in_the_named_way(built):
    out, _, knowledge = built
    records = _rows(out / "dpo_records.jsonl")
    for pair in records:
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
        assert chosen != rejected
        cited_chosen = set(re.findall(r"\[arXiv:([^\]]+)\]", chosen))
        assert cited_chosen <= set(knowledge.papers)
        if pair["rejection"] == "fabricated_citation":
            fake = set(re.findall(r"\[arXiv:([^\]]+)\]", rejected)) - cited_chosen
            assert fake and all(ARXIV_ID.match(f) and f not in knowledge.papers for f in fake)
            assert all(f[2:4] == "13" for f in fake)  # month 13: never a real paper
        if pair["rejection"] == "wrong_year":
            year = str(knowledge.papers[pair["sources"][0]].year)
            said = re.compile(rf"came out in {year}|{year} 年")
            assert said.search(chosen) and not said.search(rejected)
    assert set(_rows(out / "dpo.jsonl")[0]) == {"prompt", "chosen", "rejected"}


def test_leakage_guard_exact_and_near_duplicates():
    training = [
        ("t1", "How does LaMP evaluate personalization across its seven tasks?"),
        ("t2", "什么是多元化对齐？它与传统的 RLHF 有什么不同？"),
    ]
    benchmark = [
        ("qa.jsonl", "how does LaMP evaluate personalization across its seven tasks"),
        ("mcq.jsonl", "Tell me: how does LaMP evaluate personalization across its seven tasks, briefly?"),
        ("mcq.jsonl", "请解释：什么是多元化对齐？它与传统的 RLHF 有什么不同"),
        ("qa.jsonl", "Which benchmark measures memory over long conversations?"),
    ]
    leaks = find_leaks(benchmark, training)
    assert [(leak.kind, leak.training_id) for leak in leaks] == [("exact", "t1"), ("near", "t1"), ("near", "t2")]


def test_leakage_guard_ignores_a_shared_paper_title():
    title = "Personal LLM Agents: Insights and Survey about the Capability, Efficiency and Security"
    training = [("t1", f'Can you summarize the paper "{title}"?')]
    benchmark = [("mcq.jsonl", f"Which three levels of intelligence does '{title}' define?")]
    assert len(find_leaks(benchmark, training)) == 1  # without names, the title alone makes them look alike
    assert find_leaks(benchmark, training, names=[title]) == []


def test_build_fails_and_lists_a_leaked_benchmark_question(tmp_path):
    field = tmp_path / "datasets" / "personalized-llm"
    shutil.copytree(FIELD_DIR, field, ignore=shutil.ignore_patterns(".index", "incoming"))
    first_qa = next((field / "qa").glob("*.jsonl"))
    leaked = json.loads(first_qa.read_text().splitlines()[0])["messages"][0]["content"]
    with open(field / "benchmark" / "qa.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "qa-leak", "question": leaked}) + "\n")
    settings = load_knowledge({"datasets_dir": field.parent})
    out = tmp_path / "out"
    with pytest.raises(PlraError, match="leak into training data") as err:
        data_build.build(settings, out, log=lambda _m: None)
    assert "exact match: qa.jsonl" in str(err.value) and "training hw-" in str(err.value)
    assert not out.exists()  # nothing half-written


def test_malformed_handwritten_row_names_file_line_and_field(tmp_path):
    field = tmp_path / "datasets" / "personalized-llm"
    shutil.copytree(FIELD_DIR, field, ignore=shutil.ignore_patterns(".index", "incoming"))
    bad = field / "qa" / "zz_bad.jsonl"
    good = {
        "id": "x1",
        "lang": "en",
        "task": "concept",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a [arXiv:2304.11406]"}],
    }
    rows = [good, {**good, "id": "x2", "task": "poem"}]
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    settings = load_knowledge({"datasets_dir": field.parent})
    with pytest.raises(PlraError, match=rf"{re.escape(str(bad))}:2: field 'task' must be one of"):
        data_build.build(settings, tmp_path / "out", log=lambda _m: None)
    rows[1] = {
        **good,
        "id": "x3",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "see [arXiv:2401.99999]"}],
    }
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(PlraError, match=r"zz_bad.jsonl:2: field 'messages' cites 2401.99999"):
        data_build.build(settings, tmp_path / "out", log=lambda _m: None)
    bad.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(PlraError, match=r"zz_bad.jsonl:2: invalid JSON"):
        data_build.build(settings, tmp_path / "out", log=lambda _m: None)


def test_synth_keeps_valid_replies_and_rejects_the_rest(monkeypatch, tmp_path):
    from plra.data import synth
    from tests.openai_fixture import ScriptedOpenAI

    settings = load_knowledge({"datasets_dir": FIELD_DIR.parent})
    papers = sorted(kb.load(settings).papers.values(), key=lambda p: p.arxiv_id)
    import random

    chosen = random.Random(0).sample(papers, 3)
    replies = [
        json.dumps(
            {"question": "What does it study?", "answer": f"It studies personalization [arXiv:{chosen[0].arxiv_id}]."}
        ),
        "Sure! Here is a question about the paper.",  # not JSON
        json.dumps({"question": "一个问题？", "answer": "没有引用的回答。"}),  # cites nothing
    ]
    monkeypatch.setattr(synth, "REPO_ROOT", tmp_path)
    with ScriptedOpenAI(replies, model="writer") as server:
        out, rows, rejected = synth.synthesize(server.url, n=3, log=lambda _m: None)
    assert [r["id"] for r in rows] == [f"synth-{chosen[0].arxiv_id}-en"]
    assert len(rejected) == 2 and "not JSON" in rejected[0] and "does not cite" in rejected[1]
    assert out.is_file() and out.is_relative_to(tmp_path / "build" / "synth")
    assert json.loads(out.read_text())["messages"][1]["content"].endswith(f"[arXiv:{chosen[0].arxiv_id}].")


def test_an_output_folder_plra_did_not_write_is_never_replaced(tmp_path):
    settings = load_knowledge({"datasets_dir": FIELD_DIR.parent})
    thesis = tmp_path / "thesis"
    (thesis / "src").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("\\documentclass{article}")
    with pytest.raises(PlraError, match="did not write; give an empty or new folder"):
        data_build.build(settings, thesis, log=lambda _m: None)
    assert sorted(p.name for p in thesis.iterdir()) == ["src", "thesis.tex"]  # untouched
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(PlraError, match="is a file"):
        data_build.build(settings, a_file, log=lambda _m: None)
    assert a_file.read_text() == "mine"


def test_a_rebuild_replaces_its_own_folder_and_clears_a_crashed_builds_leftovers(tmp_path):
    import os
    import time

    settings = load_knowledge({"datasets_dir": FIELD_DIR.parent})
    out = tmp_path / "data"
    data_build.build(settings, out, log=lambda _m: None)
    assert (out / data_build.MARKER).exists() and (out / "sft.jsonl").exists()
    leftover = tmp_path / ".data-abc123"  # what a build killed before its rename leaves
    leftover.mkdir()
    old = time.time() - 2 * data_build.STALE_AFTER_S
    os.utime(leftover, (old, old))
    data_build.build(settings, out, seed=1, log=lambda _m: None)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_heldout_papers_are_never_trained_on_and_no_benchmark_question_is_about_them(built):
    from plra.data import heldout

    out, manifest, knowledge = built
    held = set(manifest["heldout"]["papers"])
    documents = _rows(out / "heldout.jsonl")
    assert {d["id"] for d in documents} == held and len(held) >= 0.04 * len(knowledge.papers)
    settings = load_knowledge({"datasets_dir": FIELD_DIR.parent})
    assert not held & heldout.benchmark_papers(row for _, row in data_build.benchmark_rows(settings))
    forbidden = heldout.paper_grams(knowledge, held)
    for name in ("pretrain.jsonl", "sft_records.jsonl", "dpo_records.jsonl"):
        for item in _rows(out / name):
            assert not held & set(item.get("sources", [])), (name, item.get("id"))
            assert not forbidden & heldout.grams(heldout.item_text(item)), (name, item.get("id"))
    # The guard would have caught a training item that quotes a held-out summary.
    paper = knowledge.papers[sorted(held)[0]]
    quoting = {"id": "x", "messages": [{"role": "assistant", "content": f"As shown, {paper.summary_en}"}]}
    assert heldout.keep_out([quoting], held, forbidden) == ([], 1)
    # One paper in ten by a hash of its id: the split does not move when other papers come or go.
    assert heldout.heldout_ids(knowledge, set()) >= held
