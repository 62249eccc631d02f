"""`plra ideas`: directions from the gaps the field's synthesis records (open problems, mixed or conditional
evidence), each with why now, a first experiment on a knowledge-base benchmark against a baseline, and what would
count as a result; never a pairing of two papers."""

import json
import re

import pytest

from plra.knowledge import kb
from plra.research.write import MARKER, standalone
from plra.settings import load_knowledge
from tests.conftest import run_plra
from tests.openai_fixture import ScriptedOpenAI

PAIRING = re.compile(r"^(Combine|Evaluate) \S+ (with|on) ")
YEAR = re.compile(r"\((?:19|20)\d{2}\)|（(?:19|20)\d{2}）")


@pytest.fixture(scope="module")
def knowledge():
    return kb.load(load_knowledge())


def run_ideas(*args: str) -> list[dict]:
    result = run_plra("ideas", *args, "--no-llm", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def cited(text: str) -> set[str]:
    return {m.group(1) for m in MARKER.finditer(text)}


def clean(value: str) -> str:
    return re.sub(r"\s*\([^)]*\)", "", value).strip()


def check_idea(idea: dict, knowledge) -> None:
    for part in ("title", "gap", "experiment", "why_now", "result"):
        assert idea[part] and not PAIRING.match(idea[part]), (part, idea[part])
    assert len(idea["cited"]) >= 2 and all(pid in knowledge.papers for pid in idea["cited"])
    # The gap is the synthesis's own: an open problem of the topic's overview, or the claim it names.
    if idea["kind"] == "open_problem":
        section = knowledge.overviews[idea["topic"]].section("open_problems").en
        assert cited(idea["gap"]) and any(cited(idea["gap"]) == cited(s) for s in re.split(r"(?<=\.)\s", section))
    else:
        claim = next(c for c in knowledge.claims if f"claim:{c.id}" == idea["source"])
        assert claim.contradicts or idea["kind"] == "conditional"
        assert cited(idea["gap"]) <= set(claim.papers())
    # Why now: the newest evidence, with its year, no older than the papers the gap rests on.
    assert YEAR.search(idea["why_now"]), idea["why_now"]
    newest = knowledge.papers[idea["newest"]["arxiv_id"]]
    assert idea["newest"]["arxiv_id"] in cited(idea["why_now"]) and str(newest.year) in idea["why_now"]
    assert newest.year >= max(knowledge.papers[p].year for p in cited(idea["gap"]) if p in knowledge.papers)
    # The experiment runs on a benchmark the knowledge base holds, against a baseline method it holds.
    bench = knowledge.papers[idea["benchmark"]["arxiv_id"]]
    assert idea["benchmark"]["dataset"] in {clean(d) for d in bench.datasets}
    assert idea["benchmark"]["dataset"] in idea["experiment"] and bench.arxiv_id in cited(idea["experiment"])
    assert idea["benchmark"]["metric"] in {clean(m) for m in bench.metrics}
    baseline = knowledge.papers[idea["baseline"]["arxiv_id"]]
    assert baseline.arxiv_id in cited(idea["experiment"]) and baseline.topics[0] not in ("benchmark", "survey")


def test_ideas_on_memory_and_preference_learning_come_from_those_topics_open_problems(knowledge):
    items = run_ideas("memory and preference learning")
    assert len(items) == 5
    for idea in items:
        check_idea(idea, knowledge)
    asked = {"memory", "decoding-time", "personalized-alignment"}  # memory; preference learning
    assert all(idea["topic"] in asked for idea in items), [idea["topic"] for idea in items]
    kinds = [idea["kind"] for idea in items]
    assert kinds[0] == "open_problem" and kinds.count("open_problem") >= 3, kinds
    assert kinds.index("open_problem") < min((kinds.index(k) for k in kinds if k != "open_problem"), default=99)
    assert {"memory", "decoding-time"} <= {idea["topic"] for idea in items}, "both halves of the request"
    assert len({idea["title"] for idea in items}) == len(items)
    assert len({idea["experiment_kind"] for idea in items}) >= 3, "experiments fit their gaps, not one template"
    assert any(idea["newest"]["year"] == 2026 for idea in items)


def test_ideas_rank_the_asked_topics_own_open_problems_first(knowledge):
    items = run_ideas("role-playing agents", "--n", "3")
    assert items[0]["kind"] == "open_problem" and items[0]["topic"] == "role-play"
    for idea in items:
        check_idea(idea, knowledge)
    items = run_ideas("个性化对齐", "--n", "3", "--lang", "zh")
    assert all(re.search(r"[\u4e00-\u9fff]", idea["title"] + idea["experiment"]) for idea in items)
    assert all(YEAR.search(idea["why_now"]) for idea in items)
    assert items[0]["topic"] in ("personalized-alignment", "pluralistic-alignment")


def test_ideas_markdown_shows_gap_why_now_experiment_and_result():
    result = run_plra("ideas", "memory for personalized assistants", "--n", "2", "--no-llm")
    assert result.returncode == 0, result.stderr
    for label in ("**Gap.**", "**Why now.**", "**First experiment.**", "**What would count as a result.**"):
        assert result.stdout.count(label) == 2, label
    assert not re.search(r"^## \d+\. (Combine|Evaluate) ", result.stdout, re.M)


def test_open_problems_lose_their_numbering():
    assert standalone(
        "Evaluation realism is a third, because results are synthetic [arXiv:2502.13270].", "en", "open_problems"
    ) == ("Evaluation realism remains a gap, because results are synthetic [arXiv:2502.13270].")


def test_idea_pitches_from_a_model_are_kept_only_with_two_valid_citations():
    with ScriptedOpenAI(
        [
            lambda r: " ".join(re.findall(r"\[arXiv:\d{4}\.\d{4,5}\]", r["messages"][1]["content"])[:2]),
            "A pitch citing only [arXiv:2401.99999].",
        ]
    ) as server:
        result = run_plra("ideas", "memory for personalized assistants", "--n", "2", "--json", "--endpoint", server.url)
        prompt = server.requests[0]["messages"][1]["content"]
    first, second = json.loads(result.stdout)
    assert first["pitch"] and len(MARKER.findall(first["pitch"])) == 2
    assert second["pitch"] is None
    assert first["gap"] in prompt and first["experiment"] in prompt, "the model writes from the idea's material"
