"""`plra train`: XTuner training (SFT, incremental pretraining, DPO), then pth_to_hf and merge, in the main env.

A run lives in `work_dirs/<profile>/<stage>/<timestamp>/` with `adapter/`, `merged/`, `train.log` and
`manifest.json` (config, base model, data hashes, first and last loss, duration); `work_dirs/<profile>/<stage>/latest`
points at the newest run that finished.

A stage starts from the profile's base model, or from another stage's merged model (`--from STAGE`,
`--base-model DIR`); `--recipe pretrain,sft` runs stages in order, each from the one before's merged model.
"""

from __future__ import annotations

import json
import os
import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from plra.errors import PlraError
from plra.io import write_json_atomic
from plra.paths import REPO_ROOT
from plra.settings import LaunchSettings, ProfileSettings, load_knowledge, load_launch, load_profile
from plra.toolchain import envs
from plra.toolchain.model import resolve_model_dir

STAGES = ("sft", "pretrain", "dpo")
WORK_DIRS = REPO_ROOT / "work_dirs"
GIB = 2**30


@dataclass(frozen=True)
class ModelShape:
    """What the memory estimate needs of a model: dense blocks, or MLA attention and a mixture of experts."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int  # the dense MLP (of every layer, or of the first `dense_layers` in an MoE model)
    vocab: int
    tied_embeddings: bool = False
    # Multi-head latent attention (DeepSeek-V2): K and V come from a low-rank latent; 0 = ordinary attention.
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # Mixture of experts: every routed expert is held in memory although only `experts_per_token` run.
    routed_experts: int = 0
    shared_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate: int = 0
    dense_layers: int = 0  # leading layers with the dense MLP instead of experts (first_k_dense_replace)

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.routed_experts else 0

    def _attention_linears(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of one block's attention projections."""
        h = self.hidden
        if self.kv_lora_rank:
            qk_dim = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:  # queries through their own low-rank pair
                q = [(h, self.q_lora_rank), (self.q_lora_rank, self.heads * qk_dim)]
            else:
                q = [(h, self.heads * qk_dim)]
            kv_a = (h, self.kv_lora_rank + self.qk_rope_head_dim)
            kv_b = (self.kv_lora_rank, self.heads * (self.qk_nope_head_dim + self.v_head_dim))
            return [*q, kv_a, kv_b, (self.heads * self.v_head_dim, h)]
        head_dim = h // self.heads
        return [(h, h), (h, self.kv_heads * head_dim), (h, self.kv_heads * head_dim), (h, h)]

    def _mlp_linears(self, intermediate: int) -> list[tuple[int, int]]:
        return [(self.hidden, intermediate), (self.hidden, intermediate), (intermediate, self.hidden)]

    def _blocks(self, routed: bool = True) -> list[tuple[int, list[tuple[int, int]]]]:
        """(how many, linear shapes) for every kind of linear group in the blocks."""
        dense_mlp_layers = self.layers - self.moe_layers
        groups = [(self.layers, self._attention_linears()), (dense_mlp_layers, self._mlp_linears(self.intermediate))]
        if self.moe_layers:
            # The shared experts are one MLP of shared_experts x moe_intermediate, as in the model's code.
            groups.append((self.moe_layers, self._mlp_linears(self.shared_experts * self.moe_intermediate)))
            if routed:
                groups.append((self.moe_layers * self.routed_experts, self._mlp_linears(self.moe_intermediate)))
        return groups

    @property
    def linear_params(self) -> int:
        """Parameters of the transformer blocks' linear layers (what 4-bit quantization and LoRA act on)."""
        return sum(count * sum(i * o for i, o in shapes) for count, shapes in self._blocks())

    @property
    def router_params(self) -> int:
        """The experts' gates: plain parameters, no nn.Linear, so bitsandbytes leaves them unquantized."""
        return self.moe_layers * self.routed_experts * self.hidden

    @property
    def total_params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.linear_params + self.router_params + embeddings

    @property
    def active_intermediate(self) -> int:
        """MLP width one token passes through (the recomputed layer's activations scale with it)."""
        moe = (self.experts_per_token + self.shared_experts) * self.moe_intermediate if self.moe_layers else 0
        return max(self.intermediate, moe)

    @property
    def attention_width(self) -> int:
        """Per-token activations of one attention block, in values."""
        if self.kv_lora_rank:  # q and k of (nope + rope) per head, v and the output per head, the latent
            qk = self.heads * (self.qk_nope_head_dim + self.qk_rope_head_dim)
            return 2 * qk + 2 * self.heads * self.v_head_dim + self.kv_lora_rank + self.qk_rope_head_dim
        return self.hidden * 4

    def lora_params(self, rank: int, routed_experts: bool = False) -> int:
        """LoRA parameters on every linear layer of the blocks; routed experts only where the config targets them."""
        return sum(count * sum(rank * (i + o) for i, o in shapes) for count, shapes in self._blocks(routed_experts))


