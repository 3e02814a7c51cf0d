"""Parallel pushes to one new repository through a real HTTP server get numbers 1..N."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from registry.config import Settings
from tests.support.live import serving
from tests.support.rest import API, upload_files, with_extra

PUSHERS = 8


@pytest.fixture
def server_url(settings: Settings) -> Iterator[str]:
    """A real uvicorn server in a background thread."""
    with serving(settings) as server:
        yield server.url


def test_parallel_pushes_to_a_new_repository_get_distinct_consecutive_numbers(
    server_url: str, adapter_files: dict[str, bytes]
) -> None:
    barrier = threading.Barrier(PUSHERS)

    def push(index: int) -> int:
        files = with_extra(adapter_files, "run.txt", f"run {index}".encode())
        with httpx.Client(base_url=server_url, timeout=120) as client:
            manifest = upload_files(client, files)
            barrier.wait(timeout=60)
            response = client.post(
                f"{API}/repos/acme/parallel/versions",
                json={"files": manifest, "message": f"run {index}"},
            )
        assert response.status_code == 201, response.text
        number: int = response.json()["version"]
        return number

    with ThreadPoolExecutor(PUSHERS) as pool:
        numbers = sorted(pool.map(push, range(PUSHERS)))
    assert numbers == list(range(1, PUSHERS + 1))

    with httpx.Client(base_url=server_url) as client:
        versions = client.get(f"{API}/repos/acme/parallel/versions").json()
        assert versions["total"] == PUSHERS
        messages = {item["message"] for item in versions["items"]}
        assert messages == {f"run {index}" for index in range(PUSHERS)}
        audit = client.get(f"{API}/audit", params={"repository": "acme/parallel"}).json()
        actions = [item["action"] for item in audit["items"]]
        assert actions.count("version.publish") == PUSHERS
        assert actions.count("repository.create") == 1
