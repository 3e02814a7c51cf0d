"""Deployment targets: an alias move makes Lorry tell each target to load the new version.

The target here is a real HTTP receiver on loopback that implements the contract of
vLLM's runtime LoRA API (``POST /v1/load_lora_adapter`` with ``lora_name``,
``lora_path`` and ``load_inplace``); the end to end with a real vLLM serving the
adapter is the vllm helper's test (tests/serving, real-vLLM fixture).
"""

from __future__ import annotations

import socket
from typing import Any

from fastapi.testclient import TestClient

from tests.serving.outbox import wait_until
from tests.serving.receiver import Receiver, receiving
from tests.support.rest import API, push_ok, with_extra

REPO = f"{API}/repos/acme/sql"


def _publish_two_versions(client: TestClient, adapter_files: dict[str, bytes]) -> None:
    push_ok(client, "acme/sql", adapter_files)
    push_ok(client, "acme/sql", with_extra(adapter_files, "notes.txt", b"v2"))
    assert client.put(f"{REPO}/aliases/production", json={"version": 1}).status_code == 200
    response = client.patch(REPO, json={"main_alias": "production"})
    assert response.status_code == 200, response.text


def _add_target(client: TestClient, url: str, **extra: Any) -> dict[str, Any]:
    body = {"alias": "production", "kind": "vllm", "url": url, "lora_name": "sql", **extra}
    response = client.post(f"{REPO}/deployments", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _target(client: TestClient, target_id: int) -> dict[str, Any]:
    response = client.get(f"{REPO}/deployments/{target_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_an_alias_move_rolls_out_to_the_target(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    _publish_two_versions(client, adapter_files)
    with receiving(Receiver()) as vllm:
        target = _add_target(client, vllm.url)
        (first,) = vllm.wait_for(1)
        assert first.path == "/v1/load_lora_adapter"
        assert first.json() == {"lora_name": "sql", "lora_path": "acme/sql", "load_inplace": True}
        wait_until(lambda: _target(client, target["id"])["served_version"] == 1, what="v1")

        response = client.put(f"{REPO}/aliases/production", json={"version": 2})
        assert response.status_code == 200, response.text
        second = vllm.wait_for(2)[1]
        assert second.json()["lora_path"] == "acme/sql"
        shown = wait_until(
            lambda: (t := _target(client, target["id"]))["served_version"] == 2 and t,
            what="v2 served",
        )
    assert shown["alias_version"] == 2 and shown["last_error"] is None
    assert shown["served_digest"].startswith("sha256:") and shown["served_since"]
    assert shown["pending"] == 0
    listed = client.get(f"{API}/deployments").json()["items"]
    assert [item["id"] for item in listed] == [target["id"]]
    actions = [
        event["action"]
        for event in client.get(f"{API}/audit?repository=acme/sql&limit=100").json()["items"]
    ]
    assert actions.count("deployment.request") == 2
    assert actions.count("deployment.succeed") == 2
    assert "deployment.add" in actions


def test_a_target_that_is_down_is_retried_and_reported_and_the_move_succeeds(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    _publish_two_versions(client, adapter_files)
    with receiving(Receiver(default=(503, {}))) as vllm:
        target = _add_target(client, vllm.url)
        response = client.put(f"{REPO}/aliases/production", json={"version": 2})
        assert response.status_code == 200, response.text
        assert client.get(f"{REPO}/aliases/production").json()["version"] == 2
        vllm.wait_for(2)
        shown = wait_until(
            lambda: (t := _target(client, target["id"]))["last_error"] and t, what="an error"
        )
        assert "HTTP 503" in shown["last_error"] and "retrying" in shown["last_error"]
        assert shown["served_version"] is None and shown["pending"] == 1
        vllm.default = (200, {})
        served = wait_until(
            lambda: (t := _target(client, target["id"]))["served_version"] == 2 and t,
            what="the retried rollout",
        )
    assert served["last_error"] is None
    bodies = [request.json() for request in vllm.requests]
    assert all(body["lora_path"] == "acme/sql" for body in bodies)


def test_an_unreachable_target_does_not_block_the_move(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    _publish_two_versions(client, adapter_files)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    target = _add_target(client, f"http://127.0.0.1:{port}")
    response = client.put(f"{REPO}/aliases/production", json={"version": 2})
    assert response.status_code == 200, response.text
    shown = wait_until(
        lambda: (t := _target(client, target["id"]))["last_error"] and t, what="an error"
    )
    assert "ConnectError" in shown["last_error"]
    assert shown["alias_version"] == 2 and shown["served_version"] is None


def test_a_vllm_target_needs_main_to_follow_its_alias(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, "acme/sql", adapter_files)
    assert client.put(f"{REPO}/aliases/production", json={"version": 1}).status_code == 200
    body = {"alias": "production", "url": "http://127.0.0.1:9", "lora_name": "sql"}
    response = client.post(f"{REPO}/deployments", json=body)
    assert response.status_code == 422, response.text
    assert "--main-alias production" in response.json()["message"]
    assert client.get(f"{API}/deployments").json()["items"] == []


def test_removing_a_target_stops_rollouts(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    _publish_two_versions(client, adapter_files)
    with receiving(Receiver()) as vllm:
        target = _add_target(client, vllm.url)
        vllm.wait_for(1)
        response = client.delete(f"{REPO}/deployments/{target['id']}")
        assert response.status_code == 204, response.text
        assert client.put(f"{REPO}/aliases/production", json={"version": 2}).status_code == 200
        import time

        time.sleep(1.0)
    assert len(vllm.requests) == 1
    assert client.get(f"{REPO}/deployments/{target['id']}").status_code == 404
    duplicate = {"alias": "production", "url": "http://127.0.0.1:9", "lora_name": "x"}
    assert client.post(f"{REPO}/deployments", json=duplicate).status_code == 201
    assert client.post(f"{REPO}/deployments", json=duplicate).status_code == 409


def test_a_webhook_target_gets_signed_rollouts(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    """The plain ``webhook`` kind: no ``main`` requirement; each rollout is a signed POST."""
    from tests.serving.test_webhooks import expected_signature

    push_ok(client, "acme/sql", adapter_files)
    push_ok(client, "acme/sql", with_extra(adapter_files, "notes.txt", b"v2"))
    assert client.put(f"{REPO}/aliases/canary", json={"version": 1}).status_code == 200
    with receiving(Receiver()) as hook:
        body = {"alias": "canary", "kind": "webhook", "url": hook.url, "lora_name": "sql"}
        response = client.post(f"{REPO}/deployments", json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["secret"].startswith("whsec_")
        assert _target(client, created["id"])["secret"] is None
        wait_until(lambda: _target(client, created["id"])["served_version"] == 1, what="v1")
        assert client.put(f"{REPO}/aliases/canary", json={"version": 2}).status_code == 200
        requests = hook.wait_for(2)
        wait_until(lambda: _target(client, created["id"])["served_version"] == 2, what="v2")
        assert client.delete(f"{REPO}/aliases/canary").status_code == 204
        unload = hook.wait_for(3)[2]
    for request in [*requests, unload]:
        headers = request.headers
        assert headers["X-Lorry-Signature"] == expected_signature(
            created["secret"], headers["X-Lorry-Delivery-Id"], headers["X-Lorry-Timestamp"],
            request.body,
        )  # fmt: skip
    assert [r.json()["version"] for r in requests] == [1, 2]
    assert requests[1].json()["digest"].startswith("sha256:")
    assert unload.json()["action"] == "unload" and unload.json()["version"] is None
    wait_until(lambda: _target(client, created["id"])["served_version"] is None, what="unload")