def shape_from_config(cfg: dict[str, Any]) -> ModelShape:
    """A shape from config.json keys (a local model's file, or a table of plra/toolchain/model_shapes.toml)."""
    return ModelShape(
        cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
        cfg.get("num_key_value_heads") or cfg["num_attention_heads"], cfg["intermediate_size"], cfg["vocab_size"],
        bool(cfg.get("tie_word_embeddings", False)),
        q_lora_rank=cfg.get("q_lora_rank") or 0, kv_lora_rank=cfg.get("kv_lora_rank") or 0,
        qk_nope_head_dim=cfg.get("qk_nope_head_dim") or 0, qk_rope_head_dim=cfg.get("qk_rope_head_dim") or 0,
        v_head_dim=cfg.get("v_head_dim") or 0,
        routed_experts=cfg.get("n_routed_experts") or 0, shared_experts=cfg.get("n_shared_experts") or 0,
        experts_per_token=cfg.get("num_experts_per_tok") or 0, moe_intermediate=cfg.get("moe_intermediate_size") or 0,
        dense_layers=cfg.get("first_k_dense_replace") or 0,
    )  # fmt: skip


def shape_from_config_json(path: Path) -> ModelShape:
    return shape_from_config(json.loads(path.read_text()))


# Shapes of the bases the configs name, so a dry run needs no weights: a data file, one table per hub id.
KNOWN_SHAPES_FILE = Path(__file__).parent / "model_shapes.toml"
KNOWN_SHAPES = {
    model: shape_from_config(cfg) for model, cfg in tomllib.loads(KNOWN_SHAPES_FILE.read_text("utf-8")).items()
}


@dataclass(frozen=True)
class TrainKnobs:
    """The settings of an XTuner config that decide memory, read from the config file itself."""

    model: str
    quantized_4bit: bool
    double_quant: bool
    lora_r: int
    max_length: int
    batch_size: int
    dpo: bool
    dtype_bytes: int  # compute dtype of activations: 2 for fp16, 4 for fp32
    lora_routed_experts: bool = False  # LoRA reaches the routed experts too (MoE bases)


# A routed expert's projection, as DeepSeek's modeling code names it: whether the config's LoRA targets reach it.
ROUTED_EXPERT_MODULE = "model.layers.1.mlp.experts.0.down_proj"


def lora_targets(target_modules: str | list[str] | None, module: str) -> bool:
    """Whether peft puts LoRA on `module`: a string is a full-match regex, a list matches name suffixes, and
    None lets XTuner pick every linear layer."""
    if target_modules is None:
        return True
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, module) is not None
    return any(module == t or module.endswith(f".{t}") for t in target_modules)


def read_knobs(config: Path) -> TrainKnobs:
    import contextlib
    import sys

    from mmengine.config import Config

    # Loading a config imports the training stack, whose banners would spoil --json output on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        cfg = Config.fromfile(str(config))
        llm = cfg.model["llm"]
        quant = llm.get("quantization_config") or {}
        lora = cfg.model.get("lora")
        return TrainKnobs(
            model=str(cfg.get("pretrained_model_name_or_path")),
            quantized_4bit=bool(quant.get("load_in_4bit", False)),
            double_quant=bool(quant.get("bnb_4bit_use_double_quant", False)),
            lora_r=int(cfg.model["lora"]["r"]) if cfg.model.get("lora") else 0,
            max_length=int(cfg.get("max_length")),
            batch_size=int(cfg.get("batch_size", 1)),
            dpo="DPO" in str(cfg.model["type"]),
            dtype_bytes=2 if "16" in str(llm.get("torch_dtype", "torch.float32")) else 4,
            lora_routed_experts=bool(lora) and lora_targets(lora.get("target_modules"), ROUTED_EXPERT_MODULE),
        )


