"""Helpers of the Hub write tests: database state, tokens and the xet switch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from registry.config import Settings
from registry.db import create_engine_for
from registry.services import tokens
from registry.services.audit import Caller
from registry.tables import metadata

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


ACCESS_LOG_TABLES = frozenset({"access_log", "download_counts"})


def row_counts(settings: Settings) -> dict[str, int]:
    """Rows in every table of the schema but the access log's, which the server writes in
    the background (a download's record may land at any time: it is not a change)."""
    with database(settings) as session:
        return {
            table.name: session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
            if table.name not in ACCESS_LOG_TABLES
        }


def make_token(settings: Settings, scopes: list[str], namespaces: list[str], principal: str) -> str:
    with database(settings) as session:
        created = tokens.create_token(
            session,
            Caller(actor="local:test"),
            principal=principal,
            scopes=scopes,
            namespaces=namespaces,
        )
    return created.token
