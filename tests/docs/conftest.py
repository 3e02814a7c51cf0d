"""A real ``lorry serve`` on its embedded defaults, for the documentation's sessions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port

STARTUP_TIMEOUT_S = 60.0


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def registry_url(tmp_path: Path) -> Iterator[str]:
    """URL of a ``lorry serve`` started as "Set up" starts it: no settings but its home
    (and a short access-log flush, so that downloads are readable back at once)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LORRY_")}
    env["LORRY_HOME"] = str(tmp_path / "lorry-home")
    env["LORRY_ACCESS_LOG_FLUSH_S"] = "0.1"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    lorry = Path(sys.executable).with_name("lorry")
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [lorry, "serve", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`lorry serve` did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