def estimate_memory(knobs: TrainKnobs, shape: ModelShape) -> dict[str, float]:
    """Peak GPU memory of a (Q)LoRA run in GiB, by part.

    - linear weights: 4 bits each plus bitsandbytes' block absmax (1 byte per 64 weights, or with double
      quantization 1 byte per 64 plus 4 bytes per 16,384); unquantized runs keep the load dtype.
    - embeddings and LM head: peft's k-bit preparation casts every non-4-bit tensor to fp32 (so are an MoE
      model's expert gates, which are no nn.Linear).
    - LoRA: fp32 weights, gradients and two Adam moments (16 bytes per parameter).
    - activations with gradient checkpointing: one hidden state per layer, one layer recomputed in full
      (attention scores and MLP), and the fp32 logits with their gradient; DPO scores chosen and rejected.
      An MoE layer runs each token through its active experts: the MLP width is theirs, and the token copies
      the experts are fed with (one per active expert, then their weighted outputs) come on top.
    - runtime: CUDA context and allocator slack.

    Every expert counts in the weights (all are held in memory), only the active ones in the activations.
    """
    if knobs.quantized_4bit:
        absmax = (1 / 64 + 4 / (64 * 256)) if knobs.double_quant else (4 / 64)
        linear = shape.linear_params * (0.5 + absmax)
        embed_bytes = 4
    else:
        linear = shape.linear_params * knobs.dtype_bytes
        embed_bytes = knobs.dtype_bytes
    embeddings = (shape.vocab * shape.hidden * (1 if shape.tied_embeddings else 2) + shape.router_params) * embed_bytes
    lora = shape.lora_params(knobs.lora_r, knobs.lora_routed_experts) * 16
    tokens = knobs.max_length * knobs.batch_size * (2 if knobs.dpo else 1)
    checkpoints = shape.layers * tokens * shape.hidden * 4
    dispatch = 2 * shape.experts_per_token * shape.hidden if shape.moe_layers else 0
    one_layer = tokens * (shape.active_intermediate * 3 + shape.attention_width + dispatch) * knobs.dtype_bytes + (
        knobs.batch_size * shape.heads * knobs.max_length**2 * knobs.dtype_bytes * 2
    )
    logits = tokens * shape.vocab * 4 * 2
    runtime = 0.5 * GIB
    parts = {
        "weights_4bit" if knobs.quantized_4bit else "weights": linear,
        "embeddings_and_head": embeddings,
        "lora_params_grads_adam": lora,
        "activations": checkpoints + one_layer + logits,
        "cuda_runtime": runtime,
    }
    out = {name: round(value / GIB, 2) for name, value in parts.items()}
    out["total"] = round(sum(parts.values()) / GIB, 2)
    return out


@dataclass
class Step:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def stage_config(profile: ProfileSettings, stage: str, config: Path | None) -> Path:
    if config is not None:
        path = config
    else:
        base = Path(profile.xtuner_config)
        if stage != "sft" and stage not in PROFILE_STAGE_CONFIGS.get(profile.name, {}):
            raise PlraError(f"profile '{profile.name}' ships no {stage} config: pass --config FILE")
        path = base if stage == "sft" else base.with_name(PROFILE_STAGE_CONFIGS[profile.name][stage])
    path = path if path.is_absolute() else REPO_ROOT / path
    if not path.exists():
        raise PlraError(f"XTuner config {path} does not exist")
    return path


# The pretraining and DPO configs of each profile (SFT's is the profile's `xtuner_config`).
PROFILE_STAGE_CONFIGS = {
    "tiny": {"pretrain": "smollm2_135m_instruct_lora_plllm_pretrain_e1.py",
             "dpo": "smollm2_135m_instruct_lora_plllm_dpo_e1.py"},
    "internlm2-7b": {"pretrain": "internlm2_7b_qlora_plllm_pretrain_e1.py",
                     "dpo": "internlm2_chat_7b_qlora_plllm_dpo_e1.py"},
}  # fmt: skip


