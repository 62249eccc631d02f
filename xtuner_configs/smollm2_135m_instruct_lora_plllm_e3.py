# PLRA `tiny` profile: LoRA SFT of SmolLM2-135M-Instruct on the personalized-LLM conversations, fp32, on a CPU.
# Run through `plra train --profile tiny` (or: python -m xtuner.tools.train xtuner_configs/<this file>).
# Paths are relative to the repository root; plra sets PLRA_MODEL_DIR / PLRA_DATA_DIR when they differ (in the
# profile's recipe PLRA_MODEL_DIR is the pretraining stage's merged model).
# mmengine parses configs with lazy imports, so the standard library is reached through __import__.
import torch
from mmengine.dataset import DefaultSampler
from mmengine.hooks import CheckpointHook, DistSamplerSeedHook, IterTimerHook, LoggerHook, ParamSchedulerHook
from mmengine.optim import CosineAnnealingLR, LinearLR, OptimWrapper
from peft import LoraConfig
from torch.optim import AdamW
from transformers import AutoModelForCausalLM, AutoTokenizer
from xtuner.dataset import process_hf_dataset
from xtuner.dataset.collate_fns import default_collate_fn
from xtuner.dataset.map_fns import openai_map_fn, template_map_fn_factory
from xtuner.engine.hooks import DatasetInfoHook
from xtuner.engine.runner import TrainLoop
from xtuner.model import SupervisedFinetune
from xtuner.utils import PROMPT_TEMPLATE

from datasets import load_dataset

# CPU builds of torch lack torch.cpu.is_bf16_supported, which the training stack probes; answer "no".
if not hasattr(__import__("torch").cpu, "is_bf16_supported"):
    __import__("torch").cpu.is_bf16_supported = lambda: False

#######################################################################
#                          PART 1  Settings                           #
#######################################################################
pretrained_model_name_or_path = __import__("os").environ.get("PLRA_MODEL_DIR", "models/smollm2-135m-instruct")
data_dir = __import__("os").environ.get("PLRA_DATA_DIR", "build/data/personalized-llm")
data_path = data_dir + "/sft.jsonl"
prompt_template = PROMPT_TEMPLATE.qwen_chat  # ChatML, the template SmolLM2 was tuned with
max_length = 256  # short packs keep a CPU step near 2 s
pack_to_max_length = True
use_varlen_attn = False  # varlen attention needs flash_attn (GPU only)

lora_r = 16
lora_alpha = 32
lora_dropout = 0.05

batch_size = 1
accumulative_counts = 1
dataloader_num_workers = 0
map_num_proc = 2  # no more processes than this machine's cores
# A CPU budget (~11 min on 2 idle cores). PLRA_MAX_ITERS sets the count outright (CI's cap); PLRA_ITERS_SCALE
# multiplies this default (`plra pipeline --budget long`: 4x).
iters_scale = float(__import__("os").environ.get("PLRA_ITERS_SCALE", "1"))
max_iters = int(__import__("os").environ.get("PLRA_MAX_ITERS") or max(1, round(160 * iters_scale)))
lr = 1e-3  # LoRA on a 135M model moves slowly at GPU-style learning rates
betas = (0.9, 0.999)
weight_decay = 0.0
max_norm = 1.0
warmup_iters = max(1, min(10, max_iters // 10))  # at least one iteration, as the schedulers require

save_steps = max_iters
save_total_limit = 1
log_interval = max(1, min(10, max_iters // 2))
seed = 0

#######################################################################
#                      PART 2  Model & Tokenizer                      #
#######################################################################
tokenizer = dict(
    type=AutoTokenizer.from_pretrained,
    pretrained_model_name_or_path=pretrained_model_name_or_path,
    padding_side="right",
)

model = dict(
    type=SupervisedFinetune,
    use_varlen_attn=use_varlen_attn,
    llm=dict(
        type=AutoModelForCausalLM.from_pretrained,
        pretrained_model_name_or_path=pretrained_model_name_or_path,
        torch_dtype=torch.float32,
    ),
    lora=dict(
        type=LoraConfig,
        r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        bias="none",
        task_type="CAUSAL_LM",
    ),
)

#######################################################################
#                      PART 3  Dataset & Dataloader                   #
#######################################################################
train_dataset = dict(
    type=process_hf_dataset,
    dataset=dict(type=load_dataset, path="json", data_files=dict(train=data_path)),
    tokenizer=tokenizer,
    max_length=max_length,
    dataset_map_fn=openai_map_fn,
    template_map_fn=dict(type=template_map_fn_factory, template=prompt_template),
    remove_unused_columns=True,
    shuffle_before_pack=True,
    pack_to_max_length=pack_to_max_length,
    use_varlen_attn=use_varlen_attn,
    map_num_proc=map_num_proc,
)

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=dataloader_num_workers,
    dataset=train_dataset,
    sampler=dict(type=DefaultSampler, shuffle=True),
    collate_fn=dict(type=default_collate_fn, use_varlen_attn=use_varlen_attn),
)

#######################################################################
#                    PART 4  Scheduler & Optimizer                    #
#######################################################################
optim_wrapper = dict(
    type=OptimWrapper,  # no AMP on a CPU
    optimizer=dict(type=AdamW, lr=lr, betas=betas, weight_decay=weight_decay),
    clip_grad=dict(max_norm=max_norm, error_if_nonfinite=False),
    accumulative_counts=accumulative_counts,
)

param_scheduler = [
    dict(type=LinearLR, start_factor=0.1, by_epoch=False, begin=0, end=warmup_iters),
    dict(type=CosineAnnealingLR, eta_min=lr * 0.1, by_epoch=False, begin=warmup_iters, end=max_iters),
]

train_cfg = dict(type=TrainLoop, max_iters=max_iters)

#######################################################################
#                           PART 5  Runtime                           #
#######################################################################
custom_hooks = [dict(type=DatasetInfoHook, tokenizer=tokenizer)]

default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, log_metric_by_epoch=False, interval=log_interval),
    param_scheduler=dict(type=ParamSchedulerHook),
    checkpoint=dict(type=CheckpointHook, by_epoch=False, interval=save_steps, max_keep_ckpts=save_total_limit),
    sampler_seed=dict(type=DistSamplerSeedHook),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="gloo"),
)

visualizer = None
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=seed, deterministic=False)
log_processor = dict(by_epoch=False, window_size=log_interval)  # each logged loss: the mean since the last
