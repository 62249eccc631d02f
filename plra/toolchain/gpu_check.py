"""The GPU check: what one QLoRA step of a profile really takes on a GPU, and how fast 4-bit decodes.

    tools/gpu_check.sh [--profile internlm2-7b] [--out reports/gpu_check.json] [--budget-s 420]
    tools/gpu_check.sh --dry-run        # on a CPU: check the plan, the configs and a tiny model's LoRA step

It measures, for the profile's XTuner SFT config (LoRA rank, alpha, targets, sequence length, nf4 settings):

1. the peak GPU memory (torch.cuda.max_memory_allocated / max_memory_reserved) of one QLoRA training step:
   a 4-bit NF4 base loaded by bitsandbytes, prepared and wrapped with LoRA by peft as XTuner's
   SupervisedFinetune does, fp16 autocast with a dynamic loss scale as its AmpOptimWrapper does, gradient
   checkpointing, AdamW; printed against `plra train --dry-run`'s estimate (plra.toolchain.train);
2. greedy decode speed at batch 1, fp16 against 4-bit (bitsandbytes nf4) of the same model, after a warm-up;
   min_new_tokens = max_new_tokens, so a random model cannot stop early at an end-of-sequence token.

Nothing is downloaded: the GPU machine cannot reach the Hugging Face hub. The model is randomly initialised
with the real shape from plra/toolchain/model_shapes.toml (speed and memory do not depend on the values). The
InternLM models' own modeling code lives on the hub (trust_remote_code), so the check builds transformers'
LlamaForCausalLM with the same sizes: InternLM2 and InternLM3 blocks are Llama-shaped (RMSNorm, rotary
attention with grouped KV heads, a SwiGLU MLP). InternLM2's fused `wqkv` becomes q/k/v_proj and w1/w3/w2
become gate/up/down_proj, which is also how the memory estimate counts LoRA parameters. The fp16 weights
are written once to a local folder so that the 4-bit model is loaded by from_pretrained with a
BitsAndBytesConfig, the way XTuner loads the real one.

Only torch, transformers, peft, accelerate and bitsandbytes are needed, with the plra package itself. The
XTuner config is read as Python source (its top-level settings and the model dict), not through mmengine,
which the GPU machine may not have; tests/test_gpu_check.py checks that it reads what `plra train` reads.
The whole run stops itself before --budget-s with a message, writing the figures it has.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import gc
import importlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plra.errors import PlraError
from plra.paths import REPO_ROOT
from plra.settings import ProfileSettings, load_profile
from plra.toolchain.train import (
    GIB,
    KNOWN_SHAPES,
    ROUTED_EXPERT_MODULE,
    ModelShape,
    TrainKnobs,
    estimate_memory,
    lora_targets,
    shape_from_config_json,
    stage_config,
)

DEFAULT_PROFILE = "internlm2-7b"
DEFAULT_OUT = REPO_ROOT / "reports" / "gpu_check.json"
DEFAULT_BUDGET_S = 420.0
REQUIRED_PACKAGES = ("torch", "transformers", "peft", "accelerate", "bitsandbytes")
NO_CUDA_MESSAGE = "gpu_check needs a CUDA GPU and torch sees none; use --dry-run to check the plan on a CPU"

# The linear layers of a Llama block, and what InternLM2's fused names become on the Llama stand-in.
LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
INTERNLM2_TO_LLAMA = {
    "wqkv": ("q_proj", "k_proj", "v_proj"),
    "wo": ("o_proj",),
    "w1": ("gate_proj",),
    "w3": ("up_proj",),
    "w2": ("down_proj",),
}

# The config.json keys of model_shapes.toml that the stand-in's LlamaConfig takes over.
CONFIG_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
               "vocab_size")  # fmt: skip

# Random token ids start above the ids the stand-in config gives to pad, bos and eos.
BOS_ID, EOS_ID, FIRST_ORDINARY_ID = 1, 2, 3


class BudgetExceeded(Exception):
    """The run would end, or has run, past --budget-s."""


# ---------------------------------------------------------------------------------------------------------------
# What the run is: the profile's XTuner config, its model shape and the repository's memory estimate
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraSettings:
    """The LoRA and 4-bit settings of an XTuner config, as the Llama stand-in takes them."""

    r: int
    alpha: int
    dropout: float
    config_targets: list[str]  # as the config names them (InternLM2: wqkv, wo, w1, w2, w3)
    targets: list[str]  # the Llama stand-in's names for the same layers
    quant_type: str  # bnb_4bit_quant_type
    compute_dtype: str  # bnb_4bit_compute_dtype, e.g. "float16"
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    max_norm: float


@dataclass(frozen=True)
class CheckPlan:
    """Everything the GPU run does, resolved without CUDA."""

    profile: str
    config: Path
    base_model: str
    shape: ModelShape
    knobs: TrainKnobs
    lora: LoraSettings
    estimate_gib: dict[str, float]
    prompt_tokens: int
    new_tokens: int
    warmup_tokens: int
    budget_s: float


def _config_value(node: ast.expr, names: dict[str, Any]) -> Any:
    """The value of a flat XTuner config expression: literals, earlier top-level settings, dict(...) calls and
    `os.environ.get(NAME, DEFAULT)`; anything else (a class, `torch.float16`) as its source text."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_config_value(item, names) for item in node.elts]
    if isinstance(node, ast.Name):
        return names.get(node.id, node.id)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "dict" and not node.args:
            return {kw.arg: _config_value(kw.value, names) for kw in node.keywords if kw.arg}
        # The configs read the model and data folders from the environment, as mmengine evaluates them.
        if isinstance(func, ast.Attribute) and func.attr == "get" and ast.unparse(func.value).endswith("environ"):
            key, *default = (_config_value(arg, names) for arg in node.args)
            return os.environ.get(key, default[0] if default else None)
    return ast.unparse(node)


