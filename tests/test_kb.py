import csv
import json
import shutil
from pathlib import Path

import pytest

from plra.errors import PlraError
from plra.knowledge import kb
from plra.settings import load_knowledge
from plra.types import CJK
from tests.arxiv_fixture import ArxivServer, AtomEntry
from tests.conftest import run_plra
from tests.relevance_fixture import OFF_TOPIC

FIELD_DIR = Path(__file__).resolve().parent.parent / "datasets" / "personalized-llm"


@pytest.fixture(scope="module")
def knowledge():
    return kb.load(load_knowledge({"datasets_dir": FIELD_DIR.parent}))


def test_shipped_knowledge_base_is_valid_and_large_enough(knowledge):
    assert knowledge.issues == []
    assert len(knowledge.papers) >= 150
    assert len(knowledge.glossary) >= 80
    assert len(knowledge.paths) >= 6
    with open(FIELD_DIR / "seed_papers.tsv", encoding="utf-8") as fh:
        seeds = [row["arxiv_id"] for row in csv.DictReader(fh, delimiter="\t")]
    assert len(seeds) == 70
    assert sorted(set(seeds) - set(knowledge.papers)) == []


def test_every_topic_is_used_and_summaries_are_bilingual(knowledge):
    used = {t for p in knowledge.papers.values() for t in p.topics}
    assert used == set(knowledge.topics)
    for paper in knowledge.papers.values():
        assert not CJK.search(paper.summary_en) and CJK.search(paper.summary_zh)
        assert paper.arxiv_id not in paper.related


def test_malformed_yaml_names_file_and_line(kb_copy):
    entry = kb_copy / "papers" / "2304.11406.yaml"
    lines = entry.read_text().splitlines()
    lines[4] = "year: [2023"  # an unclosed flow sequence on line 5
    entry.write_text("\n".join(lines) + "\n")
    result = run_plra("kb", "validate")
    assert result.returncode == 1
    assert f"{entry}:" in result.stderr and "invalid YAML" in result.stderr
    line = int(result.stderr.split(f"{entry}:")[1].split(":")[0])
    assert 5 <= line <= 7


def test_schema_errors_name_file_line_and_field(kb_copy):
    entry = kb_copy / "papers" / "2304.11406.yaml"
    text = entry.read_text()
    entry.write_text(text.replace("year: 2023", "year: 1875"))
    line_of_year = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("year:"))
    other = kb_copy / "papers" / "2407.11016.yaml"
    data = kb.read_yaml(other)[0]
    data["related"][-1] = "9999.99999"
    other.write_text(kb.dump_yaml(data))
    line_of_related = other.read_text().splitlines().index("- '9999.99999'") + 1
    result = run_plra("kb", "validate")
    assert result.returncode == 1
    assert f"{entry}:{line_of_year}: year: year 1875 is not plausible" in result.stderr
    assert f"{other}:{line_of_related}: related: 9999.99999 is not in the knowledge base" in result.stderr


def test_missing_chinese_summary_and_bad_id_are_reported(kb_copy):
    entry = kb_copy / "papers" / "2304.11406.yaml"
    data = kb.read_yaml(entry)[0]
    data["summary_zh"] = data["summary_en"]
    data["arxiv_id"] = "2304.11406v2"
    entry.write_text(kb.dump_yaml(data))
    stderr = run_plra("kb", "validate").stderr
    assert "summary_zh: summary_zh must be Chinese" in stderr
    assert "arxiv_id: '2304.11406v2' is not an arXiv id" in stderr


def test_duplicate_glossary_term_is_reported(kb_copy):
    glossary = kb_copy / "glossary.yaml"
    data = kb.read_yaml(glossary)[0]
    data["terms"].append(dict(data["terms"][0]))
    glossary.write_text(kb.dump_yaml(data))
    assert "duplicate term" in run_plra("kb", "validate").stderr


def test_list_show_stats_json(knowledge):
    listed = json.loads(run_plra("kb", "list", "--json").stdout)
    assert {row["arxiv_id"] for row in listed} >= set(knowledge.papers)
    assert set(listed[0]) == {"arxiv_id", "title", "year", "topics", "curated"}
    shown = json.loads(run_plra("kb", "show", "2304.11406", "--json").stdout)
    assert shown["title"].startswith("LaMP") and shown["curated"] is True
    stats = json.loads(run_plra("kb", "stats", "--json").stdout)
    assert stats["papers"] == len(knowledge.papers)
    assert sum(stats["by_year"].values()) == len(knowledge.papers)
    assert stats["by_topic"]["benchmark"] == sum("benchmark" in p.topics for p in knowledge.papers.values())
    missing = run_plra("kb", "show", "0000.00000")
    assert missing.returncode != 0 and "not in the knowledge base" in missing.stderr


