"""moto's standalone S3 server for the tests (a pytest plugin, registered in tests/conftest.py).

Fixtures:

- ``s3_server`` (session): moto's standalone S3 server on 127.0.0.1. It keeps
  its data in memory: ``stop()`` followed by ``start()`` (same port) comes back
  empty, without buckets.
- ``fresh_s3_bucket`` (function): a new bucket on it, removed after the test.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from minio import Minio

from tests.support.processes import (
    free_port,
    spawn,
    start_with_retries,
    tail,
    terminate,
    unavailable,
    wait_until,
)


class S3Server:
    """moto's standalone S3 server on 127.0.0.1.

    moto keeps everything in memory: after ``stop()`` and ``start()`` the server
    answers on the same endpoint but has no buckets or objects.
    """

    access_key = "lorry-test-access"
    secret_key = "lorry-test-secret"
    region = "us-east-1"

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="lorry-s3-"))
        self.log = self._dir / "moto.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start (or restart, on the same port) the server and wait until it answers."""
        if self.running:
            return
        self._process = spawn(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            log=self.log,
        )
        try:
            wait_until(self._answers, self._process, f"moto S3 server on {self.endpoint}")
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; its log ends with:\n{tail(self.log)}") from None

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/moto-api/", timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Stop the server; its port refuses connections until ``start()``."""
        if self._process is not None:
            terminate(self._process)
            self._process = None

    def client(self) -> Minio:
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
            secure=False,
        )

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server for the session (``endpoint``, ``access_key``, ``secret_key``, ``stop()``,
    ``start()``)."""
    try:
        server = start_with_retries(S3Server, S3Server.start, cleanup=S3Server.close)
    except (RuntimeError, OSError) as exc:
        unavailable(f"could not start moto's S3 server ({sys.executable} -m moto.server): {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fresh_s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A new, empty bucket on the session's S3 server; removed after the test.

    Restarts the server first if an earlier test left it stopped.
    """
    s3_server.start()
    name = f"lorry-test-{uuid.uuid4().hex[:16]}"
    client = s3_server.client()
    client.make_bucket(name)
    try:
        yield name
    finally:
        if s3_server.running:
            with contextlib.suppress(Exception):
                for obj in client.list_objects(name, recursive=True):
                    client.remove_object(name, obj.object_name or "")
                client.remove_bucket(name)
