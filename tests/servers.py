"""Real servers for the tests: a private PostgreSQL cluster and moto's S3 server.

Loaded as a pytest plugin (``pytest_plugins = ["tests.servers"]`` in
tests/conftest.py). Fixtures:

- ``postgres_url`` (session): SQLAlchemy URL of a PostgreSQL server.
  ``LORRY_TEST_POSTGRES_URL`` if set, else a throwaway cluster started from the
  system's PostgreSQL binaries (``initdb`` + ``postgres`` on a free loopback
  port, trust auth, run as the ``postgres`` OS user when the tests run as root).
- ``fresh_postgres_url`` (function; alias ``fresh_postgres_db``): a new empty
  database on that server, dropped after the test.
- ``s3_server`` (session): moto's standalone S3 server on 127.0.0.1. It keeps
  its data in memory: ``stop()`` followed by ``start()`` (same port) comes back
  empty, without buckets.
- ``fresh_s3_bucket`` (function): a new bucket on it, removed after the test.
- ``backend_settings`` (function, parametrized ``sqlite-local`` /
  ``postgres-s3``): ``registry.config.Settings`` for either backend pair.

A server that cannot start skips its tests with the reason (shown by ``-ra``),
or fails them when ``LORRY_TEST_REQUIRE_ALL=1`` (CI).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import psycopg
import pytest
from minio import Minio
from sqlalchemy.engine import make_url

from registry.config import Settings

REQUIRE_ALL_ENV = "LORRY_TEST_REQUIRE_ALL"
POSTGRES_URL_ENV = "LORRY_TEST_POSTGRES_URL"
BACKEND_KINDS = ("sqlite+local", "postgres+s3")

_STARTUP_TIMEOUT_S = 30.0
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


def _spawn(cmd: list[str], *, log: Path, user: str | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            user=user,
            preexec_fn=_die_with_parent if _prctl is not None else None,
        )
    _live_processes.add(process)
    return process


def _terminate(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    _live_processes.discard(process)


@atexit.register
def _reap_leftovers() -> None:
    """Last resort if a session fixture's teardown never ran (e.g. an interpreter abort)."""
    for process in list(_live_processes):
        _terminate(process)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer within {_STARTUP_TIMEOUT_S:.0f}s")


