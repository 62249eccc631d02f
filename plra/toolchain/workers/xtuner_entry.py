"""Run an XTuner tool (train, pth_to_hf, merge) with real exit codes and one compatibility fix.

    python -m plra.toolchain.workers.xtuner_entry train CONFIG [args...]
    python -m plra.toolchain.workers.xtuner_entry pth_to_hf CONFIG PTH OUT
    python -m plra.toolchain.workers.xtuner_entry merge BASE ADAPTER OUT [--device cpu]

xtuner 0.2.0 pins bitsandbytes 0.45.0, which imports `triton.ops.matmul_perf_model` whenever triton is
installed; triton 3.2+ (the one torch 2.14 brings) no longer has `triton.ops`, so importing peft's LoRA
layers fails, on CPUs and GPUs alike. Those two functions only tune bitsandbytes' optional int8 triton
kernels, which QLoRA never calls; a stand-in module that fails loudly if they are ever called lets the
import succeed. The `xtuner` launcher would also exit 0 after a crash, hence running the modules directly.

Models whose own modeling code runs (trust_remote_code: DeepSeek-V2's, and xtuner's copy of it) import
`transformers.pytorch_utils.is_torch_greater_or_equal_than_1_13`, which transformers 4.48 (xtuner's pin)
removed; every torch that xtuner runs with is newer than 1.13, so the name is restored as True. The merge
step loads the base model without any XTuner config, so this belongs here, not in a config.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys
import types

TOOLS = {
    "train": "xtuner.tools.train",
    "pth_to_hf": "xtuner.tools.model_converters.pth_to_hf",
    "merge": "xtuner.tools.model_converters.merge",
}


def _unavailable(*_args, **_kwargs):
    raise RuntimeError("bitsandbytes' triton int8 kernels are unavailable with triton >= 3.2")


def install_triton_ops_standin() -> bool:
    """Provide triton.ops.matmul_perf_model when triton lacks it; True when the stand-in was installed."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        importlib.import_module("triton.ops.matmul_perf_model")
        return False
    except ImportError:
        pass
    ops = types.ModuleType("triton.ops")
    perf = types.ModuleType("triton.ops.matmul_perf_model")
    perf.early_config_prune = _unavailable
    perf.estimate_matmul_time = _unavailable
    ops.matmul_perf_model = perf
    sys.modules["triton.ops"] = ops
    sys.modules["triton.ops.matmul_perf_model"] = perf
    return True


def restore_removed_transformers_names() -> list[str]:
    """Put back the names remote modeling code still imports from transformers; the names restored."""
    import transformers.pytorch_utils as pytorch_utils

    restored = []
    if not hasattr(pytorch_utils, "is_torch_greater_or_equal_than_1_13"):
        pytorch_utils.is_torch_greater_or_equal_than_1_13 = True
        restored.append("is_torch_greater_or_equal_than_1_13")
    return restored


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TOOLS:
        sys.exit(f"usage: python -m plra.toolchain.workers.xtuner_entry {{{','.join(TOOLS)}}} ARGS...")
    tool = TOOLS[sys.argv[1]]
    install_triton_ops_standin()
    restore_removed_transformers_names()
    sys.argv = [tool, *sys.argv[2:]]
    runpy.run_module(tool, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