def resolve_launch(launch: LaunchSettings, device: str, named_run: bool = False) -> LaunchSettings:
    """The launch with GPUs and launcher filled in, or a PlraError naming the flag that is wrong or missing."""
    gpus = launch.gpus if launch.gpus is not None else (1 if device == "cuda" else 0)
    launcher = launch.launcher or ("pytorch" if gpus > 1 or launch.nnodes > 1 else None)
    nodes = f"--nnodes {launch.nnodes}"
    if launcher == "slurm" and not launch.partition:
        raise PlraError("--launcher slurm needs --partition PARTITION: the slurm partition srun submits to")
    if launch.partition and launcher != "slurm":
        raise PlraError(f"--partition {launch.partition} is for slurm: add --launcher slurm")
    if launcher and gpus == 0:
        # mmengine's distributed training (torchrun or slurm, with DeepSpeed) needs CUDA on every process.
        what = nodes if launch.nnodes > 1 else f"--launcher {launcher}"
        raise PlraError(f"{what} needs GPUs: pass --gpus N (GPUs per node); this profile trains on the CPU")
    if launch.node_rank >= launch.nnodes:
        raise PlraError(f"--node-rank {launch.node_rank} must be below {nodes} (ranks count from 0)")
    if launcher == "slurm" and (launch.node_rank or launch.master_addr):
        raise PlraError("with --launcher slurm, slurm assigns node ranks and the master address: "
                        "drop --node-rank and --master-addr")  # fmt: skip
    if launcher == "pytorch" and launch.nnodes > 1:
        if not launch.master_addr:
            raise PlraError(f"{nodes} needs --master-addr HOST: node 0's address, the same on every node")
        if not named_run:
            # Every rank writes its part of the checkpoint under --work-dir: all nodes must name one folder.
            raise PlraError(f"{nodes} needs --run-name NAME, the same on every node (one run folder on shared storage)")
    return launch.model_copy(update={"gpus": gpus, "launcher": launcher})


def build_steps(
    config: Path, run_dir: Path, base_model: str, data_dir: Path, launch: LaunchSettings, max_iters: int | None,
    resume: bool, job_name: str = "plra-train", iters_scale: float = 1.0,
) -> list[Step]:  # fmt: skip
    """The commands of a run on this node, exactly as they are executed (and printed by --dry-run).

    `launch` is resolved (resolve_launch). Node 0 trains, converts and merges; other nodes only train.
    The iteration budget reaches the config through the environment: PLRA_MAX_ITERS sets it outright,
    PLRA_ITERS_SCALE multiplies the config's own default (CPU configs read both; epoch-based ones neither).
    """
    env = {"PLRA_MODEL_DIR": base_model, "PLRA_DATA_DIR": str(data_dir)}
    if max_iters:
        env["PLRA_MAX_ITERS"] = str(max_iters)
    if iters_scale != 1:
        env["PLRA_ITERS_SCALE"] = f"{iters_scale:g}"
    entry = ["-m", "plra.toolchain.workers.xtuner_entry"]
    train_args = ["train", str(config), "--work-dir", str(run_dir / "xtuner")]
    if resume:
        train_args.append("--resume")
    train_env, start, convert = env, ["python"], ["python"]
    if launch.launcher:
        # One process per GPU; DeepSpeed ZeRO-2 shards optimizer states and gradients across all of them.
        train_args += ["--launcher", launch.launcher, "--deepspeed", "deepspeed_zero2"]
    if launch.launcher == "pytorch":
        # What `xtuner train` runs when NPROC_PER_NODE / NNODES are set (xtuner/entry_point.py), on our entry.
        start = ["torchrun", f"--nnodes={launch.nnodes}", f"--node_rank={launch.node_rank}",
                 f"--nproc_per_node={launch.gpus}", f"--master_addr={launch.master_addr or '127.0.0.1'}",
                 f"--master_port={launch.master_port}"]  # fmt: skip
    elif launch.launcher == "slurm":
        # srun starts one task per GPU; mmengine's slurm launcher takes ranks and the master address from
        # SLURM_* and the port from MASTER_PORT. A failed task ends the others instead of leaving them hung.
        srun = ["srun", "-p", str(launch.partition), f"--job-name={job_name}"]
        start = [*srun, f"--nodes={launch.nnodes}", f"--ntasks-per-node={launch.gpus}", f"--gres=gpu:{launch.gpus}",
                 "--kill-on-bad-exit=1", "python"]  # fmt: skip
        train_env = env | {"MASTER_PORT": str(launch.master_port)}
        # Converting and merging load the model too (4-bit QLoRA needs CUDA): on one GPU of the partition.
        convert = [*srun, "--nodes=1", "--ntasks=1", "--gres=gpu:1", "python"]
    steps = [Step("train", [*start, *entry, *train_args], train_env)]
    if launch.node_rank > 0:
        return steps  # rank 0 writes last_checkpoint; node 0 converts and merges
    checkpoint = "{last_checkpoint}"  # filled in after training from xtuner's last_checkpoint file
    return [
        *steps,
        Step("pth_to_hf", [*convert, *entry, "pth_to_hf", str(config), checkpoint, str(run_dir / "adapter")], env),
        Step("merge", [*convert, *entry, "merge", base_model, str(run_dir / "adapter"), str(run_dir / "merged"),
                       "--device", "cpu" if launch.gpus == 0 else "cuda", "--safe-serialization"], env),
    ]  # fmt: skip


