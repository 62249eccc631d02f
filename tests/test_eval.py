import collections
import json
import math
from pathlib import Path

import pytest

from plra.errors import PlraError
from plra.knowledge import kb
from plra.settings import LaunchSettings, load_knowledge, load_profile
from plra.toolchain import envs, evaluate, serve
from tests.conftest import free_port, run_plra

BENCH = Path(__file__).resolve().parent.parent / "datasets" / "personalized-llm" / "benchmark"


def test_benchmark_sizes_languages_and_sources():
    papers = kb.load(load_knowledge()).papers
    mcq = evaluate.load_benchmark(BENCH, "mcq")
    qa = evaluate.load_benchmark(BENCH, "qa")
    attribution = evaluate.load_benchmark(BENCH, "attribution")
    assert len(mcq) >= 300 and sum(r["lang"] == "zh" for r in mcq) >= 100
    assert len(qa) >= 120 and len(attribution) >= 100
    letters = collections.Counter(r["answer"] for r in mcq)
    assert max(letters.values()) - min(letters.values()) <= 0.1 * len(mcq)  # no favourite letter to guess
    for row in mcq + qa:
        assert set(row["source"]) <= set(papers)
    assert all(r["answer"] in papers for r in attribution)
    assert all(len(set(r[o] for o in "ABCD")) == 4 for r in mcq)  # four distinct options


