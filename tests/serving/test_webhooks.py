"""Signed webhook deliveries from the outbox, against a real HTTP receiver on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from registry.jobs.outbox import OutboxWorker
from registry.tables import OutboxDelivery
from tests.serving.outbox import add_webhook, deliveries, fast_outbox, wait_until
from tests.serving.receiver import Receiver, receiving
from tests.support.rest import API, engine_of, push_ok, with_extra


def expected_signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The scheme as docs/webhooks.md states it, written out independently of Lorry's code."""
    message = delivery_id.encode() + b"." + timestamp.encode() + b"." + body
    mac = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_an_alias_move_reaches_the_receiver_signed(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, "acme/sql", adapter_files)
    with receiving(Receiver()) as receiver:
        hook = add_webhook(client, "acme", f"{receiver.url}/hook", events=["alias.set"])
        assert hook["secret"].startswith("whsec_")
        listed = client.get(f"{API}/webhooks").json()["items"]
        assert [item["id"] for item in listed] == [hook["id"]]
        assert "secret" not in listed[0]
        assert "secret" not in client.get(f"{API}/webhooks/acme/{hook['id']}").json()

        response = client.put(f"{API}/repos/acme/sql/aliases/production", json={"version": 1})
        assert response.status_code == 200, response.text
        (request,) = receiver.wait_for(1)

    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["x-lorry-event"] == "alias.set"
    assert abs(int(headers["x-lorry-timestamp"]) - time.time()) < 60
    assert headers["x-lorry-signature"] == expected_signature(
        hook["secret"], headers["x-lorry-delivery-id"], headers["x-lorry-timestamp"], request.body
    )
    payload = request.json()
    assert payload["schema"] == 1
    assert payload["type"] == "alias.set"
    assert payload["repository"] == "acme/sql"
    assert payload["target"] == "acme/sql@production"
    assert payload["after"]["version"] == 1
    assert payload["before"] == {"version": None}

    def succeeded() -> list[dict[str, object]]:
        return [d for d in deliveries(client, hook) if d["state"] == "succeeded"]

    (delivery,) = wait_until(succeeded, what="the delivery to be logged")
    assert delivery["id"] == headers["x-lorry-delivery-id"]
    assert delivery["attempts"] == 1 and delivery["last_status"] == 200


def test_a_receiver_that_fails_twice_gets_one_successful_delivery(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, "acme/sql", adapter_files)
    script = [(500, {}), (503, {"Retry-After": "1"})]
    with receiving(Receiver(script=script)) as receiver:
        hook = add_webhook(client, "acme", receiver.url, events=["version.publish"])
        push_ok(client, "acme/sql", with_extra(adapter_files, "notes.txt", b"v2"))
        requests = receiver.wait_for(3)

        def finished() -> list[dict[str, object]]:
            items = deliveries(client, hook)
            return items if items and items[0]["state"] != "pending" else []

        (delivery,) = wait_until(finished, what="the delivery to finish")
    assert delivery["state"] == "succeeded"
    assert delivery["attempts"] == 3
    assert [entry["status"] for entry in delivery["log"]] == [500, 503, 200]  # type: ignore[index]
    ids = {request.headers["X-Lorry-Delivery-Id"] for request in requests}
    assert ids == {delivery["id"]}, "every attempt carries the same delivery id"
    assert len(requests) == 3
    # Retry-After: 1 was honoured: the third attempt came at least a second after the second.
    log = delivery["log"]
    assert isinstance(log, list)
    gap = _seconds_between(log[1]["at"], log[2]["at"])
    assert gap >= 0.9, gap
    assert [r.json()["event_id"] for r in requests] == [requests[0].json()["event_id"]] * 3


def _seconds_between(first: str, second: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(second) - datetime.fromisoformat(first)).total_seconds()


def test_a_failed_delivery_is_redelivered(
    client: TestClient, settings: object, adapter_files: dict[str, bytes]
) -> None:
    with receiving(Receiver(default=(500, {}))) as receiver:
        hook = add_webhook(client, "acme", receiver.url, events=["version.publish"])
        client.app.state.settings.outbox_max_attempts = 2  # type: ignore[attr-defined]
        push_ok(client, "acme/sql", adapter_files)

        def failed() -> list[dict[str, object]]:
            return [d for d in deliveries(client, hook) if d["state"] == "failed"]

        (first,) = wait_until(failed, what="the delivery to fail")
        assert first["attempts"] == 2
        assert "gave up after 2 attempts" in str(first["last_error"])
        receiver.default = (204, {})
        response = client.post(
            f"{API}/webhooks/acme/{hook['id']}/deliveries/{first['id']}/redeliver"
        )
        assert response.status_code == 202, response.text
        again = response.json()
        assert again["redelivery_of"] == first["id"] and again["event_id"] == first["event_id"]

        def redelivered() -> list[dict[str, object]]:
            return [
                d
                for d in deliveries(client, hook)
                if d["id"] == again["id"] and d["state"] == "succeeded"
            ]

        wait_until(redelivered, what="the redelivery")
        assert receiver.requests[-1].headers["X-Lorry-Delivery-Id"] == again["id"]
        assert json.loads(receiver.requests[-1].body) == first["payload"]


