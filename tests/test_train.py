import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from plra.data import build as data_build
from plra.errors import PlraError
from plra.paths import REPO_ROOT
from plra.settings import LaunchSettings, load_knowledge, load_profile
from plra.toolchain import train
from plra.toolchain.model import chat
from tests.conftest import run_plra

CONFIGS = sorted((REPO_ROOT / "xtuner_configs").glob("*.py"))
EXPECTED = {"_e3.py": "sft.jsonl", "_pretrain_e1.py": "pretrain.jsonl", "_dpo_e1.py": "dpo.jsonl"}


@pytest.fixture(scope="module")
def training_data():
    settings = load_knowledge()
    data_build.build(settings, data_build.default_out_dir(settings), log=lambda _m: None)
    return data_build.default_out_dir(settings)


def test_the_shipped_configs_exist():
    names = {c.name for c in CONFIGS}
    assert {
        "internlm2_chat_7b_qlora_plllm_e3.py",
        "internlm2_chat_1_8b_qlora_plllm_e3.py",
        "internlm2_7b_qlora_plllm_pretrain_e1.py",
        "internlm2_chat_7b_qlora_plllm_dpo_e1.py",
        "llama3_8b_instruct_qlora_plllm_e3.py",
        "internlm3_8b_instruct_qlora_plllm_e3.py",
        "deepseek_v2_lite_chat_qlora_plllm_e3.py",
        "smollm2_135m_instruct_lora_plllm_e3.py",
    } <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_reads_what_data_build_writes(config, training_data, monkeypatch):
    from mmengine.config import Config

    for var in ("PLRA_MODEL_DIR", "PLRA_DATA_DIR", "PLRA_MAX_ITERS"):
        monkeypatch.delenv(var, raising=False)
    cfg = Config.fromfile(str(config))
    expected = next(v for k, v in EXPECTED.items() if config.name.endswith(k))
    data_path = Path(cfg.data_path)
    assert not data_path.is_absolute() and data_path.name == expected  # repo-relative, no machine paths
    assert (REPO_ROOT / data_path).exists()
    assert (training_data / expected).samefile(REPO_ROOT / data_path)
    if "qlora" in config.name:
        quant = cfg.model["llm"]["quantization_config"]
        assert quant["load_in_4bit"] and quant["bnb_4bit_quant_type"] == "nf4" and quant["bnb_4bit_use_double_quant"]
        targets = cfg.model["lora"]["target_modules"]
        if isinstance(targets, str):  # a regex (MoE): attention and shared experts, never the routed experts
            assert train.lora_targets(targets, "model.layers.3.self_attn.kv_b_proj")
            assert train.lora_targets(targets, "model.layers.3.mlp.shared_experts.down_proj")
            assert not train.lora_targets(targets, train.ROUTED_EXPERT_MODULE)
        else:
            assert len(targets) >= 5  # every linear layer


def test_7b_qlora_dry_run_fits_8_gib():
    result = run_plra("train", "--profile", "internlm2-7b", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)  # stdout holds the JSON alone
    assert plan["memory_gib"]["total"] <= 8.0
    assert plan["knobs"]["quantized_4bit"] and plan["knobs"]["batch_size"] == 1
    train_argv = plan["commands"][0]["argv"]
    assert train_argv[:3] == ["python", "-m", "plra.toolchain.workers.xtuner_entry"] and train_argv[3] == "train"
    assert [c["step"] for c in plan["commands"]] == ["train", "pth_to_hf", "merge"]


