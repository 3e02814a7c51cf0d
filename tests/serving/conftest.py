"""Webhooks and deployment targets against the real app and real HTTP receivers on loopback.

The receivers listen on 127.0.0.1, which Lorry refuses by default (SSRF): these
settings allow loopback only (``LORRY_WEBHOOK_ALLOW_CIDRS``), with fast retries.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from registry import db
from registry.app import create_app
from registry.config import Settings
from tests.serving.outbox import fast_outbox


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    db.upgrade(backend_settings)
    return fast_outbox(backend_settings)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
