"""`plra quantize`: AWQ W4A16 with LMDeploy in `.venv-deploy`, calibrated on the knowledge base's own text.

Calibration text is the built pretrain corpus (never a hub download); the last tenth of its documents
is held out for `--check`, which compares the dequantized model with the original (logits cosine
similarity, perplexity ratio, top-1 agreement).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import typer

from plra.errors import PlraError
from plra.io import write_json_atomic
from plra.paths import REPO_ROOT
from plra.settings import ProfileSettings, load_knowledge, load_profile
from plra.toolchain import envs
from plra.toolchain.serve import default_model_dir, quantized_dir

MANIFEST = "plra-quant.json"


def check_group_size(model_dir: Path, group_size: int) -> None:
    """Refuse shapes AWQ cannot pack: every linear layer's input width must divide by the group size."""
    config = json.loads((model_dir / "config.json").read_text())
    widths = {"hidden_size": config["hidden_size"], "intermediate_size": config["intermediate_size"]}
    heads, head_dim = config.get("num_attention_heads"), config.get("head_dim")
    if heads and head_dim:
        widths["num_attention_heads * head_dim"] = heads * head_dim
    bad = {name: width for name, width in widths.items() if width % group_size}
    if bad:
        fits = [g for g in (256, 128, 64, 32, 16) if all(w % g == 0 for w in widths.values())]
        hint = f"use --group-size {fits[0]}" if fits else "no common group size fits this model"
        shown = ", ".join(f"{name} {width}" for name, width in bad.items())
        raise PlraError(f"{model_dir.name}: {shown} does not divide by group size {group_size}; {hint}")


def calibration_texts(seed: int = 0) -> tuple[str, str]:
    """(calibration text, held-out text) from the built pretrain corpus, split by document."""
    from plra.data.build import build as build_data
    from plra.data.build import default_out_dir

    settings = load_knowledge()
    corpus = default_out_dir(settings) / "pretrain.jsonl"
    if not corpus.exists():
        build_data(settings, default_out_dir(settings), log=lambda _m: None)
    docs = [json.loads(line)["text"] for line in corpus.read_text(encoding="utf-8").splitlines()]
    random.Random(seed).shuffle(docs)
    cut = max(1, len(docs) // 10)
    return "\n\n".join(docs[cut:]), "\n\n".join(docs[:cut])


def _worker(action: str, args: list[str], log_path: Path) -> dict:
    code = envs.run("deploy", ["python", "-m", "plra.toolchain.workers.awq", action, *args], cwd=REPO_ROOT,
                    extra_env={"HF_HUB_OFFLINE": "1"}, log_path=log_path)  # fmt: skip
    lines = log_path.read_text(encoding="utf-8").strip().splitlines()
    if code != 0 or not lines:
        raise PlraError(f"AWQ {action} failed (exit {code}); see {log_path}", exit_code=code or 1)
    return json.loads(lines[-1])


def quantize(profile: ProfileSettings, model_dir: Path, group_size: int, samples: int, seqlen: int,
             check: bool, log=print) -> dict:  # fmt: skip
    check_group_size(model_dir, group_size)
    target = quantized_dir(model_dir)
    device = "cuda" if profile.device == "cuda" else "cpu"
    calib, heldout = calibration_texts()
    with tempfile.TemporaryDirectory(dir=model_dir.parent, prefix=f".{target.name}-") as tmp:
        work = Path(tmp)
        (work / "calib.txt").write_text(calib, encoding="utf-8")
        (work / "heldout.txt").write_text(heldout, encoding="utf-8")
        out = work / "model"
        log(f"[quantize] AWQ W4A16 of {model_dir} (group {group_size}, {samples} x {seqlen} tokens, {device})")
        common = ["--model", str(model_dir), "--out", str(out), "--group-size", str(group_size),
                  "--calib-samples", str(samples), "--calib-seqlen", str(seqlen), "--device", device]  # fmt: skip
        manifest = _worker("quantize", [*common, "--calib-file", str(work / "calib.txt")], work / "quantize.log")
        if check:
            log("[quantize] comparing with the original on held-out text")
            manifest["check"] = _worker("check", [*common, "--heldout-file", str(work / "heldout.txt")],
                                        work / "check.log")  # fmt: skip
        for stats in ("inputs_stats.pth", "outputs_stats.pth"):  # calibration intermediates, not model files
            (out / stats).unlink(missing_ok=True)
        manifest["built"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json_atomic(out / MANIFEST, manifest)
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    manifest["output"] = str(target)
    return manifest


def quantize_command(
    profile: str = typer.Option(None, "--profile", "-p"),
    model: Path = typer.Option(None, "--model", help="HF model folder (default: latest tuned, else the base)"),
    group_size: int = typer.Option(None, "--group-size"),
    calib_samples: int = typer.Option(None, "--calib-samples"),
    calib_seqlen: int = typer.Option(None, "--calib-seqlen"),
    check: bool = typer.Option(False, "--check", help="compare with the original on held-out text"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object on the last line"),
) -> None:
    """Quantize to AWQ W4A16 into <model>-awq-w4a16/ (KV int8 is a serving option: --quant-policy 8)."""
    settings = load_profile(
        profile, {"quant_group_size": group_size, "calib_samples": calib_samples, "calib_seqlen": calib_seqlen}
    )
    model_dir = model or default_model_dir(settings)
    if model_dir.name.endswith("-awq-w4a16"):
        model_dir = model_dir.parent / model_dir.name.removesuffix("-awq-w4a16")
    log = (lambda _m: None) if as_json else typer.echo
    result = quantize(settings, model_dir, settings.quant_group_size, settings.calib_samples,
                      settings.calib_seqlen, check, log=log)  # fmt: skip
    if as_json:
        typer.echo(json.dumps({**result.get("check", {}), "output": result["output"], "seconds": result["seconds"]}))
        return
    typer.echo(f"quantized in {result['seconds']} s -> {result['output']}")
    if "check" in result:
        c = result["check"]
        typer.echo(f"check: logits cosine {c['logits_cosine']}, perplexity {c['ppl_original']} -> "
                   f"{c['ppl_quantized']} (ratio {c['ppl_ratio']}), top-1 agreement {c['top1_agreement']}")  # fmt: skip
