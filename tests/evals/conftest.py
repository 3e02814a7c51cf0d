"""Evaluation results: the real app on both backend pairs, real PEFT adapters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.registry.conftest import (  # noqa: F401  (fixtures shared with the registry tests)
    adapter_files,
    client,
    settings,
    sqlite_client,
    sqlite_settings,
)
from tests.trust.conftest import token_factory  # noqa: F401

DATA = Path(__file__).parent / "data"
LM_EVAL_FILE = DATA / "results_2026-12-02T22-00-00.000000.json"


def lm_eval_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(LM_EVAL_FILE.read_text())
    return document
