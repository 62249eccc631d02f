import json
import time
from pathlib import Path

import pytest

from plra.errors import PlraError
from plra.knowledge import kb, retrieval
from plra.settings import load_knowledge
from tests.arxiv_fixture import ArxivServer, AtomEntry
from tests.conftest import run_plra

FIELD_DIR = Path(__file__).resolve().parent.parent / "datasets" / "personalized-llm"


@pytest.fixture(scope="module")
def index():
    return retrieval.open_index(load_knowledge({"datasets_dir": FIELD_DIR.parent}))


def test_paraphrased_english_question_finds_the_paper_first(index):
    hits = index.search(
        (
            "benchmark with seven tasks (citation identification, movie tagging, product rating, headline "
            "generation) where a retriever picks items from the user profile"
        ),
        k=3,
    )
    assert hits[0].arxiv_id == "2304.11406"  # LaMP, asked without its title words


def test_chinese_question_finds_the_paper_first(index):
    hits = index.search("为每个用户单独训练一个参数高效模块来存放他的行为和偏好", k=3)
    assert hits[0].arxiv_id == "2402.04401"  # OPPU: one PEFT per user


def test_mixed_language_query_works(index):
    hits = index.search("MemGPT 式的虚拟上下文管理 operating system memory", k=5)
    assert "2310.08560" in [h.arxiv_id for h in hits]


def test_filters_and_json_output(index):
    hits = index.search("role-playing characters", k=10, year_from=2024, topic="role-play")
    assert hits and all(h.year >= 2024 for h in hits)
    result = run_plra("search", "personalized reward model from diverse feedback", "-k", "4", "--json")
    rows = json.loads(result.stdout)
    assert len(rows) == 4 and set(rows[0]) == {"arxiv_id", "title", "year", "score", "snippet"}
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


def test_empty_and_over_long_queries(index, capsys):
    with pytest.raises(PlraError, match="empty"):
        index.search("   ")
    long_query = "memory for long conversations " * 200
    hits = index.search(long_query, k=3)
    assert hits and "cut to its first" in capsys.readouterr().err
    empty = run_plra("search", "")
    assert empty.returncode != 0 and empty.stderr.strip().splitlines() == [
        "error: the query is empty: ask about a method, a problem or a paper"
    ]
    assert index.search("zzzzqqq xxyyzz", k=3) == []  # nothing matches: no hits, no crash


def test_index_is_persisted_and_rebuilt_after_an_edit(kb_copy):
    settings = load_knowledge()
    retrieval.open_index(settings)
    meta = retrieval.index_dir(settings) / "meta.json"
    built = meta.stat().st_mtime_ns
    retrieval.open_index(settings)
    assert meta.stat().st_mtime_ns == built  # unchanged knowledge base: the saved index is reused
    entry = kb_copy / "papers" / "2304.11406.yaml"
    data = kb.read_yaml(entry)[0]
    data["keywords"].append("quokkaword")
    entry.write_text(kb.dump_yaml(data))
    hits = retrieval.open_index(settings).search("quokkaword", k=1)
    assert meta.stat().st_mtime_ns != built
    assert [h.arxiv_id for h in hits] == ["2304.11406"]


# ------------------------------------------------------------------------------ kb update (arXiv)

FEED = [
    AtomEntry(
        "2410.93905",
        1,
        "PersonalSum: A User-Subjective Guided Personalized Summarization Dataset",
        ["Lemei Zhang"],
        "2024-10-04",
        "2024-10-04",
        "Fixture text about subjective summaries.",
    ),
    AtomEntry(
        "2410.93905",
        2,
        "PersonalSum: A User-Subjective Guided Personalized Summarization Dataset for LLMs",
        ["Lemei Zhang"],
        "2024-10-04",
        "2024-11-02",
        "Fixture text, second version.",
    ),
    AtomEntry(
        "2503.97018",
        1,
        "Toward Multi-Session Personalized Conversation",
        ["Xintong Li"],
        "2025-03-10",
        "2025-03-10",
        "Fixture text about implicit reasoning in sessions.",
    ),
    AtomEntry(
        "2304.11406",
        3,
        "LaMP (as the feed names it)",
        ["Alireza Salemi"],
        "2023-04-22",
        "2024-06-01",
        "Fixture text for a curated paper.",
    ),
]


def _update(*extra: str, env: dict[str, str]):
    return run_plra("kb", "update", "--query", "all:personalization", "--max", "10", *extra, env=env)