def test_promote_requires_curation_then_moves_the_entry(kb_copy):
    settings = load_knowledge()
    shutil.move(kb_copy / "papers" / "2410.03642.yaml", kb_copy / "curated.bak")
    bare = kb.read_yaml(kb_copy / "curated.bak")[0]
    incoming = {k: bare[k] for k in ("arxiv_id", "title", "authors", "year", "url")}
    incoming.update(curated=False, version=1, source_abstract="text from the feed", relevance=0.8,
                    nearest_curated="2304.11406")  # fmt: skip
    # papers that point at it would fail validation while it is out: drop those links for this test
    for path in (kb_copy / "papers").glob("*.yaml"):
        text = path.read_text()
        if "2410.03642" in text:
            data = kb.read_yaml(path)[0]
            data["related"] = [r for r in data["related"] if r != "2410.03642"]
            path.write_text(kb.dump_yaml(data))
    (kb_copy / "incoming").mkdir()
    (kb_copy / "incoming" / "2410.03642.yaml").write_text(kb.dump_yaml(incoming))
    with pytest.raises(PlraError, match="not ready to promote") as err:
        kb.promote(settings, "2410.03642")
    assert "summary_en" in str(err.value)
    curated = {**incoming, **{k: v for k, v in bare.items() if k not in incoming}}
    curated["curated"] = False  # the README's workflow: curated fields written into the incoming file first
    (kb_copy / "incoming" / "2410.03642.yaml").write_text(kb.dump_yaml({**curated, "summary_en": "Too short."}))
    issues = [str(i) for i in kb.load(settings, strict=False, compiled=False).issues]
    assert any("summary_en: summary_en must be 80-200 words" in i for i in issues), issues  # checked as curated
    (kb_copy / "incoming" / "2410.03642.yaml").write_text(kb.dump_yaml(curated))
    meanwhile = kb.load(settings, strict=False, compiled=False)
    assert meanwhile.incoming["2410.03642"].summary_en == bare["summary_en"].strip()
    assert not [i for i in meanwhile.issues if "incoming" in str(i.path)]  # the curation in progress is valid
    target = kb.promote(settings, "2410.03642")
    assert target == kb_copy / "papers" / "2410.03642.yaml"
    assert not (kb_copy / "incoming" / "2410.03642.yaml").exists()
    promoted = kb.read_yaml(target)[0]
    assert promoted["curated"] is True and "source_abstract" not in promoted and "relevance" not in promoted
    assert kb.load(settings).papers["2410.03642"].title == bare["title"]


PROMOTED = "2410.03642"


@pytest.fixture
def curated_incoming(kb_copy) -> tuple[Path, Path, str]:
    """A curated entry moved back into incoming/ with the feed's fields, ready to promote; (incoming file,
    papers file it becomes, that file's expected text)."""
    target = kb_copy / "papers" / f"{PROMOTED}.yaml"
    expected = kb.entry_text(kb.load(load_knowledge()).papers[PROMOTED])  # what promote writes
    entry = kb.read_yaml(target)[0]
    entry.update(curated=False, version=2, source_abstract="text from the feed", relevance=0.8)
    (kb_copy / "incoming").mkdir()
    source = kb_copy / "incoming" / target.name
    source.write_text(kb.dump_yaml(entry))
    target.unlink()
    return source, target, expected


def _fail_on(monkeypatch, name: str, path: Path) -> None:
    """os.replace or Path.unlink raise for path alone, as if the process were killed at that step."""
    import os

    real = getattr(os, name) if name == "replace" else Path.unlink

    def killed(first, *args, **kwargs):
        if Path(args[0] if name == "replace" else first) == path:
            raise KeyboardInterrupt(f"killed at {name} of {path.name}")
        return real(first, *args, **kwargs)

    monkeypatch.setattr(*((os, "replace") if name == "replace" else (Path, "unlink")), killed)


def test_a_promote_stopped_before_its_rename_changes_nothing_and_runs_again(curated_incoming, monkeypatch):
    source, target, expected = curated_incoming
    settings = load_knowledge()
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        _fail_on(patched, "replace", target)
        kb.promote(settings, PROMOTED)
    assert source.exists() and not target.exists() and not list(target.parent.glob(".*.tmp"))
    assert kb.promote(settings, PROMOTED) == target and target.read_text() == expected and not source.exists()


@pytest.mark.parametrize("then", ["promote", "validate"])
def test_a_promote_stopped_after_its_rename_is_finished_without_loss(curated_incoming, monkeypatch, then):
    source, target, expected = curated_incoming
    settings = load_knowledge()
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        _fail_on(patched, "unlink", source)
        kb.promote(settings, PROMOTED)
    assert source.exists() and target.read_text() == expected  # both: the curated one is what loads
    knowledge = kb.load(settings, compiled=False)
    assert knowledge.papers[PROMOTED].curated and PROMOTED not in knowledge.incoming
    if then == "promote":
        assert kb.promote(settings, PROMOTED) == target
    else:
        result = run_plra("kb", "validate")
        assert result.returncode == 0 and f"finished the promotion of {PROMOTED}" in result.stderr, result.stderr
    assert not source.exists() and target.read_text() == expected


