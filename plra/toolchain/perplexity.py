"""Held-out perplexity: how well a model predicts texts about the field that training never saw.

Each document is read as plain text, like the pretraining documents (no chat template), truncated to
`max_tokens`; its score is the mean loss per token (nats). Runs in the main env, on the profile's device.
"""

from __future__ import annotations

from pathlib import Path


def document_losses(model_dir: Path, texts: list[str], device: str = "cpu", max_tokens: int = 1024) -> list[float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dtype = torch.float32 if device == "cpu" else torch.float16
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=dtype).to(device).eval()
    losses = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens).input_ids.to(device)
            losses.append(float(model(input_ids=ids, labels=ids).loss))
    return losses
