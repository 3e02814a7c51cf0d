"""Child processes of the tests: free ports, spawning and reaping servers, `lorry` processes.

Every server a test starts goes through ``spawn`` (or ``LorryProcess``, built on it): the
child dies with pytest (Linux ``PR_SET_PDEATHSIG``) and an ``atexit`` hook reaps what a
fixture's teardown missed.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TypeVar

import httpx
import pytest

from registry.config import Settings

REQUIRE_ALL_ENV = "LORRY_TEST_REQUIRE_ALL"
REPO_ROOT = Path(__file__).resolve().parents[2]
LORRY = [sys.executable, "-m", "cli.main"]
"""`lorry` run from this checkout (``PYTHONPATH`` decides whose code)."""

STARTUP_TIMEOUT_S = 30.0
_Server = TypeVar("_Server")
_live_processes: set[subprocess.Popen[bytes]] = set()


def unavailable(reason: str) -> NoReturn:
    """Skip the requesting test with ``reason``, or fail it under ``LORRY_TEST_REQUIRE_ALL=1``."""
    if os.environ.get(REQUIRE_ALL_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ALL_ENV}=1: required backends may not be skipped)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_prctl = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: Linux SIGTERMs it if pytest dies (even by SIGKILL)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def spawn(
    cmd: Sequence[str | Path],
    *,
    log: Path,
    user: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with its output appended to ``log``; it dies with pytest."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [str(part) for part in cmd],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            user=user,
            env=env,
            cwd=cwd,
            preexec_fn=_die_with_parent if _prctl is not None else None,
        )
    _live_processes.add(process)
    return process


def terminate(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15
) -> None:
    """Send ``sig`` and wait; SIGKILL if it is still running after ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    _live_processes.discard(process)


@atexit.register
def _reap_leftovers() -> None:
    """Last resort if a session fixture's teardown never ran (e.g. an interpreter abort)."""
    for process in list(_live_processes):
        terminate(process)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    """Poll ``ready`` until it is true; RuntimeError if ``process`` exits or time runs out."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer within {STARTUP_TIMEOUT_S:.0f}s")


def start_with_retries(
    create: Callable[[], _Server],
    start: Callable[[_Server], None],
    *,
    cleanup: Callable[[_Server], None] | None = None,
    attempts: int = 3,
) -> _Server:
    """Create and start a server on a fresh free port, again if another process took the port
    between ``free_port()`` and the server's bind (tests of other sessions run in parallel)."""
    failure = RuntimeError(f"no start attempt in {attempts}")
    for _ in range(attempts):
        server = create()
        try:
            start(server)
        except RuntimeError as exc:
            failure = exc
            if cleanup is not None:
                cleanup(server)
        else:
            return server
    raise failure


# --- `lorry` processes ------------------------------------------------------------------


def lorry_executable() -> Path:
    """The installed ``lorry`` console script of this interpreter's environment."""
    executable = Path(sys.executable).with_name("lorry")
    if not executable.exists():
        pytest.fail(f"{executable} is missing; install the project with `pip install -e .`")
    return executable


def settings_env(settings: Settings, **extra: object) -> dict[str, str]:
    """The environment that gives a child process these settings (and ``extra`` ones): this
    process's environment without any ``LORRY_*`` variable, plus the settings as ``LORRY_*``."""
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
    """A `lorry` command (``serve``, ``worker``, ...) running as a child process."""

    def __init__(
        self,
        args: Sequence[str | Path],
        env: dict[str, str],
        log: Path,
        command: Sequence[str | Path] = LORRY,
    ) -> None:
        self.log = log
        self.process = spawn([*command, *args], log=log, env=env, cwd=REPO_ROOT)

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
        terminate(self.process, signal.SIGKILL)

    def stop(self) -> None:
        terminate(self.process, signal.SIGTERM, timeout=20)


@contextmanager
def lorry_process(
    args: Sequence[str | Path],
    env: dict[str, str],
    log: Path,
    command: Sequence[str | Path] = LORRY,
) -> Iterator[LorryProcess]:
    process = LorryProcess(args, env, log, command)
    try:
        yield process
    finally:
        process.stop()
