"""API tokens for the tests, created straight in the database."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from registry.config import Settings
from registry.services import tokens
from registry.services.audit import Caller
from tests.support.rest import database_engine


def make_token(
    target: TestClient | Settings,
    scopes: list[str],
    namespaces: list[str] | None = None,
    principal: str = "tester",
) -> str:
    """A token created in the database of ``target`` (the app's test client, or settings),
    as `lorry token create --local` does."""
    with database_engine(target) as engine, Session(engine) as session:
        created = tokens.create_token(
            session,
            Caller(actor="local:test"),
            principal=principal,
            scopes=scopes,
            namespaces=namespaces or ["*"],
        )
    return created.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
