# PLLM-Bench through an OpenAI-compatible endpoint (`plra serve`: LMDeploy TurboMind on GPUs,
# transformers serve on CPUs). `plra eval --api URL` sets: PLRA_EVAL_API_URL, PLRA_EVAL_API_MODEL,
# PLRA_EVAL_TOKENIZER (a local tokenizer folder: OpenAISDK loads one and must not reach the hub),
# PLRA_EVAL_MAX_OUT_LEN, PLRA_EVAL_BATCH_SIZE, plus the dataset variables of plllm_datasets.py.
from mmengine.config import read_base
from opencompass.models import OpenAISDK

with read_base():
    from .plllm_datasets import datasets  # noqa: F401


models = [
    dict(
        type=OpenAISDK,
        abbr=__import__("os").environ.get("PLRA_EVAL_API_ABBR", "served"),
        path=__import__("os").environ.get("PLRA_EVAL_API_MODEL", "plra"),
        key="EMPTY",
        openai_api_base=__import__("os").environ.get("PLRA_EVAL_API_URL", "http://127.0.0.1:23333/v1"),
        tokenizer_path=__import__("os").environ.get("PLRA_EVAL_TOKENIZER", "models/smollm2-135m-instruct"),
        temperature=0.0,
        query_per_second=int(__import__("os").environ.get("PLRA_EVAL_QPS", "8")),
        max_out_len=int(__import__("os").environ.get("PLRA_EVAL_MAX_OUT_LEN", "128")),
        max_seq_len=4096,
        batch_size=int(__import__("os").environ.get("PLRA_EVAL_BATCH_SIZE", "4")),
        retry=2,
    )
]