def read_config_settings(config: Path) -> dict[str, Any]:
    """The top-level settings of a flat XTuner config (every knob at the top, the model as a dict), without
    importing it: mmengine and xtuner are not needed, so the GPU machine need not have them."""
    names: dict[str, Any] = {}
    for statement in ast.parse(config.read_text(encoding="utf-8"), filename=str(config)).body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            if isinstance(target, ast.Name):
                names[target.id] = _config_value(statement.value, names)
    return names


def _dtype_name(value: Any) -> str:
    return str(value).removeprefix("torch.")


def llama_targets(config_targets: list[str] | None) -> list[str]:
    """The LoRA targets on the Llama stand-in for the config's `target_modules` (None: every linear layer, as
    XTuner picks them)."""
    if config_targets is None:
        return list(LLAMA_LINEARS)
    if not isinstance(config_targets, list):
        raise PlraError(f"LoRA target_modules {config_targets!r} is a pattern: the GPU check takes a list of names")
    targets: list[str] = []
    for name in config_targets:
        for mapped in INTERNLM2_TO_LLAMA.get(name, (name,)):
            if mapped not in LLAMA_LINEARS:
                raise PlraError(f"LoRA target {name!r} has no Llama counterpart: the GPU check covers dense models")
            if mapped not in targets:
                targets.append(mapped)
    return targets


def config_knobs(settings: dict[str, Any]) -> TrainKnobs:
    """The memory knobs of an XTuner config's settings (read_config_settings), as train.read_knobs reads them
    through mmengine for `plra train --dry-run`."""
    model = settings["model"]
    llm = model["llm"]
    quant = llm.get("quantization_config") or {}
    lora = model.get("lora") or {}
    return TrainKnobs(
        model=str(settings["pretrained_model_name_or_path"]),
        quantized_4bit=bool(quant.get("load_in_4bit", False)),
        double_quant=bool(quant.get("bnb_4bit_use_double_quant", False)),
        lora_r=int(lora["r"]) if lora else 0,
        max_length=int(settings["max_length"]),
        batch_size=int(settings.get("batch_size", 1)),
        dpo="DPO" in str(model["type"]),
        dtype_bytes=2 if "16" in str(llm.get("torch_dtype", "torch.float32")) else 4,
        lora_routed_experts=bool(lora) and lora_targets(lora.get("target_modules"), ROUTED_EXPERT_MODULE),
    )