def _start_with_retries(
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


# --- PostgreSQL -------------------------------------------------------------------------


def find_postgres_bin() -> Path | None:
    """Directory with ``initdb`` and ``postgres``: Debian's versioned dirs (newest), then PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(on_path)
    for initdb in candidates:
        bindir = Path(initdb).parent
        if (bindir / "postgres").is_file():
            return bindir
    return None


class PostgresCluster:
    """A throwaway PostgreSQL cluster in a temp dir, listening on 127.0.0.1 only."""

    superuser = "postgres"

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.os_user: str | None = None
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root.
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root and there is no 'postgres' OS user to run PostgreSQL as; "
                    f"install the postgresql package or set {POSTGRES_URL_ENV}"
                ) from None
            self.os_user = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="lorry-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        if self.os_user:
            owner = pwd.getpwnam(self.os_user)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        initdb = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.superuser,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            user=self.os_user,
            cwd=self.root,
            check=False,
        )
        if initdb.returncode != 0:
            output = (initdb.stdout + initdb.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"initdb failed:\n{output}")
        process = self._launch()
        try:
            _wait_until(self._answers, process, f"PostgreSQL on port {self.port}")
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; its log ends with:\n{_tail(self.log)}") from None

    def _launch(self) -> subprocess.Popen[bytes]:
        """Run ``postgres`` on the data directory (tuned for tests: no fsync)."""
        self.process = _spawn(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            log=self.log,
            user=self.os_user,
        )
        return self.process

    def _answers(self) -> bool:
        try:
            with psycopg.connect(libpq_url(self.url), connect_timeout=2) as conn:
                conn.execute("select 1")
        except psycopg.OperationalError:
            return False
        return True

    def stop(self) -> None:
        if self.process is not None:
            # SIGINT is PostgreSQL's "fast shutdown": disconnect clients, then exit.
            _terminate(self.process, signal.SIGINT)
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


class RestartablePostgresCluster(PostgresCluster):
    """A private cluster that a test can stop (``halt``) and start again (``resume``) with its
    data kept: a real server restart, for the recovery tests."""

    def halt(self) -> None:
        """Fast shutdown (clients are disconnected); the data directory stays."""
        if self.process is not None:
            _terminate(self.process, signal.SIGINT)
            self.process = None

    def resume(self) -> None:
        """Start the server again on the same port and data; wait until it answers."""
        if self.process is not None:
            return
        process = self._launch()
        _wait_until(self._answers, process, f"PostgreSQL on port {self.port} (restarted)")


@pytest.fixture
def restartable_postgres() -> Iterator[RestartablePostgresCluster]:
    """A private PostgreSQL cluster of the test's own, which it may halt and resume."""
    bindir = find_postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL server binaries (initdb, postgres) not found")
    try:
        cluster = _start_with_retries(
            lambda: RestartablePostgresCluster(bindir), RestartablePostgresCluster.start
        )
    except (RuntimeError, OSError) as exc:
        unavailable(f"could not start a private PostgreSQL cluster from {bindir}: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://...`` -> ``postgresql://...`` for psycopg.connect."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _sqlalchemy_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL (``postgresql+psycopg://...``) of a PostgreSQL server for the session."""
    external = os.environ.get(POSTGRES_URL_ENV)
    if external:
        yield _sqlalchemy_url(external)
        return
    bindir = find_postgres_bin()
    if bindir is None:
        unavailable(
            "PostgreSQL server binaries (initdb, postgres) not found under "
            "/usr/lib/postgresql/*/bin or on PATH; install the 'postgresql' package "
            f"or set {POSTGRES_URL_ENV}"
        )
    try:
        cluster = _start_with_retries(lambda: PostgresCluster(bindir), PostgresCluster.start)
    except (RuntimeError, OSError) as exc:
        unavailable(f"could not start a private PostgreSQL cluster from {bindir}: {exc}")
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the session's PostgreSQL server; dropped after the test."""
    name = f"lorry_test_{uuid.uuid4().hex[:16]}"
    admin = libpq_url(postgres_url)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        unavailable(f"could not create a test database on {make_url(postgres_url)!r}: {exc}")
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_postgres_db(fresh_postgres_url: str) -> str:
    """Alias of ``fresh_postgres_url``."""
    return fresh_postgres_url


# --- S3 (moto) --------------------------------------------------------------------------


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
        self._process = _spawn(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            log=self.log,
        )
        try:
            _wait_until(self._answers, self._process, f"moto S3 server on {self.endpoint}")
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; its log ends with:\n{_tail(self.log)}") from None

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/moto-api/", timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Stop the server; its port refuses connections until ``start()``."""
        if self._process is not None:
            _terminate(self._process)
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
        server = _start_with_retries(S3Server, S3Server.start, cleanup=S3Server.close)
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


# --- Settings for either backend pair ---------------------------------------------------


def make_settings(
    kind: str,
    home: Path,
    *,
    database_url: str | None = None,
    s3: S3Server | None = None,
    bucket: str | None = None,
    **overrides: Any,
) -> Settings:
    """``Settings`` for one backend pair, all data under ``home``.

    ``"sqlite+local"``: SQLite file and blob directory under ``home``.
    ``"postgres+s3"``: ``database_url`` plus ``s3://<bucket>`` on ``s3``; ``home``
    still holds the upload spool (``tmp_dir``). Explicit values win over any
    ``LORRY_*`` variables of the environment.
    """
    if kind == "sqlite+local":
        values: dict[str, Any] = {"home": home, "database_url": None, "blob_url": None}
    elif kind == "postgres+s3":
        if database_url is None or s3 is None or bucket is None:
            raise ValueError("postgres+s3 settings need database_url, s3 and bucket")
        values = {
            "home": home,
            "database_url": database_url,
            "blob_url": f"s3://{bucket}",
            "s3_endpoint": s3.endpoint,
            "s3_access_key": s3.access_key,
            "s3_secret_key": s3.secret_key,
            "s3_region": s3.region,
            "s3_secure": False,
        }
    else:
        raise ValueError(f"unknown backend kind {kind!r}; use one of {BACKEND_KINDS}")
    values.update(overrides)
    home.mkdir(parents=True, exist_ok=True)
    return Settings(**values)


@pytest.fixture(
    params=[
        pytest.param("sqlite+local", id="sqlite-local"),
        pytest.param("postgres+s3", id="postgres-s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
    ]
)
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """``Settings`` for each backend pair in turn: SQLite + disk, PostgreSQL + S3 (moto)."""
    kind: str = request.param
    if kind == "sqlite+local":
        return make_settings(kind, tmp_path / "home")
    return make_settings(
        kind,
        tmp_path / "home",
        database_url=request.getfixturevalue("fresh_postgres_url"),
        s3=request.getfixturevalue("s3_server"),
        bucket=request.getfixturevalue("fresh_s3_bucket"),
    )