def test_internlm3_qlora_dry_run_says_why_it_needs_more_than_8_gib():
    result = run_plra("train", "--profile", "internlm3-8b", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    knobs, memory = plan["knobs"], plan["memory_gib"]
    assert knobs["model"] == "internlm/internlm3-8b-instruct" and knobs["quantized_4bit"] and knobs["lora_r"] == 8
    assert (knobs["max_length"], knobs["batch_size"]) == (512, 1)  # the internlm2-7b profile's settings
    # Why not 8 GiB: the untied 128,512 x 4,096 embeddings and head alone take 3.92 GiB in fp32 (peft's k-bit
    # preparation upcasts them); without them the run would fit in 8 GiB.
    assert 8.0 < memory["total"] <= 12.0
    assert memory["embeddings_and_head"] == pytest.approx(2 * 128512 * 4096 * 4 / train.GIB, abs=0.01)
    assert memory["total"] - memory["embeddings_and_head"] < 8.0
    config = Path(plan["config"]).read_text()
    assert "12 GB" in config and "embeddings and head" in config  # the config says why, and what to plan for


def test_multi_gpu_uses_torchrun_and_deepspeed():
    plan = json.loads(run_plra("train", "--profile", "internlm2-7b", "--gpus", "4", "--dry-run", "--json").stdout)
    argv = plan["commands"][0]["argv"]
    assert argv[0] == "torchrun" and "--nproc_per_node=4" in argv and "--nnodes=1" in argv
    assert argv[argv.index("--deepspeed") + 1] == "deepspeed_zero2" and argv[argv.index("--launcher") + 1] == "pytorch"
    assert plan["launch"]["launcher"] == "pytorch" and plan["launch"]["gpus"] == 4


SEVEN_B = REPO_ROOT / "xtuner_configs" / "internlm2_chat_7b_qlora_plllm_e3.py"
ENTRY = ["-m", "plra.toolchain.workers.xtuner_entry"]


def test_multi_node_each_rank_gets_torchrun_as_xtuner_builds_it():
    # XTuner's own variables (NPROC_PER_NODE, NNODES, NODE_RANK, ADDR) set the launch, as for `xtuner train`;
    # the port is torch's MASTER_PORT (XTuner's PORT is what web hosts set for an app).
    xtuner_env = {"NPROC_PER_NODE": "8", "NNODES": "2", "ADDR": "node0", "MASTER_PORT": "29601", "PORT": "7860"}
    plans = []
    for rank in (0, 1):
        result = run_plra("train", "--profile", "internlm2-7b", "--run-name", "two-nodes", "--dry-run", "--json",
                          env={**xtuner_env, "NODE_RANK": str(rank)})  # fmt: skip
        assert result.returncode == 0, result.stderr
        plans.append(json.loads(result.stdout))
    work_dir = str(train.WORK_DIRS / "internlm2-7b" / "sft" / "two-nodes" / "xtuner")
    for rank, plan in enumerate(plans):
        train_step = plan["commands"][0]
        assert train_step["argv"] == [
            "torchrun", "--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=8", "--master_addr=node0",
            "--master_port=29601", *ENTRY, "train", str(SEVEN_B), "--work-dir", work_dir,
            "--launcher", "pytorch", "--deepspeed", "deepspeed_zero2",
        ]  # fmt: skip
    # Rank 0 writes the checkpoint and last_checkpoint: node 0 alone converts and merges, on a GPU.
    assert [c["step"] for c in plans[0]["commands"]] == ["train", "pth_to_hf", "merge"]
    assert [c["step"] for c in plans[1]["commands"]] == ["train"]
    merge = plans[0]["commands"][2]["argv"]
    assert merge[:3] == ["python", *ENTRY] and merge[merge.index("--device") + 1] == "cuda"


def test_slurm_launcher_builds_srun_with_xtuner_slurm_launcher():
    result = run_plra("train", "--profile", "internlm2-7b", "--launcher", "slurm", "--partition", "llm",
                      "--nnodes", "2", "--gpus", "8", "--master-port", "29702", "--dry-run", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    train_step, pth_to_hf, merge = plan["commands"]
    srun = ["srun", "-p", "llm", "--job-name=plra-internlm2-7b-sft"]
    assert train_step["argv"][:9] == [*srun, "--nodes=2", "--ntasks-per-node=8", "--gres=gpu:8",
                                      "--kill-on-bad-exit=1", "python"]  # fmt: skip
    assert train_step["argv"][9:13] == [*ENTRY, "train", str(SEVEN_B)]
    assert train_step["argv"][-4:] == ["--launcher", "slurm", "--deepspeed", "deepspeed_zero2"]
    assert "torchrun" not in train_step["argv"]  # srun starts every process; mmengine reads SLURM_* itself
    assert train_step["env"]["MASTER_PORT"] == "29702"  # the port mmengine's slurm launcher rendezvous on
    one_gpu = [*srun, "--nodes=1", "--ntasks=1", "--gres=gpu:1", "python", *ENTRY]
    assert pth_to_hf["argv"][: len(one_gpu) + 1] == [*one_gpu, "pth_to_hf"]
    assert merge["argv"][: len(one_gpu) + 1] == [*one_gpu, "merge"]


@pytest.mark.parametrize(
    ("device", "launch", "message"),
    [
        ("cpu", {"nnodes": 2}, "--nnodes 2 needs GPUs: pass --gpus N"),
        ("cpu", {"launcher": "slurm", "partition": "llm"}, "--launcher slurm needs GPUs"),
        ("cuda", {"nnodes": 2, "node_rank": 2, "gpus": 8}, "--node-rank 2 must be below --nnodes 2"),
        ("cuda", {"nnodes": 2, "gpus": 8}, "--nnodes 2 needs --master-addr HOST"),
        ("cuda", {"nnodes": 2, "gpus": 8, "master_addr": "node0"}, "--nnodes 2 needs --run-name NAME"),
        ("cuda", {"launcher": "slurm"}, "--launcher slurm needs --partition PARTITION"),
        ("cuda", {"partition": "llm", "gpus": 8}, "--partition llm is for slurm: add --launcher slurm"),
        ("cuda", {"launcher": "slurm", "partition": "llm", "nnodes": 2, "node_rank": 1}, "slurm assigns node ranks"),
        ("cuda", {"launcher": "slurm", "partition": "llm", "master_addr": "n0"}, "drop --node-rank and --master-addr"),
    ],
)
def test_launch_mistakes_name_the_flag(device, launch, message):
    with pytest.raises(PlraError, match=message):
        train.resolve_launch(LaunchSettings(**launch), device)


def test_launch_defaults_follow_the_process_count():
    cpu = train.resolve_launch(LaunchSettings(), "cpu")
    assert (cpu.gpus, cpu.launcher) == (0, None)  # a CPU profile: one process, merged on the CPU
    one = train.resolve_launch(LaunchSettings(), "cuda")
    assert (one.gpus, one.launcher) == (1, None)  # one GPU: plain python, as `xtuner train` does
    assert train.resolve_launch(LaunchSettings(gpus=2), "cuda").launcher == "pytorch"
    multi = train.resolve_launch(LaunchSettings(nnodes=2, gpus=1, master_addr="n0"), "cuda", named_run=True)
    assert multi.launcher == "pytorch" and multi.nnodes == 2
    assert train.resolve_launch(LaunchSettings(launcher="pytorch", gpus=1), "cuda").launcher == "pytorch"
    for bad in ("latest", "a/b", "../up", ""):
        with pytest.raises(PlraError, match="--run-name"):
            train.run_folder(load_profile("tiny"), "sft", bad)


def test_launch_mistake_is_one_line_from_the_cli():
    result = run_plra("train", "--profile", "internlm2-7b", "--launcher", "slurm", "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --launcher slurm needs --partition PARTITION: the slurm partition srun submits to"
    )


def test_memory_estimate_grows_with_length_rank_and_vocab():
    shape = train.KNOWN_SHAPES["internlm/internlm2-chat-7b"]
    knobs = train.TrainKnobs("m", True, True, 8, 512, 1, False, 2)
    base = train.estimate_memory(knobs, shape)["total"]
    assert train.estimate_memory(knobs.__class__(**{**knobs.__dict__, "max_length": 2048}), shape)["total"] > base
    assert train.estimate_memory(knobs.__class__(**{**knobs.__dict__, "lora_r": 64}), shape)["total"] > base
    llama = train.estimate_memory(knobs, train.KNOWN_SHAPES["meta-llama/Meta-Llama-3-8B-Instruct"])["total"]
    assert llama > base
    full = train.estimate_memory(knobs.__class__(**{**knobs.__dict__, "quantized_4bit": False}), shape)["total"]
    assert full > 2 * base  # fp16 weights take four times the space of 4-bit ones


def test_estimate_uses_local_config_json(tiny_model_dir):
    shape = train.shape_from_config_json(tiny_model_dir / "config.json")
    assert shape == train.KNOWN_SHAPES["models/smollm2-135m-instruct"]
    assert 130e6 < shape.linear_params + shape.vocab * shape.hidden < 140e6  # SmolLM2-135M


# Parameter counts from the model cards, and (vocabulary, hidden size) for the untied embeddings and head:
# the rest of the parameters are linear layers that QLoRA holds at 4 bits (plus bitsandbytes' scales).
MODEL_CARDS = {
    "llama3-8b": ("meta-llama/Meta-Llama-3-8B-Instruct", 8.03e9, 128256, 4096),
    "deepseek-v2-lite": ("deepseek-ai/DeepSeek-V2-Lite-Chat", 15.7e9, 102400, 2048),
}


def test_the_known_shapes_match_the_model_cards():
    for model, params, vocab, hidden in MODEL_CARDS.values():
        shape = train.KNOWN_SHAPES[model]
        assert abs(shape.total_params - params) / params < 0.01
        assert (shape.vocab, shape.hidden) == (vocab, hidden)
    deepseek = train.KNOWN_SHAPES["deepseek-ai/DeepSeek-V2-Lite-Chat"]
    assert deepseek.moe_layers == 26 and deepseek.routed_experts == 64 and deepseek.experts_per_token == 6
    # All experts are held in memory: the quantized weights are those of 15.3B linear parameters, not 2.4B.
    assert 15.2e9 < deepseek.linear_params < 15.4e9
    # LoRA on every routed expert would multiply the trainable parameters ~20 times.
    assert deepseek.lora_params(16, routed_experts=True) > 15 * deepseek.lora_params(16)


@pytest.mark.parametrize("profile", sorted(MODEL_CARDS))
def test_gpu_profile_dry_run_estimates_memory_from_the_parameter_count(profile):
    result = run_plra("train", "--profile", profile, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    model, params, vocab, hidden = MODEL_CARDS[profile]
    assert plan["knobs"]["model"] == model and plan["knobs"]["quantized_4bit"]
    memory = plan["memory_gib"]
    linear_gib = (params - 2 * vocab * hidden) / train.GIB
    assert 0.5 * linear_gib <= memory["weights_4bit"] <= 0.55 * linear_gib  # 4 bits + absmax scales
    assert 0.95 <= memory["embeddings_and_head"] / (2 * vocab * hidden * 4 / train.GIB) <= 1.05  # fp32
    assert memory["total"] <= 12.0  # both configs plan for a 12 GB GPU
    assert memory["total"] == pytest.approx(sum(v for k, v in memory.items() if k != "total"), abs=0.05)
    if profile == "deepseek-v2-lite":
        assert 7.0 <= memory["weights_4bit"] <= 7.9  # 4-bit 15.7B model (~7.3-8.5 GB)
        assert not plan["knobs"]["lora_routed_experts"] and memory["lora_params_grads_adam"] < 0.5


# Builds a small DeepSeek-V2 (MLA, routed and shared experts, a dense first layer) from xtuner's copy of the
# model's code, applies the shipped config's LoRA targets with peft, and runs one training step: the names
# the regex picks, and the counts the memory estimate uses, are checked against a real model.
DEEPSEEK_PROBE = """
import json, sys
from plra.toolchain.workers.xtuner_entry import install_triton_ops_standin, restore_removed_transformers_names
install_triton_ops_standin()
restore_removed_transformers_names()  # xtuner's DeepSeek-V2 code imports a name transformers 4.48 removed
import torch
from mmengine.config import Config
from peft import LoraConfig, get_peft_model
from xtuner.model.transformers_models.deepseek_v2 import DeepseekV2Config, DeepseekV2ForCausalLM

lora = Config.fromfile(sys.argv[1]).model["lora"]
torch.manual_seed(0)
config = DeepseekV2Config(**json.loads(sys.argv[2]), topk_method="greedy", n_group=1, topk_group=1,
                          rope_scaling=None, attn_implementation="eager")
model = DeepseekV2ForCausalLM(config)
linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not model.lm_head)
total = sum(p.numel() for name, p in model.named_parameters() if "norm" not in name)
tuned = get_peft_model(model, LoraConfig(r=lora["r"], lora_alpha=lora["lora_alpha"],
                                         target_modules=lora["target_modules"], task_type="CAUSAL_LM"))
targeted = sorted(n.removeprefix("base_model.model.") for n, m in tuned.named_modules() if hasattr(m, "lora_A")
                  and isinstance(getattr(m, "base_layer", None), torch.nn.Linear))
trainable = [p for p in tuned.parameters() if p.requires_grad]
tuned.train()
ids = torch.randint(0, config.vocab_size, (1, 12))
tuned(input_ids=ids, labels=ids).loss.backward()
print(json.dumps({"linear": linear, "total": total, "targeted": targeted, "rank": lora["r"],
                  "trainable": sum(p.numel() for p in trainable),
                  "all_grads": all(p.grad is not None for p in trainable)}))
"""


def test_deepseek_lora_targets_and_shape_match_a_real_small_model():
    small = {
        "vocab_size": 128, "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
        "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4, "n_shared_experts": 2,
        "n_routed_experts": 4, "num_experts_per_tok": 2, "kv_lora_rank": 16, "q_lora_rank": None,
        "qk_rope_head_dim": 8, "v_head_dim": 8, "qk_nope_head_dim": 8, "first_k_dense_replace": 1,
    }  # fmt: skip
    config = REPO_ROOT / "xtuner_configs" / "deepseek_v2_lite_chat_qlora_plllm_e3.py"
    python = REPO_ROOT / ".venv" / "bin" / "python"
    done = subprocess.run([str(python), "-c", DEEPSEEK_PROBE, str(config), json.dumps(small)],
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    attention = ["kv_a_proj_with_mqa", "kv_b_proj", "o_proj", "q_proj"]
    mlp = ["down_proj", "gate_proj", "up_proj"]
    expected = sorted(
        [f"model.layers.{i}.self_attn.{name}" for i in range(3) for name in attention]
        + [f"model.layers.0.mlp.{name}" for name in mlp]
        + [f"model.layers.{i}.mlp.shared_experts.{name}" for i in (1, 2) for name in mlp]
    )
    assert probe["targeted"] == expected  # no routed expert, no gate
    shape = train.shape_from_config(small)
    assert probe["linear"] == shape.linear_params
    assert probe["total"] == shape.total_params  # everything but the norms
    assert probe["trainable"] == shape.lora_params(probe["rank"])
    assert probe["all_grads"]


def answer_loss(model_dir: Path, conversations: list[dict]) -> float:
    """Mean teacher-forced loss of the assistant turns, through the model's own chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    losses = []
    for row in conversations:
        messages = row["messages"][:3]
        prompt = tokenizer.apply_chat_template(messages[:2], add_generation_prompt=True, return_tensors="pt")
        full = tokenizer.apply_chat_template(messages, return_tensors="pt")[:, :384]
        labels = full.clone()
        labels[:, : prompt.shape[1]] = -100
        with torch.no_grad():
            losses.append(model(full, labels=labels).loss.item())
    return sum(losses) / len(losses)


@pytest.mark.slow
def test_tiny_sft_learns_merges_and_answers(training_data, tiny_model_dir, tmp_path):
    manifest = train.run(load_profile("tiny"), "sft", max_iters=24, run_dir=tmp_path / "run", log=lambda _m: None)
    assert len(manifest["losses"]) >= 2
    # Learning is judged on the answers below, not on two logged losses: each is one batch's, and which batch
    # lands at iteration 10 or 20 moves with the data (it flipped when the held-out split took papers out).
    merged = Path(manifest["merged"])
    conversations = [json.loads(line) for line in (training_data / "sft.jsonl").read_text().splitlines()[:12]]
    assert answer_loss(merged, conversations) < answer_loss(tiny_model_dir, conversations)
    tuned = load_file(merged / "model.safetensors")
    base = load_file(tiny_model_dir / "model.safetensors")
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(tuned[key].float(), base[key].float())
    assert torch.equal(tuned["model.norm.weight"].float(), base["model.norm.weight"].float())  # LoRA left it alone
    assert chat(merged, "What is LaMP?", max_new_tokens=16).strip()
    assert (tmp_path / "latest").resolve() == (tmp_path / "run").resolve()
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["data_hashes"]


@pytest.mark.slow
def test_tiny_dpo_runs_two_iterations(training_data, tmp_path):
    manifest = train.run(load_profile("tiny"), "dpo", max_iters=2, run_dir=tmp_path / "dpo", log=lambda _m: None)
    assert (Path(manifest["merged"]) / "config.json").exists()
    assert (tmp_path / "dpo" / "xtuner" / "iter_2.pth").exists()


@pytest.mark.slow
def test_tiny_recipe_pretrains_then_tunes_the_pretrained_model(training_data, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "WORK_DIRS", tmp_path)  # the runs and their `latest` links stay in the test's folder
    pretrain, sft = train.run_recipe(load_profile("tiny"), ["pretrain", "sft"], max_iters=2, log=lambda _m: None)
    assert (pretrain["stage"], sft["stage"]) == ("pretrain", "sft")
    assert pretrain["base_model"] == str(tiny_model_dir)
    assert sft["base_model"] == pretrain["merged"] and (Path(sft["base_model"]) / "config.json").exists()
    assert pretrain["iterations"] == sft["iterations"] == 2 and sft["first_loss"] > 0
    assert (tmp_path / "tiny" / "sft" / "latest" / "merged").resolve() == Path(sft["merged"]).resolve()
    # LoRA merged twice: SFT's output differs from the pretrained model it started from.
    start = load_file(Path(pretrain["merged"]) / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
    tuned = load_file(Path(sft["merged"]) / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
    assert not torch.equal(start, tuned)


class FakeXTuner:
    """Stands in for envs.run: records each step and leaves the files the real step would (no training)."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, list[str], dict[str, str]]] = []

    def __call__(self, env: str, argv: list[str], *, cwd=None, extra_env=None, log_path=None) -> int:
        name = argv[argv.index("-m") + 2]
        self.steps.append((name, argv, dict(extra_env or {})))
        if name == "train":
            xtuner = Path(argv[argv.index("--work-dir") + 1])
            iters = int(extra_env.get("PLRA_MAX_ITERS", "200"))
            (xtuner / "run" / "vis_data").mkdir(parents=True)
            (xtuner / "run" / "vis_data" / "scalars.json").write_text('{"iter": 1, "loss": 3.0}\n')
            (xtuner / "last_checkpoint").write_text(str(xtuner / f"iter_{iters}.pth"))
        if name == "merge":
            merged = Path(argv[argv.index("merge") + 3])
            merged.mkdir(parents=True)
            (merged / "config.json").write_text("{}")
        return 0


def test_recipe_runs_in_order_each_stage_from_the_last_merged_model(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "WORK_DIRS", tmp_path)
    monkeypatch.setattr(train, "_data_hashes", lambda _dir: {})  # no built data needed: nothing reads it
    fake = FakeXTuner()
    monkeypatch.setattr(train.envs, "run", fake)
    manifests = train.run_recipe(load_profile("tiny"), ["pretrain", "sft"], max_iters=3, log=lambda _m: None)
    assert [m["stage"] for m in manifests] == ["pretrain", "sft"]
    trains = [(argv, env) for name, argv, env in fake.steps if name == "train"]
    assert [Path(argv[argv.index("train") + 1]).name for argv, _ in trains] == [
        "smollm2_135m_instruct_lora_plllm_pretrain_e1.py",
        "smollm2_135m_instruct_lora_plllm_e3.py",
    ]
    assert all(env["PLRA_MAX_ITERS"] == "3" for _, env in trains)  # --max-iters caps every stage
    pretrain_merged = (tmp_path / "tiny" / "pretrain" / "latest" / "merged").resolve()
    assert trains[0][1]["PLRA_MODEL_DIR"] == str(tiny_model_dir)
    assert trains[1][1]["PLRA_MODEL_DIR"] == str(pretrain_merged) == manifests[1]["base_model"]
    merge = next(argv for name, argv, env in reversed(fake.steps) if name == "merge")
    assert merge[merge.index("merge") + 1] == str(pretrain_merged)  # the adapter merges into the model it trained on
    assert manifests[1]["iterations"] == 3
    # --from names the same folder: the resolved run `latest` points at, not the link that moves on.
    assert train.finished_model(load_profile("tiny"), "pretrain") == pretrain_merged


def test_from_a_stage_without_a_finished_run_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "WORK_DIRS", tmp_path)
    with pytest.raises(PlraError, match=r"no finished pretrain run .*plra train --profile tiny --stage pretrain"):
        train.finished_model(load_profile("tiny"), "pretrain")


def test_recipe_dry_run_starts_sft_from_the_pretrain_merged_folder():
    result = run_plra("train", "--profile", "tiny", "--recipe", "pretrain,sft", "--max-iters", "3", "--dry-run",
                      "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    plan = json.loads(result.stdout)
    assert plan["recipe"] == ["pretrain", "sft"] and [s["stage"] for s in plan["stages"]] == ["pretrain", "sft"]
    pretrain, sft = plan["stages"]
    merged = str(train.WORK_DIRS / "tiny" / "pretrain" / "latest" / "merged")
    assert sft["base_model"] == merged and pretrain["base_model"] != merged
    assert all(c["env"]["PLRA_MODEL_DIR"] == merged for c in sft["commands"])
    assert sft["commands"][-1]["argv"][sft["commands"][-1]["argv"].index("merge") + 1] == merged
    assert all(c["env"]["PLRA_MAX_ITERS"] == "3" for s in plan["stages"] for c in s["commands"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "pretrain,pretrain"], "each once"),
        (["--recipe", "pretrain,rlhf"], "unknown stage 'rlhf'"),
        (["--recipe", "pretrain,sft", "--stage", "dpo"], "--recipe names its stages"),
        (["--from", "pretrain", "--base-model", "models"], "pass one"),
        (["--iters-scale", "0"], "must be above 0"),
    ],
)
def test_recipe_and_start_mistakes_are_one_line(args, message):
    result = run_plra("train", "--profile", "tiny", *args, "--dry-run")
    assert result.returncode != 0 and message in result.stderr, result.stderr[-1000:]


def test_tiny_configs_scale_their_budget_and_the_cap_wins(monkeypatch):
    from mmengine.config import Config

    def iterations(config: str, **env: str) -> int:
        for var in ("PLRA_MAX_ITERS", "PLRA_ITERS_SCALE"):
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        return Config.fromfile(str(REPO_ROOT / "xtuner_configs" / config)).train_cfg["max_iters"]

    for config, default in (("smollm2_135m_instruct_lora_plllm_pretrain_e1.py", 60),
                            ("smollm2_135m_instruct_lora_plllm_e3.py", 160)):  # fmt: skip
        assert iterations(config) == default
        assert iterations(config, PLRA_ITERS_SCALE="4") == 4 * default
        assert iterations(config, PLRA_ITERS_SCALE="4", PLRA_MAX_ITERS="6") == 6  # CI's --max-iters caps long runs
