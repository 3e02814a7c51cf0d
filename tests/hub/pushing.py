"""Helpers of the Hub write tests: a session on the database and the xet switch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlmodel import Session

from registry.config import Settings
from registry.db import create_engine_for

XET_MODES = ["xet", "no-xet"]
"""huggingface_hub with hf_xet active (the default) and with HF_HUB_DISABLE_XET=1."""


def set_xet(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """Switch huggingface_hub in this process as HF_HUB_DISABLE_XET does at import."""
    from huggingface_hub import constants
    from huggingface_hub.utils._runtime import is_xet_available

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", mode == "no-xet")
    if mode == "no-xet":
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    else:
        monkeypatch.delenv("HF_HUB_DISABLE_XET", raising=False)
    assert is_xet_available() is (mode == "xet")


@contextmanager
def database(settings: Settings) -> Iterator[Session]:
    engine = create_engine_for(settings)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()
