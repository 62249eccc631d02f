"""OpenCompass evaluators for PLLM-Bench (imported by eval/plllm_datasets.py inside `.venv-eval`).

- KeyPointRecallEvaluator: judge-free; the share of a question's key points that an answer covers.
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