def test_malformed_benchmark_row_names_file_and_line(tmp_path):
    good = {"question": "q", "A": "a", "B": "b", "C": "c", "D": "d", "answer": "A"}
    (tmp_path / "mcq.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({**good, "answer": "E"}) + "\n")
    with pytest.raises(PlraError, match=r"mcq\.jsonl:2: field 'answer' must be one of A, B, C, D"):
        evaluate.load_benchmark(tmp_path, "mcq")
    (tmp_path / "qa.jsonl").write_text(json.dumps({"question": "q", "key_points": ["k"]}) + "\n{oops\n")
    with pytest.raises(PlraError, match=r"qa\.jsonl:2: invalid JSON"):
        evaluate.load_benchmark(tmp_path, "qa")


def test_spread_takes_rows_across_the_file():
    rows = [{"i": i} for i in range(10)]
    assert [r["i"] for r in evaluate.spread(rows, 3)] == [0, 3, 6]
    assert evaluate.spread(rows, None) == rows


def test_slurm_runner_is_opencompass_own():
    slurm = LaunchSettings(launcher="slurm", partition="llm")
    assert evaluate.runner_args(slurm) == ["--slurm", "-p", "llm"]  # no --debug: it would run jobs one by one
    assert evaluate.runner_args(slurm, 8, "auto") == ["--slurm", "-p", "llm", "--max-num-workers", "8", "-q", "auto"]
    assert evaluate.runner_args(LaunchSettings()) == ["--debug"]
    assert evaluate.runner_args(LaunchSettings(launcher="pytorch")) == ["--debug"]  # a training launcher: local
    with pytest.raises(PlraError, match="--max-num-workers and --quotatype are for slurm runs: add --slurm"):
        evaluate.runner_args(LaunchSettings(), 8)
    with pytest.raises(PlraError, match="needs a partition: --slurm PARTITION"):
        evaluate.runner_args(LaunchSettings(launcher="slurm"))


def test_eval_dry_run_prints_the_opencompass_command_and_writes_nothing(tiny_model_dir):
    config = str(evaluate.REPO_ROOT / "eval" / "eval_plllm_hf.py")
    workdir = str(evaluate.REPORTS / "<timestamp>" / "opencompass")
    args = ("eval", "--profile", "tiny", "--models", "base", "--rag", "off", "--dry-run", "--json")
    slurm = run_plra(*args, "--slurm", "llm", "--max-num-workers", "4", "--quotatype", "spot")
    assert slurm.returncode == 0, slurm.stderr
    plan = json.loads(slurm.stdout)
    assert plan["argv"] == ["opencompass", config, "-w", workdir, "--slurm", "-p", "llm", "--max-num-workers", "4",
                            "-q", "spot"]  # fmt: skip
    assert json.loads(plan["env"]["PLRA_EVAL_MODELS"]) == [{"abbr": "base", "path": str(tiny_model_dir)}]
    assert plan["env"]["PLRA_EVAL_VARIANTS"] == "norag"
    local = json.loads(run_plra(*args).stdout)
    assert local["argv"] == ["opencompass", config, "-w", workdir, "--debug"]
    from_env = json.loads(run_plra(*args, env={"PLRA_LAUNCHER": "slurm", "PLRA_PARTITION": "gpu"}).stdout)
    assert from_env["argv"][-3:] == ["--slurm", "-p", "gpu"]  # the [launch] settings reach eval too
    assert not (evaluate.REPORTS / "<timestamp>").exists()
    text = run_plra(*args[:-1], "--slurm", "llm")
    assert text.returncode == 0 and text.stdout.splitlines()[-1].endswith(f"-w '{workdir}' --slurm -p llm")


def test_opencompass_accepts_the_slurm_command(tmp_path, tiny_model_dir):
    # OpenCompass's own --dry-run parses the arguments and partitions the tasks, then stops before any srun.
    evaluate.prepare(tmp_path / "data", 2, ["norag"])
    runner = evaluate.runner_args(LaunchSettings(launcher="slurm", partition="llm"), 3, "auto")
    command = evaluate.plan(load_profile("tiny"), ["base"], ["norag"], None, None, tmp_path, runner)
    log = tmp_path / "opencompass.log"
    code = envs.run("eval", [*command["argv"], "--dry-run"], cwd=tmp_path, extra_env=command["env"], log_path=log)
    assert code == 0, log.read_text()[-3000:]
    assert "Partitioned into" in log.read_text()


def _check_summary(summary: dict, models: set[str], variants: set[str]) -> None:
    results = summary["results"]
    assert {r["model"] for r in results} == models and {r["variant"] for r in results} == variants
    for r in results:
        assert 0 <= r["value"] <= 100
        if "low" in r:  # every per-question score carries its bootstrap interval
            assert r["low"] <= r["value"] <= r["high"] and r["n"] >= 1
    for model in models:
        for variant in variants:
            table = summary["table"][model][variant]
            assert {"acc_origin"} <= set(table["mcq"]) and {"acc_origin"} <= set(table["attribution"])
            assert "key_point_recall" in table["qa"]


@pytest.mark.slow
def test_opencompass_on_the_tiny_base_model_with_and_without_retrieval():
    result = run_plra("eval", "--models", "base", "--rag", "both", "--limit", "3", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    _check_summary(summary, {"base"}, {"norag", "rag"})
    run_dir = Path(summary["dir"])
    assert json.loads((run_dir / "summary.json").read_text())["results"] == summary["results"]
    assert (run_dir / "summary.png").stat().st_size > 5000 and "| base | rag |" in (run_dir / "summary.md").read_text()
    # Choice questions were scored by loss: each prediction is one of the four letters, in every row.
    predictions = evaluate._predictions(run_dir / "opencompass", "base", "plllm_mcq_norag")
    assert len(predictions) == 3 and {p["prediction"] for p in predictions} <= set("ABCD")
    rag_prompt = json.loads((run_dir / "data" / "rag" / "qa.jsonl").read_text().splitlines()[0])["question"]
    assert "arXiv:" in rag_prompt  # the retrieval variant carries knowledge-base passages
    compared = json.loads(run_plra("eval", "--compare", str(run_dir), str(run_dir), "--json").stdout)
    assert compared and all(row["delta"] == 0 for row in compared)


@pytest.mark.slow
def test_opencompass_through_the_cpu_server(tiny_model_dir):
    port = free_port()
    state = serve.start(load_profile("tiny"), tiny_model_dir, port, log=lambda _m: None)
    try:
        result = run_plra("eval", "--api", state["url"], "--rag", "off", "--limit", "2", "--json")
    finally:
        serve.stop(port)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "api"
    _check_summary(summary, {"served"}, {"norag"})
    assert "self-judging is weak" in result.stderr
    judged = summary["table"]["served"]["norag"]["qajudge"]  # GenericLLMEvaluator, the served model as judge
    assert judged and all(0 <= v <= 100 for v in judged.values())


def test_choice_rows_rotate_options_and_keep_the_gold_answer():
    rows = evaluate.rotations("q1", "Which?", ["right", "w1", "w2", "w3"], 0, count=4)
    assert [r["rotation"] for r in rows] == [0, 1, 2, 3]
    assert [r[r["answer"]] for r in rows] == ["right"] * 4  # the gold letter follows its option
    assert len({r["answer"] for r in rows}) == 4  # ... into every position
    with pytest.raises(PlraError, match="eval_rotations must be between 1 and 4"):
        evaluate.rotations("q1", "Which?", ["a", "b", "c", "d"], 0, count=5)


def test_stratified_sample_is_fixed_and_covers_every_stratum():
    rows = [{"id": f"q{i}", "lang": lang, "topic": topic, "question": f"q{i}"}
            for i, (lang, topic) in enumerate([(lang, t) for lang in ("en", "zh") for t in "abc"] * 5)]  # fmt: skip
    sample = evaluate.stratified(rows, 6)
    assert {(r["lang"], r["topic"]) for r in sample} == {(lang, t) for lang in ("en", "zh") for t in "abc"}
    assert sample == evaluate.stratified(list(reversed(rows)), 6)  # the same sample whatever the file order


def test_attribution_candidates_are_the_gold_paper_and_three_of_its_topic():
    papers = kb.load(load_knowledge()).papers
    row = next(r for r in evaluate.load_benchmark(load_knowledge().field_dir / "benchmark", "attribution"))
    choices, gold = evaluate.attribution_choices(row, papers)
    assert len(set(choices)) == 4 and choices[gold].startswith(papers[row["answer"]].title)
    titles = {f"{p.title} ({p.year})": p for p in papers.values()}
    assert all(row["topic"] in titles[c].topics for c in choices)
    assert evaluate.attribution_choices(row, papers) == (choices, gold)  # deterministic


def _fake_predictions(root: Path, model: str, abbr: str, letters: list[str]) -> None:
    folder = root / "20260101_000000" / "predictions" / model
    folder.mkdir(parents=True, exist_ok=True)
    half = len(letters) // 2  # two shards, as OpenCompass splits a large set
    for shard, part in enumerate((letters[:half], letters[half:])):
        rows = {str(i): {"prediction": p} for i, p in enumerate(part)}
        (folder / f"{abbr}_{shard}.json").write_text(json.dumps(rows))


def test_item_scores_read_predictions_per_question_and_pair_tuned_with_base(tmp_path):
    data = tmp_path / "data" / "norag"
    data.mkdir(parents=True)
    rows = [r for q in range(20) for r in evaluate.rotations(f"q{q}", "Which?", ["a", "b", "c", "d"], q % 4, count=2)]
    (data / "mcq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "attribution.jsonl").write_text("")
    (data / "qa.jsonl").write_text(json.dumps({"qid": "o1", "key_points": ["user memory"]}) + "\n")
    gold = [r["answer"] for r in rows]
    _fake_predictions(tmp_path / "oc", "base", "plllm_mcq_norag", ["A"] * len(rows))
    _fake_predictions(tmp_path / "oc", "tuned", "plllm_mcq_norag", gold)  # right every time
    scores = evaluate.item_scores(tmp_path / "oc", tmp_path / "data", ["base", "tuned"], ["norag"])
    base_origin = scores[("base", "norag", "mcq", "acc_origin")]
    assert len(base_origin) == 20 and sum(base_origin.values()) == 5  # gold A in the first rotation of 5 of 20
    assert sum(scores[("base", "norag", "mcq", "acc_circular")].values()) == 0  # never right in both orders
    assert sum(scores[("tuned", "norag", "mcq", "acc_circular")].values()) == 20
    results, differences = evaluate.with_intervals(scores)
    origin = next(d for d in differences if d["metric"] == "acc_origin")
    assert origin["delta"] == 75.0 and origin["low"] > 0 and origin["verdict"] == "higher than base"
    assert origin["mcnemar_p"] < 0.001 and origin["n"] == 20
    assert all(r["low"] <= r["value"] <= r["high"] for r in results)
    assert "higher than base" in "\n".join(evaluate.difference_lines(differences))


def test_heldout_perplexity_rows_and_the_paired_loss_difference():
    base = [3.0, 3.2, 2.9, 3.1, 3.3, 3.0, 2.8, 3.4]
    tuned = [x - 0.4 for x in base]  # the tuned model predicts every held-out document better
    results, [difference] = evaluate.heldout_rows({"base": base, "tuned": tuned})
    by_model = {r["model"]: r for r in results}
    assert by_model["base"]["value"] == pytest.approx(math.exp(sum(base) / len(base)), abs=0.01)
    assert by_model["tuned"]["value"] < by_model["base"]["value"]
    assert all(r["low"] <= r["value"] <= r["high"] and r["n"] == 8 for r in results)
    assert difference["delta"] == pytest.approx(-0.4) and difference["verdict"] == "lower than base"
    results, differences = evaluate.heldout_rows({"base": base})
    assert len(results) == 1 and differences == []  # nothing to pair without a tuned model


def test_the_report_says_whether_training_met_the_target():
    base = [3.0, 3.2, 2.9, 3.1, 3.3, 3.0, 2.8, 3.4]
    _, held = evaluate.heldout_rows({"base": base, "tuned": [x - 0.4 for x in base]})
    right = {f"q{i}": float(i % 4 == 0) for i in range(40)}  # the base: 10 of 40

    def mcq(tuned: dict[str, float]) -> list[dict]:
        return evaluate.with_intervals({("base", "norag", "mcq", "acc_origin"): right,
                                        ("tuned", "norag", "mcq", "acc_origin"): tuned})[1]  # fmt: skip

    better = mcq({q: 1.0 if i < 30 else v for i, (q, v) in enumerate(right.items())})
    same = mcq(dict(right))
    met = "\n".join(evaluate.target_lines(held + better))
    assert "held-out perplexity: lower than base" in met and "MCQ accuracy without retrieval: higher than base" in met
    assert "Target met" in met
    unmet = "\n".join(evaluate.target_lines(held + same))
    assert "no measurable difference" in unmet and "Target not met" in unmet
    assert evaluate.target_lines([]) == []


def test_scoring_dtype_is_bfloat16_only_on_cores_that_do_it_natively(tmp_path):
    cpu = load_profile("tiny")
    native, plain = tmp_path / "native", tmp_path / "plain"
    native.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert evaluate.scoring_dtype(cpu, native) == "bfloat16"
    assert evaluate.scoring_dtype(cpu, plain) == "float32"
    assert evaluate.scoring_dtype(cpu, tmp_path / "absent") == "float32"
    assert evaluate.scoring_dtype(cpu.model_copy(update={"eval_dtype": "float32"}), native) == "float32"
    assert evaluate.scoring_dtype(cpu.model_copy(update={"device": "cuda"}), plain) == "float16"


def test_prepared_choice_rows_run_shortest_first_with_each_questions_rotations_together(tmp_path):
    evaluate.prepare(tmp_path, 12, ["norag"], qa_limit=2, rotation_count=2)
    rows = [json.loads(line) for line in (tmp_path / "norag" / "mcq.jsonl").read_text().splitlines()]
    sizes = [sum(len(r[c]) for c in ("question", *evaluate.LETTERS)) for r in rows]
    assert len(rows) == 24 and sizes == sorted(sizes)
    assert all(rows[i]["qid"] == rows[i + 1]["qid"] for i in range(0, 24, 2))
    assert [r["rotation"] for r in rows] == [0, 1] * 12
