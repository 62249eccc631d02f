# PLLM-Bench on Hugging Face models loaded directly (base and merged tuned), on a CPU or GPUs: choices by
# loss, open questions by generation.
# `plra eval --profile P` sets: PLRA_EVAL_MODELS (JSON list of {"abbr", "path"}), PLRA_EVAL_DEVICE (cpu|cuda),
# PLRA_EVAL_DTYPE (float32|bfloat16|float16; by default float32 on a CPU, float16 on GPUs),
# PLRA_EVAL_MAX_OUT_LEN, PLRA_EVAL_BATCH_SIZE, plus the dataset variables of plllm_datasets.py.
# By hand (any model folder):
#   PLRA_EVAL_MODELS='[{"abbr": "base", "path": "models/smollm2-135m-instruct"}]' opencompass eval/eval_plllm_hf.py
from mmengine.config import read_base

from plra.toolchain.workers.oc_models import ChatModelWithLoss

with read_base():
    from .plllm_datasets import datasets  # noqa: F401

model_specs = __import__("json").loads(
    __import__("os").environ.get("PLRA_EVAL_MODELS", '[{"abbr": "base", "path": "models/smollm2-135m-instruct"}]')
)
device = __import__("os").environ.get("PLRA_EVAL_DEVICE", "cpu")
dtype = __import__("os").environ.get("PLRA_EVAL_DTYPE", "float32" if device == "cpu" else "float16")
max_out_len = int(__import__("os").environ.get("PLRA_EVAL_MAX_OUT_LEN", "128"))
batch_size = int(__import__("os").environ.get("PLRA_EVAL_BATCH_SIZE", "4"))

models = [
    dict(
        type=ChatModelWithLoss,  # the chat-template model, with option scoring by loss
        abbr=spec["abbr"],
        path=spec["path"],
        tokenizer_path=spec["path"],  # local files only: the hub is never asked
        model_kwargs=dict(
            torch_dtype=f"torch.{dtype}",
            device_map="cpu" if device == "cpu" else "auto",
        ),
        generation_kwargs=dict(do_sample=False),
        max_out_len=max_out_len,
        max_seq_len=2048,
        batch_size=batch_size,
        run_cfg=dict(num_gpus=0 if device == "cpu" else 1),
    )
    for spec in model_specs
]
