"""What the outbox costs an alias move: moves through the REST API of a repository that no
webhook or deployment target watches, against one that 10 webhooks and 3 vLLM targets
watch (each move then writes 10 deliveries, 3 rollouts and 3 more audit events in its
transaction). Nothing is sent: the outbox workers are off, so only the enqueue is timed.

    python bench/outbox.py [--moves 200] [--rounds 3]

Both repositories live in one SQLite registry (a temporary directory); rounds alternate
which one goes first, and the ratio compares the medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from registry import db
from registry.app import create_app
from registry.config import Settings

API = "/api/v1"
FILES = {
    "adapter_config.json": b'{"peft_type": "LORA", "r": 8, "lora_alpha": 16, '
    b'"target_modules": ["q_proj"], "base_model_name_or_path": "x"}',
}


def _publish(client: TestClient, repository: str, note: bytes) -> None:
    import hashlib

    import safetensors.torch
    import torch

    files = dict(FILES)
    tensors = {
        "base_model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(8, 16),
        "base_model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.zeros(16, 8),
    }
    files["adapter_model.safetensors"] = safetensors.torch.save(tensors)
    files["notes.txt"] = note
    manifest = []
    for path, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        assert client.put(f"{API}/blobs/sha256/{sha}", content=data).status_code in (200, 201)
        manifest.append({"path": path, "sha256": sha, "size": len(data)})
    response = client.post(f"{API}/repos/{repository}/versions", json={"files": manifest})
    assert response.status_code == 201, response.text


def _moves(client: TestClient, repository: str, count: int) -> float:
    """Seconds per move, over ``count`` moves between v1 and v2."""
    started = time.perf_counter()
    for index in range(count):
        body = {"version": 1 + index % 2}
        response = client.put(f"{API}/repos/{repository}/aliases/production", json=body)
        assert response.status_code == 200, response.text
    return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), outbox_worker=False, webhook_allow_cidrs="10.0.0.0/8")
        db.upgrade(settings)
        with TestClient(create_app(settings)) as client:
            for repository in ("plain/sql", "watched/sql"):
                _publish(client, repository, b"v1")
                _publish(client, repository, b"v2")
                assert (
                    client.put(
                        f"{API}/repos/{repository}/aliases/production", json={"version": 1}
                    ).status_code
                    == 200
                )
            client.patch(f"{API}/repos/watched/sql", json={"main_alias": "production"})
            for index in range(10):
                body = {"url": f"http://10.0.0.{index + 1}/hook", "events": ["alias.set"]}
                assert client.post(f"{API}/webhooks/watched", json=body).status_code == 201
            for index in range(3):
                body = {
                    "alias": "production",
                    "url": f"http://10.0.1.{index + 1}:8000",
                    "lora_name": "sql",
                }
                response = client.post(f"{API}/repos/watched/sql/deployments", json=body)
                assert response.status_code == 201, response.text
            plain: list[float] = []
            watched: list[float] = []
            for round_ in range(args.rounds):
                order = [("plain/sql", plain), ("watched/sql", watched)]
                for repository, results in order if round_ % 2 == 0 else order[::-1]:
                    results.append(_moves(client, repository, args.moves))
    p, w = statistics.median(plain), statistics.median(watched)
    print(f"alias move, unwatched:                      {p * 1000:7.2f} ms")
    print(f"alias move, 10 webhooks + 3 vLLM targets:   {w * 1000:7.2f} ms")
    print(f"ratio watched / unwatched:                  {w / p:7.2f}x")


if __name__ == "__main__":
    main()