def config_lora(settings: dict[str, Any], config_name: str) -> LoraSettings:
    """The LoRA, 4-bit and optimizer settings of an XTuner config's settings, with the Llama stand-in's targets."""
    model = settings["model"]
    quant = model["llm"].get("quantization_config") or {}
    lora = model.get("lora") or {}
    if not lora:
        raise PlraError(f"{config_name} trains no LoRA adapter: the GPU check measures a (Q)LoRA step")
    optim_wrapper = settings.get("optim_wrapper") or {}
    optimizer = optim_wrapper.get("optimizer") or {}
    clip = optim_wrapper.get("clip_grad") or {}
    config_targets = lora.get("target_modules")
    return LoraSettings(
        r=int(lora["r"]),
        alpha=int(lora.get("lora_alpha", lora["r"])),
        dropout=float(lora.get("lora_dropout", 0.0)),
        config_targets=list(config_targets) if isinstance(config_targets, list) else list(LLAMA_LINEARS),
        targets=llama_targets(config_targets),
        quant_type=str(quant.get("bnb_4bit_quant_type", "nf4")),
        compute_dtype=_dtype_name(quant.get("bnb_4bit_compute_dtype", "torch.float16")),
        lr=float(optimizer.get("lr", 2e-4)),
        betas=tuple(optimizer.get("betas", (0.9, 0.999))),
        weight_decay=float(optimizer.get("weight_decay", 0.0)),
        max_norm=float(clip.get("max_norm", 1.0)),
    )


def profile_shape(profile: ProfileSettings, knobs: TrainKnobs) -> ModelShape:
    """The model shape `plra train --dry-run` uses: a local config.json where one is given, else the table."""
    if profile.model_path is not None and (profile.model_path / "config.json").exists():
        return shape_from_config_json(profile.model_path / "config.json")
    if knobs.model not in KNOWN_SHAPES:
        raise PlraError(f"no shape for {knobs.model} in plra/toolchain/model_shapes.toml: add its config.json keys")
    return KNOWN_SHAPES[knobs.model]


def make_plan(
    profile_name: str, budget_s: float = DEFAULT_BUDGET_S, prompt_tokens: int = 32, new_tokens: int = 128,
    warmup_tokens: int = 8,
) -> CheckPlan:  # fmt: skip
    """Resolve the profile, its SFT config, the model shape and the estimate; PlraError where one is unusable."""
    profile = load_profile(profile_name)
    config = stage_config(profile, "sft", None)
    settings = read_config_settings(config)
    knobs, lora = config_knobs(settings), config_lora(settings, config.name)
    if not knobs.quantized_4bit:
        raise PlraError(f"profile '{profile.name}' trains without 4-bit weights: the GPU check measures QLoRA")
    shape = profile_shape(profile, knobs)
    if shape.kv_lora_rank or shape.routed_experts:
        raise PlraError(f"{knobs.model} is not Llama-shaped (MLA or experts): the GPU check covers dense models")
    if shape.hidden % shape.heads or shape.heads % shape.kv_heads:
        raise PlraError(f"{knobs.model}: hidden size and heads do not divide as a Llama block needs")
    return CheckPlan(
        profile=profile.name, config=config, base_model=knobs.model, shape=shape, knobs=knobs, lora=lora,
        estimate_gib=estimate_memory(knobs, shape), prompt_tokens=prompt_tokens, new_tokens=new_tokens,
        warmup_tokens=warmup_tokens, budget_s=budget_s,
    )  # fmt: skip


def scaled_down(shape: ModelShape, layers: int = 2, heads: int = 4, head_dim: int = 16, vocab: int = 512) -> ModelShape:
    """A tiny model of the same kind for the CPU dry run: the real GQA ratio and MLP-to-hidden ratio."""
    hidden = heads * head_dim
    return ModelShape(
        hidden=hidden, layers=layers, heads=heads, kv_heads=max(1, heads * shape.kv_heads // shape.heads),
        intermediate=max(8, round(shape.intermediate / shape.hidden * hidden)), vocab=vocab,
        tied_embeddings=shape.tied_embeddings,
    )  # fmt: skip


def llama_config(shape: ModelShape, torch_dtype: str = "float16"):
    """transformers' LlamaConfig with the shape's sizes: the stand-in for InternLM2/3, whose code is on the hub."""
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=shape.hidden, intermediate_size=shape.intermediate, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads, vocab_size=shape.vocab,
        tie_word_embeddings=shape.tied_embeddings, max_position_embeddings=4096, bos_token_id=BOS_ID,
        eos_token_id=EOS_ID, pad_token_id=None, torch_dtype=torch_dtype, use_cache=True,
    )  # fmt: skip


