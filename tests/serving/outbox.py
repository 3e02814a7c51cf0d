"""Helpers of the serving tests: settings for a fast outbox on loopback, webhooks, deliveries."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from registry.config import Settings
from tests.support.rest import API


def fast_outbox(settings: Settings) -> Settings:
    settings.webhook_allow_cidrs = "127.0.0.0/8"
    settings.outbox_poll_s = 0.1
    settings.outbox_backoff_s = 0.2
    settings.outbox_backoff_max_s = 5.0
    settings.outbox_timeout_s = 5.0
    return settings


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
