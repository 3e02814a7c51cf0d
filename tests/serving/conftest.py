"""Webhooks and deployment targets against the real app and real HTTP receivers on loopback.

The receivers listen on 127.0.0.1, which Lorry refuses by default (SSRF): these
settings allow loopback only (``LORRY_WEBHOOK_ALLOW_CIDRS``), with fast retries.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry import db
from registry.app import create_app
from registry.config import Settings
from tests.support.rest import API


def fast_outbox(settings: Settings) -> Settings:
    settings.webhook_allow_cidrs = "127.0.0.0/8"
    settings.outbox_poll_s = 0.1
    settings.outbox_backoff_s = 0.2
    settings.outbox_backoff_max_s = 5.0
    settings.outbox_timeout_s = 5.0
    return settings


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    db.upgrade(backend_settings)
    return fast_outbox(backend_settings)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def wait_until(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def deliveries(client: TestClient, hook: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.get(f"{API}/webhooks/{hook['namespace']}/{hook['id']}/deliveries")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def add_webhook(client: TestClient, namespace: str, url: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"{API}/webhooks/{namespace}", json={"url": url, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