def bnb_config(lora: LoraSettings, knobs: TrainKnobs):
    """The BitsAndBytesConfig of the XTuner config (nf4, double quantization, fp16 compute)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, load_in_8bit=False, llm_int8_threshold=6.0, llm_int8_has_fp16_weight=False,
        bnb_4bit_compute_dtype=getattr(torch, lora.compute_dtype), bnb_4bit_use_double_quant=knobs.double_quant,
        bnb_4bit_quant_type=lora.quant_type,
    )  # fmt: skip


def describe_shape(shape: ModelShape) -> str:
    return (
        f"hidden {shape.hidden}, layers {shape.layers}, heads {shape.heads}, kv heads {shape.kv_heads}, "
        f"intermediate {shape.intermediate}, vocab {shape.vocab}"
    )


def plan_lines(plan: CheckPlan) -> list[str]:
    """What the GPU run does, in order, with the numbers it uses."""
    knobs, lora, shape = plan.knobs, plan.lora, plan.shape
    estimate = plan.estimate_gib
    parts = ", ".join(f"{k} {v}" for k, v in estimate.items() if k != "total")
    fp16_gib = shape.total_params * 2 / GIB
    return [
        f"profile {plan.profile}: {plan.base_model}, XTuner config {plan.config.name}",
        f"shape (plra/toolchain/model_shapes.toml): {describe_shape(shape)}; "
        f"{shape.total_params / 1e9:.2f}B parameters",
        "model: transformers LlamaForCausalLM with those sizes, randomly initialised, no download "
        "(the InternLM modeling code is on the hub, trust_remote_code, unreachable from the GPU machine)",
        f"QLoRA: 4-bit {lora.quant_type}, double quantization {knobs.double_quant}, compute {lora.compute_dtype}; "
        f"LoRA r={lora.r} alpha={lora.alpha} dropout={lora.dropout} on {', '.join(lora.targets)} "
        f"(config: {', '.join(lora.config_targets)}); {knobs.max_length} tokens, batch {knobs.batch_size}, "
        "gradient checkpointing, fp16 autocast with a dynamic loss scale, AdamW",
        f"estimate (plra train --dry-run): {estimate['total']} GiB ({parts})",
        f"step 1: build the fp16 model on the GPU ({fp16_gib:.1f} GiB)",
        f"step 2: fp16 decode, batch 1, greedy: {plan.prompt_tokens}-token prompt, {plan.warmup_tokens}-token "
        f"warm-up, then {plan.new_tokens} new tokens (min_new_tokens = max_new_tokens)",
        f"step 3: write the fp16 weights to a local folder ({fp16_gib:.1f} GiB of disk), free the GPU",
        "step 4: load them in 4 bits with from_pretrained and the config's BitsAndBytesConfig",
        "step 5: 4-bit decode, as step 2",
        "step 6: peft k-bit preparation and LoRA, reset the peak, one training step (forward, backward, "
        "optimizer step); report torch.cuda.max_memory_allocated / max_memory_reserved against the estimate",
        f"budget: {plan.budget_s:.0f} s in all; the run stops itself before it with a message",
    ]


# ---------------------------------------------------------------------------------------------------------------
# The parts the GPU run and the CPU dry run share: building, decoding, one training step
# ---------------------------------------------------------------------------------------------------------------


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in REQUIRED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def import_bitsandbytes() -> Any:
    """Import bitsandbytes; its 0.45 release imports a triton module triton 3.2+ lacks (see xtuner_entry)."""
    from plra.toolchain.workers.xtuner_entry import install_triton_ops_standin

    install_triton_ops_standin()
    return importlib.import_module("bitsandbytes")


def check_packages() -> dict[str, str | None]:
    """The versions of the packages the GPU run needs; PlraError naming any that is missing or fails to import."""
    versions = package_versions()
    missing = [name for name, version in versions.items() if version is None]
    if missing:
        raise PlraError(f"the GPU check needs {', '.join(missing)}: install them into this Python ({sys.executable})")
    for name in REQUIRED_PACKAGES:
        try:
            import_bitsandbytes() if name == "bitsandbytes" else importlib.import_module(name)
        except Exception as err:  # any import failure means the same to the user: this package is unusable here
            raise PlraError(f"cannot import {name} {versions[name]}: {type(err).__name__}: {err}") from None
    return versions


def random_model(shape: ModelShape, dtype: str, device: str):
    """A randomly initialised Llama of the shape, made directly on `device` in `dtype`."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(
            llama_config(shape, dtype), torch_dtype=getattr(torch, dtype), attn_implementation="sdpa"
        )
    return model.eval()


