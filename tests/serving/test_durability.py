"""The outbox survives a crash: deliveries pending when ``lorry serve`` is killed (SIGKILL)
are delivered by the next server process."""

from __future__ import annotations

from pathlib import Path

import httpx

from registry.config import Settings
from tests.serving.outbox import wait_until
from tests.serving.receiver import Receiver, receiving
from tests.support.processes import free_port, lorry_process, settings_env
from tests.support.rest import API, push_ok


def test_deliveries_pending_when_the_server_is_killed_are_sent_after_a_restart(
    settings: Settings, tmp_path: Path, adapter_files: dict[str, bytes]
) -> None:
    settings.port = free_port()
    url = f"http://127.0.0.1:{settings.port}"
    env = settings_env(
        settings,
        webhook_allow_cidrs="127.0.0.0/8",
        outbox_poll_s=0.1,
        outbox_backoff_s=0.2,
        outbox_backoff_max_s=1.0,
        outbox_timeout_s=5.0,
    )
    with receiving(Receiver(default=(503, {}))) as receiver:
        with lorry_process(["serve"], env, tmp_path / "serve-1.log") as server:
            server.wait_until_serving(url)
            with httpx.Client(base_url=url, timeout=30) as http:
                response = http.post(
                    f"{API}/webhooks/acme",
                    json={"url": receiver.url, "events": ["version.publish", "alias.set"]},
                )
                assert response.status_code == 201, response.text
                hook = response.json()
                push_ok(http, "acme/sql", adapter_files, alias="production")
            receiver.wait_for(2)
            server.kill()
        refused = len(receiver.requests)
        receiver.default = (200, {})
        with lorry_process(["serve"], env, tmp_path / "serve-2.log") as server:
            server.wait_until_serving(url)
            with httpx.Client(base_url=url, timeout=30) as http:

                def both_delivered() -> list[dict[str, object]]:
                    items = http.get(f"{API}/webhooks/acme/{hook['id']}/deliveries").json()
                    done = [d for d in items["items"] if d["state"] == "succeeded"]
                    return done if len(done) == 2 else []

                delivered = wait_until(both_delivered, timeout=90, what="delivery after restart")
    assert {d["event"] for d in delivered} == {"version.publish", "alias.set"}
    ok = [r for r in receiver.requests[refused:] if r.headers.get("X-Lorry-Event")]
    assert {r.headers["X-Lorry-Delivery-Id"] for r in ok} >= {str(d["id"]) for d in delivered}
    assert all(int(str(d["attempts"])) >= 2 for d in delivered)
