# PLRA `tiny` profile, DPO: LoRA on SmolLM2-135M-Instruct, preferring grounded, correctly cited answers over
# fabricated citations, wrong years or authors, misattributed methods and unhelpful refusals. fp32 on a CPU.
# mmengine parses configs with lazy imports, so the standard library is reached through __import__.
import torch
from mmengine.dataset import DefaultSampler
from mmengine.hooks import CheckpointHook, DistSamplerSeedHook, IterTimerHook, LoggerHook, ParamSchedulerHook
from mmengine.optim import CosineAnnealingLR, LinearLR, OptimWrapper
from peft import LoraConfig
from torch.optim import AdamW
from transformers import AutoModelForCausalLM, AutoTokenizer
from xtuner.dataset.collate_fns.preference_collate_fn import preference_collate_fn
from xtuner.dataset.preference_dataset import build_preference_dataset, load_jsonl_dataset
from xtuner.engine.hooks import DatasetInfoHook
from xtuner.engine.runner import TrainLoop
from xtuner.model.dpo import DPO

# CPU builds of torch lack torch.cpu.is_bf16_supported, which the training stack probes; answer "no".
if not hasattr(__import__("torch").cpu, "is_bf16_supported"):
    __import__("torch").cpu.is_bf16_supported = lambda: False

#######################################################################
#                          PART 1  Settings                           #
#######################################################################
pretrained_model_name_or_path = __import__("os").environ.get("PLRA_MODEL_DIR", "models/smollm2-135m-instruct")
data_dir = __import__("os").environ.get("PLRA_DATA_DIR", "build/data/personalized-llm")
data_path = data_dir + "/dpo.jsonl"  # {"prompt", "chosen", "rejected"} message lists
max_length = 384  # prompt + one answer; chosen and rejected run side by side
use_varlen_attn = False
dpo_loss_type = "sigmoid"
loss_beta = 0.1
label_smoothing = 0.0  # varlen attention needs flash_attn (GPU only)

lora_r = 16
lora_alpha = 32
lora_dropout = 0.05

batch_size = 1
accumulative_counts = 1
dataloader_num_workers = 0
map_num_proc = 2  # no more processes than this machine's cores
max_iters = int(__import__("os").environ.get("PLRA_MAX_ITERS", "60"))  # a CPU budget (~8 min on 2 cores)
lr = 5e-5
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
    type=DPO,  # with LoRA the reference policy is the same model with the adapter switched off
    use_varlen_attn=use_varlen_attn,
    loss_type=dpo_loss_type,
    beta=loss_beta,
    label_smoothing=label_smoothing,
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
    type=build_preference_dataset,
    dataset=dict(type=load_jsonl_dataset, data_files=[data_path]),
    tokenizer=tokenizer,
    max_length=max_length,
    dataset_map_fn=None,
    is_dpo=True,
    is_reward=False,
    reward_token_id=-1,
    num_proc=map_num_proc,
    use_varlen_attn=use_varlen_attn,
    shuffle_before_pack=True,
)

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=dataloader_num_workers,
    dataset=train_dataset,
    sampler=dict(type=DefaultSampler, shuffle=True),
    collate_fn=dict(type=preference_collate_fn, use_varlen_attn=use_varlen_attn),
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
