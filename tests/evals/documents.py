"""Evaluation documents the evals tests send (an lm-evaluation-harness results file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
LM_EVAL_FILE = DATA / "results_2026-12-02T22-00-00.000000.json"


def lm_eval_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(LM_EVAL_FILE.read_text())
    return document