def test_an_incoming_copy_that_differs_from_the_curated_entry_is_kept_and_named(curated_incoming):
    source, target, expected = curated_incoming
    target.write_text(expected.replace("curated: true", "curated: true\n# edited by hand"))
    settings = load_knowledge()
    with pytest.raises(PlraError, match=r"already exists and is not .* promoted"):
        kb.promote(settings, PROMOTED)
    result = run_plra("kb", "validate")
    assert result.returncode == 0 and f"note: {source} is ignored: {target}" in result.stderr, result.stderr
    assert source.exists() and "edited by hand" in target.read_text()


def test_a_kb_command_first_clears_old_temp_files_a_killed_write_left(kb_copy):
    import os
    import time

    old = time.time() - 2 * kb.STALE_AFTER_S
    stale = [kb_copy / "papers" / ".2304.11406.yaml.k1ll3d.tmp", kb_copy / ".compiled" / ".kb-x.json.a1b2.tmp"]
    young = kb_copy / "papers" / ".2407.11016.yaml.wr1t1ng.tmp"  # may be a write still going
    index_left = kb_copy / ".index-k1ll3d"
    index_left.mkdir()
    (index_left / "meta.json").write_text("{}")
    for path in [*stale, young]:
        path.parent.mkdir(exist_ok=True)
        path.write_text("half")
    for path in [*stale, index_left]:
        os.utime(path, (old, old))
    result = run_plra("kb", "validate")
    assert result.returncode == 0, result.stderr
    assert not any(p.exists() for p in [*stale, index_left]) and young.exists()


# ------------------------------------------------------------------------------ relevance gate (kb update)


@pytest.fixture(scope="module")
def gate(knowledge):
    from plra.knowledge.relevance import RelevanceGate

    return RelevanceGate.open(load_knowledge({"datasets_dir": FIELD_DIR.parent}), knowledge)


def test_relevance_gate_passes_every_curated_paper_and_rejects_off_topic_abstracts(gate):
    from plra.knowledge.relevance import calibration

    report = calibration(gate, [(e.title, e.abstract) for e in OFF_TOPIC])
    # Each curated paper is scored as if it were new: its own entry, names and keywords left out.
    assert report["curated"]["n"] == len(gate.knowledge.papers) and report["off_topic"]["n"] == 8
    assert report["curated_rejected"] == 0 and report["off_topic_accepted"] == 0
    assert report["off_topic"]["max"] + 0.05 < gate.threshold < report["curated"]["min"] - 0.05  # a clear margin
    bread = gate.assess(OFF_TOPIC[0].title, OFF_TOPIC[0].abstract)
    assert not bread.accepted and bread.terms == []
    assert bread.reason.startswith("relevance 0.") and "no field term in title/abstract" in bread.reason
    assert f"nearest curated paper {bread.nearest} at" in bread.reason and bread.nearest in gate.knowledge.papers
    lamp = gate.knowledge.papers["2304.11406"]
    alone = gate.assess(lamp.title, lamp.summary_en, exclude="2304.11406")
    assert alone.accepted and alone.nearest != "2304.11406"  # left out: another paper is its nearest
    assert gate.assess(lamp.title, lamp.summary_en).nearest == "2304.11406"


def test_field_terms_count_each_stretch_of_text_once(gate):
    from plra.knowledge.relevance import found_terms

    labels = [t.label for t in found_terms(gate.terms, "Personalized memory benchmarks and evaluation")]
    assert labels[0] == "personaliz" and "persona" not in labels  # "persona" is inside "personalized"
    assert {"memory", "benchmark", "evaluation"} <= set(labels)
    assert "TALLRec" in [t.label for t in found_terms(gate.terms, "We compare with TALLRec.")]
    own = found_terms(gate.terms, "We compare with TALLRec.", exclude="2305.00447")
    assert "TALLRec" not in [t.label for t in own]  # a paper's own name is left out when it is the one scored


def test_incoming_entry_keeps_relevance_and_validates_it():
    from plra.types import IncomingPaper

    base = {"arxiv_id": "2501.00001", "title": "A paper", "authors": ["A"], "year": 2025,
            "url": "https://arxiv.org/abs/2501.00001"}  # fmt: skip
    assert IncomingPaper(**base, relevance=0.8, nearest_curated="2304.11406").nearest_curated == "2304.11406"
    assert IncomingPaper(**base).relevance is None  # entries fetched before the gate still load
    with pytest.raises(ValueError, match="less than or equal to 1"):
        IncomingPaper(**base, relevance=1.5)
    with pytest.raises(ValueError, match="is not an arXiv id"):
        IncomingPaper(**base, nearest_curated="LaMP")