def _synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def decode_speed(model, vocab: int, prompt_tokens: int, new_tokens: int, warmup_tokens: int) -> dict[str, float]:
    """Greedy tokens per second at batch 1, after a warm-up; exactly `new_tokens` are generated."""
    import torch

    device = str(model.device)
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(FIRST_ORDINARY_ID, vocab, (1, prompt_tokens), generator=generator).to(device)
    mask = torch.ones_like(prompt)

    def generate(count: int):
        # min_new_tokens = max_new_tokens: a random model must not stop early at its end-of-sequence id.
        return model.generate(
            input_ids=prompt, attention_mask=mask, do_sample=False, max_new_tokens=count, min_new_tokens=count,
            pad_token_id=EOS_ID, eos_token_id=EOS_ID, use_cache=True,
        )  # fmt: skip

    with torch.inference_mode():
        if warmup_tokens:
            generate(warmup_tokens)
        _synchronize(device)
        start = time.perf_counter()
        output = generate(new_tokens)
        _synchronize(device)
        seconds = time.perf_counter() - start
    produced = output.shape[1] - prompt_tokens
    if produced != new_tokens:
        raise PlraError(f"generate wrote {produced} tokens instead of {new_tokens}")
    return {"new_tokens": produced, "seconds": round(seconds, 3), "tokens_per_s": round(produced / seconds, 2)}