def read_losses(xtuner_dir: Path) -> list[tuple[int, float]]:
    """(iteration, loss) pairs from the scalars mmengine logs during training."""
    losses = []
    for scalars in sorted(xtuner_dir.glob("*/vis_data/scalars.json")):
        for line in scalars.read_text().splitlines():
            row = json.loads(line)
            if "loss" in row:
                losses.append((int(row.get("iter", row.get("step", 0))), float(row["loss"])))
    return losses


def _data_hashes(data_dir: Path) -> dict[str, str]:
    try:
        return json.loads((data_dir / "manifest.json").read_text())["files"]
    except (OSError, ValueError, KeyError):
        raise PlraError(f"no built training data in {data_dir}: run `plra data build` first") from None


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def run_folder(profile: ProfileSettings, stage: str, run_name: str | None, unnamed: str | None = None) -> Path:
    """work_dirs/<profile>/<stage>/<run name, or `unnamed`, or a timestamp>."""
    if run_name is not None and (not RUN_NAME.fullmatch(run_name) or run_name == "latest"):
        raise PlraError(f"--run-name {run_name!r}: use letters, digits, '.', '_' or '-' (and not 'latest')")
    return WORK_DIRS / profile.name / stage / (run_name or unnamed or time.strftime("%Y%m%d_%H%M%S"))


def stage_model(profile: ProfileSettings, stage: str) -> Path:
    """Where the newest finished run of `stage` leaves its merged model (it may not exist yet)."""
    return WORK_DIRS / profile.name / stage / "latest" / "merged"


def check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise PlraError(f"unknown stage '{stage}': choose one of {', '.join(STAGES)}")


def finished_model(profile: ProfileSettings, stage: str) -> Path:
    """The merged model of `stage`'s newest finished run, as the folder `latest` points at now.

    Resolved, so a manifest names the run it started from even after `latest` moves on.
    """
    check_stage(stage)
    merged = stage_model(profile, stage)
    if not (merged / "config.json").exists():
        raise PlraError(f"--from {stage}: no finished {stage} run of profile '{profile.name}' ({merged} is missing); "
                        f"run `plra train --profile {profile.name} --stage {stage}` first")  # fmt: skip
    return merged.resolve()


def parse_recipe(text: str) -> list[str]:
    """`pretrain,sft` -> ["pretrain", "sft"]: known stages, each once."""
    recipe = [part.strip() for part in text.split(",") if part.strip()]
    for stage in recipe:
        check_stage(stage)
    if not recipe or len(set(recipe)) != len(recipe):
        raise PlraError(f"--recipe {text!r}: name stages in order, each once, e.g. pretrain,sft")
    return recipe


