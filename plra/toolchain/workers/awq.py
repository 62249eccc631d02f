"""AWQ W4A16 quantization with LMDeploy on local calibration text, and a dequantize-and-compare check.

Runs in the deploy env: `python -m plra.toolchain.workers.awq quantize|check ...` (see `plra quantize`).

LMDeploy's calibration loader only knows hub datasets (wikitext2, c4, ...); `local_calib_loader`
replaces it with token windows cut from a local text file, so quantization never touches the hub.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import torch

AWQ_PACK_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # the column order LMDeploy/AutoAWQ pack eight 4-bit values in


def token_windows(tokenizer, text: str, count: int, seqlen: int) -> list[torch.Tensor]:
    """Consecutive [1, seqlen] windows of the tokenized text (as many as it holds, up to count)."""
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids[0]
    windows = [ids[i : i + seqlen].unsqueeze(0) for i in range(0, len(ids) - seqlen + 1, seqlen)][:count]
    if not windows:
        sys.exit(f"error: the calibration text holds fewer than {seqlen} tokens; give more text or a shorter seqlen")
    return windows


def quantize(args: argparse.Namespace) -> dict:
    import lmdeploy.lite.apis.calibrate as calibrate
    from lmdeploy.lite.apis.auto_awq import auto_awq

    text = Path(args.calib_file).read_text(encoding="utf-8")

    def local_calib_loader(_name, tokenizer, nsamples=128, seed=0, seqlen=2048):
        return token_windows(tokenizer, text, nsamples, seqlen)

    calibrate.get_calib_loaders = local_calib_loader
    start = time.monotonic()
    auto_awq(
        args.model,
        work_dir=args.out,
        calib_dataset="wikitext2",  # a name lmdeploy accepts; the patched loader ignores it and reads local text
        calib_samples=args.calib_samples,
        calib_seqlen=args.calib_seqlen,
        w_bits=4,
        w_group_size=args.group_size,
        search_scale=args.device == "cuda",  # the CPU scale search corrupts weights in lmdeploy 0.18
        device=args.device,
        dtype="float16",
    )
    return {
        "source_model": str(Path(args.model).resolve()),
        "method": "awq",
        "w_bits": 4,
        "group_size": args.group_size,
        "calib_samples": args.calib_samples,
        "calib_seqlen": args.calib_seqlen,
        "calib_text_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "device": args.device,
        "seconds": round(time.monotonic() - start, 1),
    }


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """[rows, cols/8] int32 -> [rows, cols] int values 0..15, undoing the AWQ pack order."""
    rows, packed_cols = packed.shape
    out = torch.empty((rows, packed_cols * 8), dtype=torch.int32)
    for slot, column in enumerate(AWQ_PACK_ORDER):
        out[:, column::8] = (packed >> (4 * slot)) & 0xF
    return out


def dequantize(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, group_size: int) -> torch.Tensor:
    """AWQ tensors -> the [out, in] float weight they stand for."""
    weights = unpack_int4(qweight).float()  # [in, out]
    zeros = unpack_int4(qzeros).float().repeat_interleave(group_size, dim=0)
    return ((weights - zeros) * scales.float().repeat_interleave(group_size, dim=0)).t().contiguous()


def load_dequantized(folder: Path):
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    group_size = config.quantization_config["group_size"]
    del config.quantization_config
    state = {}
    for shard in sorted(folder.glob("*.safetensors")):
        state.update(load_file(shard))
    weights = {}
    for name, tensor in state.items():
        if name.endswith(".qweight"):
            prefix = name[: -len(".qweight")]
            weights[f"{prefix}.weight"] = dequantize(tensor, state[f"{prefix}.qzeros"], state[f"{prefix}.scales"],
                                                     group_size)  # fmt: skip
        elif not name.endswith((".qzeros", ".scales")):
            weights[name] = tensor.float()
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        sys.exit(f"error: {folder} does not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if config.tie_word_embeddings:
        model.tie_weights()
    return model.eval()


def compare(args: argparse.Namespace) -> dict:
    """Logits cosine similarity, perplexity ratio and top-1 agreement of quantized vs original on held-out text."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    windows = token_windows(tokenizer, Path(args.heldout_file).read_text(encoding="utf-8"), args.check_samples,
                            args.calib_seqlen)  # fmt: skip
    original = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    quantized = load_dequantized(Path(args.out))
    cosines, nll = [], {"original": 0.0, "quantized": 0.0}
    agree = tokens = 0
    with torch.no_grad():
        for ids in windows:
            a, b = original(ids).logits[0].float(), quantized(ids).logits[0].float()
            cosines.append(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean().item())
            targets = ids[0, 1:]
            for name, logits in (("original", a), ("quantized", b)):
                nll[name] += torch.nn.functional.cross_entropy(logits[:-1], targets, reduction="sum").item()
            agree += (a.argmax(-1) == b.argmax(-1)).sum().item()
            tokens += targets.numel()
    ppl = {name: math.exp(total / tokens) for name, total in nll.items()}
    return {
        "logits_cosine": round(sum(cosines) / len(cosines), 4),
        "ppl_original": round(ppl["original"], 3),
        "ppl_quantized": round(ppl["quantized"], 3),
        "ppl_ratio": round(ppl["quantized"] / ppl["original"], 4),
        "top1_agreement": round(agree / (tokens + len(windows)), 4),
        "heldout_windows": len(windows),
        "heldout_tokens": tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m plra.toolchain.workers.awq")
    parser.add_argument("action", choices=["quantize", "check"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--calib-file")
    parser.add_argument("--heldout-file")
    parser.add_argument("--group-size", type=int, default=128)
    parser.add_argument("--calib-samples", type=int, default=128)
    parser.add_argument("--calib-seqlen", type=int, default=2048)
    parser.add_argument("--check-samples", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    result = quantize(args) if args.action == "quantize" else compare(args)
    print(json.dumps(result))  # the last line is the result, for the caller to parse


if __name__ == "__main__":
    main()