def prepare_lora(model, lora: LoraSettings):
    """What XTuner's SupervisedFinetune does to the loaded model: input gradients and gradient checkpointing,
    peft's k-bit preparation (base frozen, non-4-bit tensors in fp32), then LoRA on the targets."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from plra.toolchain.workers.xtuner_entry import install_triton_ops_standin

    install_triton_ops_standin()  # peft's LoRA imports bitsandbytes wherever it is installed
    model.config.use_cache = False
    model.enable_input_require_grads()
    model.gradient_checkpointing_enable()
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.targets, bias="none",
        task_type="CAUSAL_LM",
    )  # fmt: skip
    return get_peft_model(model, config)


def train_step(model, lora: LoraSettings, input_ids, amp: bool, max_tries: int = 8) -> dict[str, float]:
    """One optimizer step of AdamW on the trainable parameters, with gradient clipping; with `amp`, fp16
    autocast and a dynamic loss scale as XTuner's AmpOptimWrapper. A step whose scaled gradients overflow is
    skipped by the scaler (no Adam moments yet), so it is retried until the optimizer has stepped."""
    import torch

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lora.lr, betas=lora.betas, weight_decay=lora.weight_decay)
    device_type = "cuda" if input_ids.is_cuda else "cpu"
    scaler = torch.amp.GradScaler(device_type, enabled=amp)
    for attempt in range(1, max_tries + 1):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=torch.float16, enabled=amp):
            loss = model(input_ids=input_ids, labels=input_ids).loss
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, lora.max_norm)
        scaler.step(optimizer)
        scaler.update()
        if optimizer.state:  # AdamW keeps its moments only once it has really stepped
            return {"loss": round(float(loss.detach()), 4), "tries": attempt}
    raise PlraError(f"the loss scaler skipped {max_tries} steps in a row: the gradients overflow fp16")


# ---------------------------------------------------------------------------------------------------------------
# The budget: every step runs under the run's deadline
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Budget:
    """The run's deadline. A step starts only with enough time left for it, and an alarm interrupts it at the
    deadline, so the process ends before --budget-s however a step behaves."""

    seconds: float
    reserve_s: float = 10.0  # writing the JSON and removing the weights folder
    clock: Callable[[], float] = time.monotonic
    start: float = field(default=0.0)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.start = self.start or self.clock()

    def left(self) -> float:
        return self.seconds - self.reserve_s - (self.clock() - self.start)

    @contextlib.contextmanager
    def step(self, name: str, needs_s: float) -> Iterator[None]:
        left = self.left()
        if left < needs_s:
            raise BudgetExceeded(
                f"stopped before '{name}': {max(left, 0):.0f} s of the {self.seconds:.0f} s budget left, "
                f"it needs about {needs_s:.0f} s (raise --budget-s)"
            )

        def on_alarm(_signum, _frame):
            raise BudgetExceeded(f"stopped during '{name}': the {self.seconds:.0f} s budget ran out (raise --budget-s)")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, left)
        started = self.clock()
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            self.timings[name] = round(self.clock() - started, 1)


# ---------------------------------------------------------------------------------------------------------------
# The runs
# ---------------------------------------------------------------------------------------------------------------


def dry_run(plan: CheckPlan) -> dict[str, Any]:
    """On a CPU: the packages import, the configs build, and a tiny model of the same kind takes one fp32 LoRA
    step (no bitsandbytes) with exactly the LoRA parameters the estimate counts, and decodes greedily."""
    import torch

    versions = check_packages()
    full = llama_config(plan.shape)  # the real sizes build a valid config (no weights are made)
    quant = bnb_config(plan.lora, plan.knobs)
    tiny_shape = scaled_down(plan.shape)
    model = random_model(tiny_shape, "float32", "cpu")
    decode = decode_speed(model, tiny_shape.vocab, 8, 4, 2)
    model = prepare_lora(model, plan.lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    expected = tiny_shape.lora_params(plan.lora.r)
    if trainable != expected:
        raise PlraError(f"LoRA on {plan.lora.targets} trains {trainable} parameters; the estimate counts {expected}")
    ids = torch.randint(FIRST_ORDINARY_ID, tiny_shape.vocab, (1, min(plan.knobs.max_length, 64)))
    step = train_step(model, plan.lora, ids, amp=False)
    frozen_with_grad = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    # LoRA's B matrices start at zero, so on the first step only they (not A) can have a nonzero gradient.
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    if not math.isfinite(step["loss"]) or frozen_with_grad or not all(float(p.grad.abs().sum()) > 0 for p in lora_b):
        raise PlraError(f"the tiny LoRA step is wrong: loss {step['loss']}, frozen tensors with gradients: "
                        f"{frozen_with_grad[:3]}, LoRA B tensors {len(lora_b)}")  # fmt: skip
    return {
        "versions": versions,
        "full_config": {key: getattr(full, key) for key in CONFIG_KEYS},
        "bnb_4bit_quant_type": quant.bnb_4bit_quant_type,
        "tiny": {"shape": asdict(tiny_shape), "lora_params": trainable, "loss": step["loss"], "decode": decode},
    }


def _gib(value: float) -> float:
    return round(value / GIB, 2)


def gpu_run(plan: CheckPlan, budget: Budget, work_dir: Path | None, result: dict[str, Any]) -> None:
    """The measurements, filled into `result` as they come (a stopped run keeps what it has)."""
    import torch
    from transformers import AutoModelForCausalLM

    shape, lora = plan.shape, plan.lora
    decode: dict[str, Any] = result.setdefault("decode", {})
    folder = Path(tempfile.mkdtemp(prefix="plra-gpu-check-", dir=work_dir))
    try:
        with budget.step("build fp16 model", 10):
            model = random_model(shape, "float16", "cuda")
        with budget.step("decode fp16", 20):
            decode["fp16"] = decode_speed(model, shape.vocab, plan.prompt_tokens, plan.new_tokens, plan.warmup_tokens)
        with budget.step("write fp16 weights", 40):
            model.save_pretrained(folder, safe_serialization=True)
        del model
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        with budget.step("load 4-bit", 40):
            model = AutoModelForCausalLM.from_pretrained(
                folder, quantization_config=bnb_config(lora, plan.knobs), torch_dtype=torch.float16,
                device_map={"": torch.cuda.current_device()}, attn_implementation="sdpa",
            )  # fmt: skip
        result["load_4bit"] = {"peak_allocated_gib": _gib(torch.cuda.max_memory_allocated()),
                               "allocated_gib": _gib(torch.cuda.memory_allocated())}  # fmt: skip
        with budget.step(f"decode {lora.quant_type}", 30):
            decode["4bit"] = decode_speed(model, shape.vocab, plan.prompt_tokens, plan.new_tokens, plan.warmup_tokens)
        decode["speed_ratio_4bit_to_fp16"] = round(decode["4bit"]["tokens_per_s"] / decode["fp16"]["tokens_per_s"], 3)
        with budget.step("QLoRA training step", 30):
            model = prepare_lora(model, lora)
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            generator = torch.Generator().manual_seed(1)
            shape_ids = (plan.knobs.batch_size, plan.knobs.max_length)
            ids = torch.randint(FIRST_ORDINARY_ID, shape.vocab, shape_ids, generator=generator).cuda()
            started = time.perf_counter()
            step = train_step(model, lora, ids, amp=True)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - started
        free, total = torch.cuda.mem_get_info()
        # What the device holds beyond PyTorch's pool: the CUDA context and libraries (the estimate's runtime part),
        # on a GPU no other process uses.
        outside_pool = (total - free) - torch.cuda.memory_reserved()
        peak_reserved = torch.cuda.max_memory_reserved()
        result["train_step"] = {
            "peak_allocated_gib": _gib(torch.cuda.max_memory_allocated()),
            "peak_reserved_gib": _gib(peak_reserved),
            "outside_torch_pool_gib": _gib(outside_pool),
            "peak_device_gib": _gib(peak_reserved + outside_pool),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "loss": step["loss"],
            "amp_tries": step["tries"],
            "seconds": round(seconds, 2),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def environment() -> dict[str, Any]:
    import torch

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "versions": package_versions(),
    }


def report_lines(result: dict[str, Any]) -> list[str]:
    """The results as a table: memory against the estimate, then decode speed."""
    estimate = result["estimate_gib"]["total"]
    lines = [f"GPU: {result.get('gpu')}  torch {result['versions']['torch']}  transformers "
             f"{result['versions']['transformers']}  bitsandbytes {result['versions']['bitsandbytes']}",
             "", f"{'QLoRA training step (' + result['profile'] + ')':<44}{'GiB':>8}"]  # fmt: skip
    rows = [("estimate, plra train --dry-run", estimate)]
    step = result.get("train_step")
    if step:
        rows += [
            ("measured: max_memory_allocated", step["peak_allocated_gib"]),
            ("measured: max_memory_reserved", step["peak_reserved_gib"]),
            ("measured: reserved + CUDA context and libs", step["peak_device_gib"]),
        ]
    lines += [f"{name:<44}{value:>8.2f}" for name, value in rows]
    if step:
        verdict = "within" if step["peak_device_gib"] <= estimate else "ABOVE"
        lines.append(f"measured peak is {verdict} the estimate ({step['peak_device_gib'] - estimate:+.2f} GiB); "
                     f"loss {step['loss']}, {step['seconds']} s")  # fmt: skip
    decode = result.get("decode", {})
    if decode:
        lines += ["", f"{'greedy decode, batch 1':<28}{'tokens':>8}{'seconds':>10}{'tokens/s':>10}"]
        for name, label in (("fp16", "fp16"), ("4bit", f"4-bit {result['lora']['quant_type']}")):
            if name in decode:
                row = decode[name]
                lines.append(f"{label:<28}{row['new_tokens']:>8}{row['seconds']:>10.2f}{row['tokens_per_s']:>10.2f}")
        if "speed_ratio_4bit_to_fp16" in decode:
            lines.append(f"4-bit / fp16 speed: {decode['speed_ratio_4bit_to_fp16']}")
    return lines


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def plan_summary(plan: CheckPlan) -> dict[str, Any]:
    return {
        "profile": plan.profile,
        "config": str(plan.config.relative_to(REPO_ROOT) if plan.config.is_relative_to(REPO_ROOT) else plan.config),
        "base_model": plan.base_model,
        "stand_in": "transformers LlamaForCausalLM of the same sizes, randomly initialised",
        "shape": asdict(plan.shape),
        "knobs": asdict(plan.knobs),
        "lora": asdict(plan.lora),
        "estimate_gib": plan.estimate_gib,
        "decode_settings": {
            "prompt_tokens": plan.prompt_tokens,
            "new_tokens": plan.new_tokens,
            "warmup_tokens": plan.warmup_tokens,
        },
        "budget_s": plan.budget_s,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help=f"a QLoRA profile (default {DEFAULT_PROFILE})")
    parser.add_argument("--out", type=Path, default=None, help=f"the JSON report (default {DEFAULT_OUT}; "
                        "a dry run writes one only when given)")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="check the plan on a CPU with a tiny model")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="stop before this many seconds")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens each timed decode writes")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--warmup-tokens", type=int, default=8)
    parser.add_argument("--work-dir", type=Path, default=None, help="where the fp16 weights are written for "
                        "the 4-bit load (default: the system's temporary folder)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, echo: Callable[[str], None] = print) -> int:
    """Run the check; the exit code: 0 done, 1 a failed check, 2 no CUDA (or unusable settings), 3 out of time."""
    args = parse_args(argv)
    budget = Budget(args.budget_s)
    try:
        plan = make_plan(args.profile, args.budget_s, args.prompt_tokens, args.new_tokens, args.warmup_tokens)
    except PlraError as err:
        print(f"gpu_check: error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        echo("gpu_check --dry-run: the plan of the GPU run")
        for line in plan_lines(plan):
            echo(f"  {line}")
        try:
            checked = dry_run(plan)
        except PlraError as err:
            print(f"gpu_check: error: {err}", file=sys.stderr)
            return 1
        tiny = checked["tiny"]
        echo(f"checked on the CPU: packages {', '.join(f'{k} {v}' for k, v in checked['versions'].items())}; "
             f"the full-size LlamaConfig and BitsAndBytesConfig ({checked['bnb_4bit_quant_type']}) build; a "
             f"{tiny['shape']['layers']}-layer, hidden-{tiny['shape']['hidden']} model took one fp32 LoRA step "
             f"(loss {tiny['loss']}, {tiny['lora_params']} LoRA parameters, as the estimate counts) and decoded "
             f"{tiny['decode']['new_tokens']} tokens")  # fmt: skip
        if args.out:
            write_json(args.out, {**plan_summary(plan), "dry_run": checked, "complete": True})
        return 0
    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: error: {NO_CUDA_MESSAGE}", file=sys.stderr)
        return 2
    out = args.out or DEFAULT_OUT
    result: dict[str, Any] = {**environment(), **plan_summary(plan), "complete": False, "stopped": None}
    for line in plan_lines(plan):
        echo(f"  {line}")
    code = 0
    try:
        with budget.step("check packages", 5):
            check_packages()
        gpu_run(plan, budget, args.work_dir, result)
        result["complete"] = True
    except BudgetExceeded as err:
        result["stopped"] = str(err)
        print(f"gpu_check: {err}; the figures so far are in {out}", file=sys.stderr)
        code = 3
    except PlraError as err:
        result["stopped"] = str(err)
        print(f"gpu_check: error: {err}", file=sys.stderr)
        code = 1
    except Exception as err:  # unexpected (CUDA out of memory, a library error): the report says so, then it raises
        result["stopped"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        result["timings_s"] = {**budget.timings, "total": round(time.monotonic() - budget.start, 1)}
        write_json(out, result)
    echo("")
    for line in report_lines(result):
        echo(line)
    echo(f"\nwritten: {out} ({result['timings_s']['total']} s)")
    return code


if __name__ == "__main__":
    sys.exit(main())