def test_update_lands_new_papers_and_collapses_versions(kb_copy):
    curated_before = (kb_copy / "papers" / "2304.11406.yaml").read_bytes()
    with ArxivServer(FEED) as server:
        env = {"ARXIV_API_URL": server.url, "PLRA_ARXIV_DELAY_S": "0"}
        result = _update("--json", env=env)
        assert result.returncode == 0, result.stderr
        outcome = json.loads(result.stdout)
        assert {k: outcome[k] for k in ("new", "updated", "unchanged", "curated")} == {
            "new": ["2410.93905", "2503.97018"],
            "updated": [],
            "unchanged": [],
            "curated": ["2304.11406"],
        }
        assert [row["arxiv_id"] for row in outcome["accepted"]] == ["2410.93905", "2503.97018"]
        assert outcome["rejected"] == []  # both are about personalization: the relevance gate lets them in
        assert server.requests[0]["search_query"] == ["all:personalization"]
        assert server.requests[0]["sortBy"] == ["submittedDate"]  # new papers: newest first, so --since can stop
        again = json.loads(_update("--json", env=env).stdout)
        assert again["new"] == [] and sorted(again["unchanged"]) == ["2410.93905", "2503.97018"]
    incoming = kb.read_yaml(kb_copy / "incoming" / "2410.93905.yaml")[0]
    assert incoming["version"] == 2 and incoming["curated"] is False
    assert incoming["source_abstract"] == "Fixture text, second version."
    assert (kb_copy / "papers" / "2304.11406.yaml").read_bytes() == curated_before
    # incoming papers are searchable and flagged as uncurated
    hits = retrieval.open_index(load_knowledge()).search("implicit reasoning in sessions", k=3)
    incoming_hit = next(h for h in hits if h.arxiv_id == "2503.97018")  # beside the curated paper it restates
    assert incoming_hit.curated is False


def test_update_since_filters_older_papers(kb_copy):
    with ArxivServer(sorted(FEED, key=lambda e: e.published, reverse=True)) as server:
        result = _update(
            "--since", "2025-01-01", "--json", env={"ARXIV_API_URL": server.url, "PLRA_ARXIV_DELAY_S": "0"}
        )
    assert json.loads(result.stdout)["new"] == ["2503.97018"]


@pytest.mark.parametrize("mode", ["error", "slow"])
def test_server_failure_leaves_files_unchanged(kb_copy, mode):
    env = {"PLRA_ARXIV_DELAY_S": "0", "PLRA_ARXIV_RETRIES": "1", "PLRA_ARXIV_TIMEOUT_S": "0.5"}
    with ArxivServer(FEED, mode=mode, delay_s=2.0) as server:
        start = time.monotonic()
        result = _update(env={**env, "ARXIV_API_URL": server.url})
        elapsed = time.monotonic() - start
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and server.url in lines[0]
    assert len(server.requests) == 2  # the first try and one retry, no more
    assert elapsed < 15
    assert not (kb_copy / "incoming").exists()


def test_update_offline_is_one_clear_line(kb_copy):
    result = _update(
        env={"ARXIV_API_URL": "http://127.0.0.1:9/api/query", "PLRA_ARXIV_DELAY_S": "0", "PLRA_ARXIV_RETRIES": "0"}
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[0].startswith("error: cannot reach the arXiv API at http://127.0.0.1:9")


def test_retrieval_eval_beats_the_baseline_on_both_languages():
    result = run_plra("kb", "eval", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    questions = retrieval.load_questions(FIELD_DIR / "benchmark" / "retrieval.jsonl")
    assert len(questions) >= 120 and sum(q["lang"] == "zh" for q in questions) >= 40
    for lang in ("en", "zh"):
        ours, base = report[lang]["plra"], report[lang]["baseline"]
        assert ours["recall@5"] >= 0.9
        assert ours["mrr"] > base["mrr"] and ours["recall@5"] >= base["recall@5"]
        assert 0 <= ours["recall@1"] <= ours["recall@5"] <= 1


def test_malformed_benchmark_line_is_named(tmp_path):
    bad = tmp_path / "retrieval.jsonl"
    bad.write_text('{"question": "q", "lang": "en", "gold": ["2304.11406"]}\n{"question": \n')
    with pytest.raises(PlraError, match=r"retrieval.jsonl:2: invalid JSON"):
        retrieval.load_questions(bad)


def test_concurrent_searches_after_an_edit_rebuild_the_index_once_and_all_answer(kb_copy):
    import subprocess
    import sys

    entry = kb_copy / "papers" / "2304.11406.yaml"
    entry.write_text(entry.read_text().replace("LaMP became", "LaMP has become"))  # the index is now stale
    procs = [subprocess.Popen([sys.executable, "-m", "plra", "search", "user profile retrieval", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]  # fmt: skip
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err[-300:] for _, err in outputs]
    assert all(json.loads(out) for out, _ in outputs)
    assert [p.name for p in kb_copy.iterdir() if p.name.startswith(".index-")] == []  # no stray temp folders