IN_FIELD = AtomEntry(
    "2509.20001",
    1,
    "Personalized Long-Term Memory for LLM Assistants",
    ["A. Fixture"],
    "2025-09-15",
    "2025-09-15",
    "We study how large language model assistants keep a long-term memory of each user across sessions and "
    "use the user profile to personalize responses, evaluated on LaMP and on multi-session chat.",
)


def test_update_rejects_off_topic_papers_with_the_reason(kb_copy):
    feed = [IN_FIELD, *OFF_TOPIC[:4]]
    with ArxivServer(feed) as server:
        env = {"ARXIV_API_URL": server.url, "PLRA_ARXIV_DELAY_S": "0"}
        result = run_plra("kb", "update", "--query", "all:bread OR all:memory", "--json", env=env)
        assert result.returncode == 0, result.stderr
        outcome = json.loads(result.stdout)
        assert outcome["new"] == ["2509.20001"] and [r["arxiv_id"] for r in outcome["accepted"]] == ["2509.20001"]
        assert [r["arxiv_id"] for r in outcome["rejected"]] == [e.arxiv_id for e in OFF_TOPIC[:4]]
        bread = outcome["rejected"][0]
        assert bread["title"] == OFF_TOPIC[0].title and "no field term in title/abstract" in bread["reason"]
        assert bread["relevance"] < 0.51 and bread["nearest_curated"] in bread["reason"]
        assert [p.name for p in (kb_copy / "incoming").glob("*.yaml")] == ["2509.20001.yaml"]
        entry = kb.read_yaml(kb_copy / "incoming" / "2509.20001.yaml")[0]
        assert entry["relevance"] >= 0.51 and entry["nearest_curated"] == outcome["accepted"][0]["nearest_curated"]
        log = [json.loads(line) for line in (kb_copy / "incoming" / "rejected.jsonl").read_text().splitlines()]
        assert [row["arxiv_id"] for row in log] == [e.arxiv_id for e in OFF_TOPIC[:4]]
        assert log[0]["query"] == "all:bread OR all:memory" and log[0]["reason"] == bread["reason"]
        text = run_plra("kb", "update", "--query", "all:bread", env=env)
        assert text.returncode == 0, text.stderr
        assert "4 rejected as off-topic" in text.stdout and f"rejected {OFF_TOPIC[0].arxiv_id} " in text.stdout
        assert "rejected.jsonl" in text.stdout
        assert len((kb_copy / "incoming" / "rejected.jsonl").read_text().splitlines()) == 4  # one row per paper
        kept = json.loads(run_plra("kb", "update", "-q", "all:bread", "--min-relevance", "0", "--json", env=env).stdout)
    assert kept["rejected"] == [] and sorted(kept["new"]) == sorted(e.arxiv_id for e in OFF_TOPIC[:4])


def test_reviewed_through_date_and_digest_of_what_was_added(kb_copy):
    stats = json.loads(run_plra("kb", "stats", "--json").stdout)
    assert stats["reviewed_through"] == "2026-12-07" and stats["overviews"] == 17 and stats["claims"] >= 60
    entry = kb_copy / "papers" / "2304.11406.yaml"
    entry.write_text(entry.read_text().replace('added: "2026-11-22"', 'added: "2026-12-08"'))
    late = run_plra("kb", "validate")
    assert late.returncode == 1 and "2026-12-07 is before the newest paper's added date 2026-12-08" in late.stderr
    entry.write_text(entry.read_text().replace('added: "2026-12-08"', 'added: "2026-12-07"'))
    digest = json.loads(run_plra("kb", "digest", "--since", "2026-12-07", "--json").stdout)
    knowledge = kb.load(load_knowledge())
    added = {p.arxiv_id for p in knowledge.papers.values() if str(p.added) >= "2026-12-07"}
    listed = {row["arxiv_id"]: row for rows in digest["topics"].values() for row in rows}
    assert set(listed) == added and "2304.11406" in listed  # every paper added since the day, and only those
    assert (
        listed["2304.11406"]["line"].startswith("LaMP (2023): ")
        and "[arXiv:2304.11406]" in listed["2304.11406"]["line"]
    )
    assert list(digest["topics"]) == [t for t in knowledge.topics if t in digest["topics"]]  # taxonomy order
    text = run_plra("kb", "digest", "--since", "2030-01-01").stdout
    assert "Nothing was added since 2030-01-01 (reviewed through 2026-12-07)" in text
    assert run_plra("kb", "digest", "--since", "yesterday").returncode == 2
