"""OpenCompass evaluators for PLLM-Bench (imported by eval/plllm_datasets.py inside `.venv-eval`).

- KeyPointRecallEvaluator: judge-free; the share of a question's key points that an answer covers.
- AttributionEvaluator: an answer is right when it names the gold arXiv id (or the paper's title/alias).
"""

from __future__ import annotations

import json
import re

from opencompass.openicl.icl_evaluator import BaseEvaluator

from plra.toolchain.scoring import covers

ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}")


class KeyPointRecallEvaluator(BaseEvaluator):
    def score(self, predictions, references):
        if len(predictions) != len(references):
            return {"error": "predictions and references differ in length"}
        recalls, details = [], []
        for prediction, reference in zip(predictions, references, strict=True):
            points = json.loads(reference) if isinstance(reference, str) else reference
            hits = [covers(prediction or "", p) for p in points]
            recalls.append(sum(hits) / len(hits) if hits else 0.0)
            details.append({"pred": prediction, "key_points": points, "covered": hits})
        return {"key_point_recall": 100 * sum(recalls) / max(len(recalls), 1), "details": details}


class AttributionEvaluator(BaseEvaluator):
    def score(self, predictions, references):
        if len(predictions) != len(references):
            return {"error": "predictions and references differ in length"}
        correct, details = 0, []
        for prediction, reference in zip(predictions, references, strict=True):
            gold = json.loads(reference)
            text = (prediction or "").lower()
            named_ids = set(ARXIV_ID.findall(text))
            hit = gold["id"] in named_ids or any(a.lower() in text for a in gold.get("aliases", []) if len(a) >= 4)
            correct += hit
            details.append({"pred": prediction, "gold": gold["id"], "correct": hit})
        return {"accuracy": 100 * correct / max(len(predictions), 1), "details": details}
