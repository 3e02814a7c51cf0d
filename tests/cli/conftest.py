"""A real ``lorry serve`` process on a free port (SQLite + local disk) for the CLI tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

STARTUP_TIMEOUT_S = 60.0


def lorry_executable() -> Path:
    """The installed ``lorry`` console script of this interpreter's environment."""
    executable = Path(sys.executable).with_name("lorry")
    if not executable.exists():
        pytest.fail(f"{executable} is missing; install the project with `pip install -e .`")
    return executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(home: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LORRY_") or key == "LORRY_TEST_REQUIRE_ALL"
    }
    env["LORRY_HOME"] = str(home)
    return env


def variant_of(adapter: Path, directory: Path, note: str) -> Path:
    """A copy of ``adapter`` with one extra small file, so that its digest differs."""
    shutil.copytree(adapter, directory)
    (directory / "notes.txt").write_text(note)
    return directory


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`lorry serve` exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(
        f"`lorry serve` did not answer /healthz in {STARTUP_TIMEOUT_S}s:\n{log.read_text()}"
    )


@pytest.fixture(scope="session")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real registry process, migrated, on its embedded defaults."""
    home = tmp_path_factory.mktemp("lorry-home")
    env = server_env(home)
    lorry = lorry_executable()
    migrate = subprocess.run(
        [lorry, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "server.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [lorry, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


Lorry = Callable[..., Result]


@pytest.fixture
def lorry(registry_url: str) -> Lorry:
    """Run a ``lorry`` command in-process against the live registry."""
    from cli.main import app

    runner = CliRunner()

    def invoke(*args: str | Path) -> Result:
        env = {"LORRY_URL": registry_url, "COLUMNS": "200"}
        return runner.invoke(app, [str(arg) for arg in args], env=env)

    return invoke
