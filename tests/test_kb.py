import csv
import json
import shutil
from pathlib import Path

import pytest

from plra import kb
from plra.errors import PlraError
from plra.settings import load_knowledge
from plra.types import CJK
from tests.conftest import run_plra

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
    incoming.update(curated=False, version=1, source_abstract="text from the feed")
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
    (kb_copy / "incoming" / "2410.03642.yaml").write_text(kb.dump_yaml(curated))
    target = kb.promote(settings, "2410.03642")
    assert target == kb_copy / "papers" / "2410.03642.yaml"
    assert not (kb_copy / "incoming" / "2410.03642.yaml").exists()
    promoted = kb.read_yaml(target)[0]
    assert promoted["curated"] is True and "source_abstract" not in promoted
    assert kb.load(settings).papers["2410.03642"].title == bare["title"]