def _iterations(xtuner_dir: Path) -> int | None:
    """The iteration of the last checkpoint (iter_N.pth), or None for epoch-named ones."""
    try:
        match = re.search(r"iter_(\d+)\.pth", (xtuner_dir / "last_checkpoint").read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


def run(
    profile: ProfileSettings, stage: str, config: Path | None = None, launch: LaunchSettings | None = None,
    resume: bool = False, max_iters: int | None = None, run_dir: Path | None = None, run_name: str | None = None,
    log: Callable[[str], Any] = print, base_model: str | Path | None = None, iters_scale: float = 1.0,
) -> dict[str, Any]:  # fmt: skip
    """Train, convert and merge; return the run manifest. Each step's output goes to the terminal and a log.

    `base_model` (a folder of weights, e.g. an earlier stage's merged model) replaces the profile's base.
    On a node of rank > 0 only the training step runs, and the result names the run folder node 0 fills.
    """
    from plra.data.build import default_out_dir

    check_stage(stage)
    launch = resolve_launch(launch or load_launch(), profile.device, bool(run_name or run_dir))
    run_dir = run_dir or run_folder(profile, stage, run_name)
    cfg_path = stage_config(profile, stage, config)
    data_dir = default_out_dir(load_knowledge())
    hashes = _data_hashes(data_dir)
    if base_model is not None and not (Path(base_model) / "config.json").exists():
        raise PlraError(f"base model {base_model}: no config.json there (a folder of Hugging Face weights)")
    base_model = str(base_model if base_model is not None else resolve_model_dir(profile))
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = build_steps(cfg_path, run_dir, base_model, data_dir, launch, max_iters, resume, job_name(profile, stage),
                        iters_scale)  # fmt: skip
    start = time.monotonic()
    for step in steps:
        if step.name == "pth_to_hf":
            last = (run_dir / "xtuner" / "last_checkpoint").read_text().strip()
            step.argv = [last if a == "{last_checkpoint}" else a for a in step.argv]
        log(f"[train] {step.name}: {' '.join(step.argv)}")
        log_path = run_dir / f"{step.name}.log"
        code = envs.run("main", step.argv, cwd=REPO_ROOT, extra_env=step.env, log_path=log_path)
        if code != 0:
            raise PlraError(f"{step.name} failed (exit {code}); see {log_path}", exit_code=code)
    if launch.node_rank > 0:
        return {"profile": profile.name, "stage": stage, "node_rank": launch.node_rank, "run_dir": str(run_dir),
                "duration_s": round(time.monotonic() - start, 1)}  # fmt: skip
    losses = read_losses(run_dir / "xtuner")
    manifest = {
        "profile": profile.name,
        "stage": stage,
        "config": str(cfg_path.relative_to(REPO_ROOT)) if cfg_path.is_relative_to(REPO_ROOT) else str(cfg_path),
        "base_model": base_model,
        "data_hashes": hashes,
        "launch": launch.model_dump(),
        "max_iters": max_iters,
        "iters_scale": iters_scale,
        "iterations": _iterations(run_dir / "xtuner"),
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "losses": losses,
        "duration_s": round(time.monotonic() - start, 1),
        "merged": str(run_dir / "merged"),
    }
    write_json_atomic(run_dir / "manifest.json", manifest)
    latest = run_dir.parent / "latest"
    tmp_link = run_dir.parent / f".latest-{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(run_dir.name)
    os.replace(tmp_link, latest)
    return manifest


def run_recipe(
    profile: ProfileSettings, recipe: list[str], launch: LaunchSettings | None = None, max_iters: int | None = None,
    iters_scale: float = 1.0, run_name: str | None = None, log: Callable[[str], Any] = print,
) -> list[dict[str, Any]]:  # fmt: skip
    """Run the stages in order, the first from the profile's base model and each later one from the merged
    model of the one before; return their manifests. `max_iters` caps every stage."""
    launch = launch or load_launch()
    if launch.nnodes > 1:
        # Node 0 alone merges: the other nodes could not know when the next stage's base model is ready.
        raise PlraError("--recipe runs on one node: on several, run each stage with --stage and --from")
    manifests: list[dict[str, Any]] = []
    for stage in recipe:
        base = manifests[-1]["merged"] if manifests else None
        log(f"[train] recipe {' -> '.join(recipe)}: {stage} from {base or 'the base model'}")
        manifest = run(profile, stage, None, launch, False, max_iters, run_name=run_name, log=log, base_model=base,
                       iters_scale=iters_scale)  # fmt: skip
        manifests.append(manifest)
    return manifests


def job_name(profile: ProfileSettings, stage: str) -> str:
    return f"plra-{profile.name}-{stage}"  # what squeue shows for the run


def dry_run(
    profile: ProfileSettings, stage: str, config: Path | None, launch: LaunchSettings | None = None,
    run_name: str | None = None, base_model: str | Path | None = None, max_iters: int | None = None,
    iters_scale: float = 1.0,
) -> dict[str, Any]:  # fmt: skip
    """The commands a run would execute on this node and its GPU memory estimate, without weights or a GPU.

    `base_model` replaces the profile's base in the commands; the estimate keeps the base's shape (a merged
    LoRA model has the same one), so the folder need not exist yet.
    """
    from plra.data.build import default_out_dir

    check_stage(stage)
    launch = resolve_launch(launch or load_launch(), profile.device, bool(run_name))
    run_dir = run_folder(profile, stage, run_name, "<timestamp>")
    cfg_path = stage_config(profile, stage, config)
    knobs = read_knobs(cfg_path)
    start_from = str(base_model if base_model is not None else profile.model_path or knobs.model)
    local = profile.model_path / "config.json" if profile.model_path else REPO_ROOT / knobs.model / "config.json"
    shape = shape_from_config_json(local) if local.exists() else KNOWN_SHAPES.get(knobs.model)
    data_dir = default_out_dir(load_knowledge())
    steps = build_steps(cfg_path, run_dir, start_from, data_dir, launch, max_iters, False, job_name(profile, stage),
                        iters_scale)  # fmt: skip
    return {
        "profile": profile.name,
        "stage": stage,
        "config": str(cfg_path),
        "base_model": start_from,
        "launch": launch.model_dump(),
        "commands": [{"step": s.name, "env": s.env, "argv": s.argv} for s in steps],
        "memory_gib": estimate_memory(knobs, shape) if shape else None,
        "knobs": knobs.__dict__,
    }


def dry_run_recipe(
    profile: ProfileSettings, recipe: list[str], launch: LaunchSettings | None = None, run_name: str | None = None,
    max_iters: int | None = None, iters_scale: float = 1.0,
) -> list[dict[str, Any]]:  # fmt: skip
    """Every stage's plan in order; a later stage starts from `work_dirs/<profile>/<stage>/latest/merged` of
    the one before, the folder that run would leave (a real run names the resolved folder)."""
    plans = []
    for i, stage in enumerate(recipe):
        base = stage_model(profile, recipe[i - 1]) if i else None
        plans.append(dry_run(profile, stage, None, launch, run_name, base, max_iters, iters_scale))
    return plans


def _print_plan(plan: dict[str, Any]) -> None:
    resolved = plan["launch"]
    if resolved["launcher"]:
        typer.echo(f"# node {resolved['node_rank']} of {resolved['nnodes']}, {resolved['gpus']} GPU(s) per node, "
                   f"{resolved['launcher']} launcher")  # fmt: skip
    for command in plan["commands"]:
        typer.echo(envs.shell_line(command["argv"], command["env"]))
    if plan["memory_gib"]:
        parts = ", ".join(f"{k} {v}" for k, v in plan["memory_gib"].items() if k != "total")
        typer.echo(f"estimated peak GPU memory: {plan['memory_gib']['total']} GiB ({parts})")


def _summary(manifest: dict[str, Any]) -> dict[str, Any]:
    keys = ("stage", "base_model", "iterations", "first_loss", "last_loss", "duration_s", "merged")
    return {k: manifest.get(k) for k in keys}


def train_command(
    profile: str = typer.Option(None, "--profile", "-p"),
    stage: str = typer.Option("sft", "--stage", help="sft, pretrain or dpo"),
    config: Path = typer.Option(None, "--config", help="another XTuner config instead of the profile's"),
    gpus: int = typer.Option(None, "--gpus", help="GPUs on this node (NPROC_PER_NODE; >1 uses DeepSpeed ZeRO-2)"),
    nnodes: int = typer.Option(None, "--nnodes", help="nodes taking part (NNODES; default 1)"),
    node_rank: int = typer.Option(None, "--node-rank", help="this node's rank, 0 to nnodes-1 (NODE_RANK)"),
    master_addr: str = typer.Option(None, "--master-addr", help="node 0's address, the same on every node (ADDR)"),
    master_port: int = typer.Option(None, "--master-port", help="node 0's rendezvous port (MASTER_PORT; 29500)"),
    launcher: str = typer.Option(None, "--launcher", help="pytorch (torchrun; default for >1 process) or slurm"),
    partition: str = typer.Option(None, "--partition", help="slurm partition for --launcher slurm (srun -p)"),
    run_name: str = typer.Option(None, "--run-name", help="run folder name instead of a timestamp (multi-node)"),
    resume: bool = typer.Option(False, "--resume", help="resume from the run's last checkpoint"),
    max_iters: int = typer.Option(None, "--max-iters", help="cap the iterations (CPU configs read PLRA_MAX_ITERS)"),
    iters_scale: float = typer.Option(
        1.0, "--iters-scale", help="multiply the config's iterations (CPU configs read PLRA_ITERS_SCALE)"
    ),
    from_stage: str = typer.Option(None, "--from", help="start from this stage's latest merged model"),
    base_model: Path = typer.Option(None, "--base-model", help="start from these weights (e.g. a merged model)"),
    recipe: str = typer.Option(None, "--recipe", help="stages in order, each from the one before: pretrain,sft"),
    model_path: Path = typer.Option(None, "--model-path", help="local base weights"),
    dry_run_flag: bool = typer.Option(False, "--dry-run", help="print this node's commands and a GPU memory estimate"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fine-tune with XTuner (train -> pth_to_hf -> merge) into work_dirs/<profile>/<stage>/<timestamp>/."""
    settings = load_profile(profile, {"model_path": model_path})
    launch = load_launch({"gpus": gpus, "nnodes": nnodes, "node_rank": node_rank, "master_addr": master_addr,
                          "master_port": master_port, "launcher": launcher, "partition": partition})  # fmt: skip
    if iters_scale <= 0:
        raise PlraError(f"--iters-scale {iters_scale:g}: must be above 0")
    if from_stage and base_model:
        raise PlraError("--from and --base-model both name the starting weights: pass one")
    if recipe is not None:
        if stage != "sft" or from_stage or base_model or config or resume:
            raise PlraError("--recipe names its stages and their starting weights: drop --stage, --from, "
                            "--base-model, --config and --resume")  # fmt: skip
        _recipe_command(settings, parse_recipe(recipe), launch, max_iters, iters_scale, run_name, dry_run_flag, as_json)
        return
    if from_stage:
        check_stage(from_stage)
    if dry_run_flag:
        start = base_model or (stage_model(settings, from_stage) if from_stage else None)
        plan = dry_run(settings, stage, config, launch, run_name, start, max_iters, iters_scale)
        if as_json:
            typer.echo(json.dumps(plan))
            return
        _print_plan(plan)
        return
    start = base_model or (finished_model(settings, from_stage) if from_stage else None)
    manifest = run(settings, stage, config, launch, resume, max_iters, run_name=run_name, log=typer.echo,
                   base_model=start, iters_scale=iters_scale)  # fmt: skip
    if "merged" not in manifest:  # a node of rank > 0: its part is done
        typer.echo(json.dumps(manifest) if as_json else f"node {manifest['node_rank']} trained; node 0 converts "
                   f"and merges into {manifest['run_dir']}")  # fmt: skip
        return
    summary = {k: manifest[k] for k in ("first_loss", "last_loss", "duration_s", "merged")}
    typer.echo(json.dumps(summary) if as_json else f"trained: {summary}")


def _recipe_command(
    settings: ProfileSettings, recipe: list[str], launch: LaunchSettings, max_iters: int | None, iters_scale: float,
    run_name: str | None, dry_run_flag: bool, as_json: bool,
) -> None:  # fmt: skip
    if dry_run_flag:
        plans = dry_run_recipe(settings, recipe, launch, run_name, max_iters, iters_scale)
        if as_json:
            typer.echo(json.dumps({"recipe": recipe, "stages": plans}))
            return
        for plan in plans:
            typer.echo(f"# {plan['stage']} (from {plan['base_model']})")
            _print_plan(plan)
        return
    manifests = run_recipe(settings, recipe, launch, max_iters, iters_scale, run_name, log=typer.echo)
    summary = {"recipe": recipe, "stages": [_summary(m) for m in manifests], "merged": manifests[-1]["merged"]}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    for stage in summary["stages"]:
        typer.echo(f"trained {stage['stage']}: {stage}")
