"""Real `lorry serve` / `lorry worker` processes for the durability tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from registry.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
LORRY = [sys.executable, "-m", "cli.main"]


def settings_env(settings: Settings, **extra: object) -> dict[str, str]:
    """The environment that gives a child process these settings (and ``extra`` ones)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORRY_")}
    values: dict[str, object] = {
        "home": settings.home,
        "database_url": settings.database_url,
        "blob_url": settings.blob_url,
        "s3_endpoint": settings.s3_endpoint,
        "s3_access_key": settings.s3_access_key,
        "s3_secret_key": settings.s3_secret_key,
        "s3_region": settings.s3_region,
        "host": settings.host,
        "port": settings.port,
        **extra,
    }
    for key, value in values.items():
        if value is not None:
            env[f"LORRY_{key.upper()}"] = str(value)
    return env


class LorryProcess:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [*LORRY, *args],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process.poll() is None, f"process ended:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()[-3000:]}"
            time.sleep(0.1)

    def wait_until_serving(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"server ended:\n{self.output()[-3000:]}"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"server not up:\n{self.output()[-3000:]}"
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (what a crash looks like)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def lorry_process(args: list[str], env: dict[str, str], log: Path) -> Iterator[LorryProcess]:
    process = LorryProcess(args, env, log)
    try:
        yield process
    finally:
        process.stop()