def test_webhook_test_sends_a_ping(client: TestClient) -> None:
    with receiving(Receiver()) as receiver:
        hook = add_webhook(client, "acme", receiver.url, events=["alias.set"])
        response = client.post(f"{API}/webhooks/acme/{hook['id']}/test")
        assert response.status_code == 202, response.text
        (request,) = receiver.wait_for(1)
    assert request.json()["type"] == "ping"
    assert request.headers["X-Lorry-Event"] == "ping"


def test_events_of_other_repositories_and_types_are_not_sent(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    with receiving(Receiver()) as receiver:
        hook = add_webhook(
            client, "acme", receiver.url, events=["version.publish"], repositories="sql-*"
        )
        push_ok(client, "acme/chat", adapter_files)
        push_ok(client, "other/sql-x", adapter_files)
        push_ok(client, "acme/sql-gen", adapter_files)
        (request,) = receiver.wait_for(1)
        time.sleep(0.5)
    assert request.json()["repository"] == "acme/sql-gen"
    assert len(receiver.requests) == 1
    assert len(deliveries(client, hook)) == 1


def test_private_destinations_are_refused_unless_allowed(
    client: TestClient, settings: object, adapter_files: dict[str, bytes]
) -> None:
    app_settings = client.app.state.settings  # type: ignore[attr-defined]
    app_settings.webhook_allow_cidrs = ""
    for url in (
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://169.254.169.254/",
        "ftp://x/",
    ):
        response = client.post(f"{API}/webhooks/acme", json={"url": url, "events": ["alias.set"]})
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "destination_refused"
    assert client.get(f"{API}/webhooks").json()["items"] == []
    app_settings.webhook_allow_private = True
    with receiving(Receiver()) as receiver:
        add_webhook(client, "acme", receiver.url, events=["version.publish"])
        push_ok(client, "acme/sql", adapter_files)
        receiver.wait_for(1)


def test_the_destination_is_checked_again_before_each_delivery(
    settings: object, adapter_files: dict[str, bytes]
) -> None:
    """A URL allowed when the webhook was created, refused when it is due (DNS rebinding, or
    the operator narrowed the rules): the delivery is not sent, and says why."""
    from registry.app import create_app
    from registry.config import Settings

    assert isinstance(settings, Settings)
    settings.outbox_worker = False
    with TestClient(create_app(settings)) as client, receiving(Receiver()) as receiver:
        hook = add_webhook(client, "acme", receiver.url, events=["version.publish"])
        push_ok(client, "acme/sql", adapter_files)
        strict = fast_outbox(settings.model_copy())
        strict.webhook_allow_cidrs = ""
        worker = OutboxWorker(engine_of(client), strict)
        try:
            assert worker.run_once()
        finally:
            worker.stop()
        (delivery,) = deliveries(client, hook)
        assert receiver.requests == []
        assert delivery["state"] == "pending" and delivery["attempts"] == 1
        assert "127.0.0.1" in str(delivery["last_error"])
        assert "LORRY_WEBHOOK_ALLOW" in str(delivery["last_error"])
        with Session(engine_of(client)) as session:
            row = session.get(OutboxDelivery, delivery["id"])
            assert row is not None and row.claimed_by is None


def test_unknown_events_and_bad_patterns_are_refused(client: TestClient) -> None:
    for body in (
        {"url": "http://127.0.0.1:9/", "events": ["alias.moved"]},
        {"url": "http://127.0.0.1:9/", "events": ["alias.set"], "repositories": "a/b"},
        {"url": "http://127.0.0.1:9/", "events": []},
    ):
        response = client.post(f"{API}/webhooks/acme", json=body)
        assert response.status_code == 422, response.text
    assert client.get(f"{API}/webhooks").json()["items"] == []


def test_removing_a_webhook_drops_its_pending_deliveries(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    client.app.state.settings.outbox_backoff_s = 30.0  # type: ignore[attr-defined]
    with receiving(Receiver(default=(503, {}))) as receiver:
        hook = add_webhook(client, "acme", receiver.url, events=["version.publish"])
        push_ok(client, "acme/sql", adapter_files)
        receiver.wait_for(1)
        assert client.delete(f"{API}/webhooks/acme/{hook['id']}").status_code == 204
    with Session(engine_of(client)) as session:
        assert session.exec(select(OutboxDelivery)).all() == []
    assert client.get(f"{API}/webhooks/acme/{hook['id']}").status_code == 404


def test_a_finished_composition_is_delivered(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    """Job completion writes its delivery in the transaction that records the result."""
    push_ok(client, "acme/sql", adapter_files)
    with receiving(Receiver()) as receiver:
        add_webhook(client, "acme", receiver.url, events=["composition.succeed", "version.publish"])
        recipe = {
            "method": "linear",
            "inputs": [{"adapter": "acme/sql@1", "weight": 0.5}],
            "output": {"type": "adapter", "rank": 8},
            "device": "cpu",
        }
        response = client.post(f"{API}/compositions", json={"recipe": recipe, "target": "acme/mix"})
        assert response.status_code == 202, response.text
        job = response.json()["id"]
        requests = receiver.wait_for(2, timeout=120)
    by_type = {request.json()["type"]: request.json() for request in requests}
    assert set(by_type) == {"composition.succeed", "version.publish"}
    succeeded = by_type["composition.succeed"]
    assert succeeded["repository"] == "acme/mix" and succeeded["target"] == f"job:{job}"
    assert succeeded["after"]["version"] == 1 and succeeded["after"]["state"] == "succeeded"
