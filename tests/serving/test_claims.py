"""Several outbox workers (replicas) share the due deliveries: each is sent once."""

from __future__ import annotations

import threading
from collections import Counter

from fastapi.testclient import TestClient

from registry.app import create_app
from registry.config import Settings
from registry.jobs.outbox import OutboxWorker
from tests.serving.outbox import add_webhook, deliveries
from tests.serving.receiver import Receiver, receiving
from tests.support.rest import API, engine_of

DELIVERIES = 24
WORKERS = 4


def test_concurrent_workers_send_each_delivery_exactly_once(settings: Settings) -> None:
    settings.outbox_worker = False  # only the workers below send
    with TestClient(create_app(settings)) as client, receiving(Receiver()) as receiver:
        hook = add_webhook(client, "acme", receiver.url, events=["alias.set"])
        for _ in range(DELIVERIES):
            response = client.post(f"{API}/webhooks/acme/{hook['id']}/test")
            assert response.status_code == 202, response.text
        workers = [OutboxWorker(engine_of(client), settings) for _ in range(WORKERS)]
        start = threading.Barrier(WORKERS)
        sent: Counter[int] = Counter()

        def drain(index: int) -> None:
            start.wait()
            while workers[index].run_once():
                sent[index] += 1

        threads = [threading.Thread(target=drain, args=(i,)) for i in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        for worker in workers:
            worker.stop()
        items = deliveries(client, hook)
    ids = [request.headers["X-Lorry-Delivery-Id"] for request in receiver.requests]
    assert len(ids) == DELIVERIES and len(set(ids)) == DELIVERIES, "each sent exactly once"
    assert sum(sent.values()) == DELIVERIES
    assert len(items) == DELIVERIES
    assert all(item["state"] == "succeeded" and item["attempts"] == 1 for item in items)
