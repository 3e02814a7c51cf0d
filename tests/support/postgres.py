"""A PostgreSQL server for the tests (a pytest plugin, registered in tests/conftest.py).

Fixtures:

- ``postgres_url`` (session): SQLAlchemy URL of a PostgreSQL server.
  ``LORRY_TEST_POSTGRES_URL`` if set, else a throwaway cluster started from the
  system's PostgreSQL binaries (``initdb`` + ``postgres`` on a free loopback
  port, trust auth, run as the ``postgres`` OS user when the tests run as root).
- ``fresh_postgres_url`` (function; alias ``fresh_postgres_db``): a new empty
  database on that server, dropped after the test.
- ``restartable_postgres`` (function): a private cluster the test may halt and resume.

A server that cannot start skips its tests with the reason (shown by ``-ra``),
or fails them when ``LORRY_TEST_REQUIRE_ALL=1`` (CI).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.processes import (
    free_port,
    spawn,
    start_with_retries,
    tail,
    terminate,
    unavailable,
    wait_until,
)

POSTGRES_URL_ENV = "LORRY_TEST_POSTGRES_URL"


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
            wait_until(self._answers, process, f"PostgreSQL on port {self.port}")
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; its log ends with:\n{tail(self.log)}") from None

    def _launch(self) -> subprocess.Popen[bytes]:
        """Run ``postgres`` on the data directory (tuned for tests: no fsync)."""
        self.process = spawn(
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
            terminate(self.process, signal.SIGINT)
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


class RestartablePostgresCluster(PostgresCluster):
    """A private cluster that a test can stop (``halt``) and start again (``resume``) with its
    data kept: a real server restart, for the recovery tests."""

    def halt(self) -> None:
        """Fast shutdown (clients are disconnected); the data directory stays."""
        if self.process is not None:
            terminate(self.process, signal.SIGINT)
            self.process = None

    def resume(self) -> None:
        """Start the server again on the same port and data; wait until it answers."""
        if self.process is not None:
            return
        process = self._launch()
        wait_until(self._answers, process, f"PostgreSQL on port {self.port} (restarted)")


@pytest.fixture
def restartable_postgres() -> Iterator[RestartablePostgresCluster]:
    """A private PostgreSQL cluster of the test's own, which it may halt and resume."""
    bindir = find_postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL server binaries (initdb, postgres) not found")
    try:
        cluster = start_with_retries(
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
        cluster = start_with_retries(lambda: PostgresCluster(bindir), PostgresCluster.start)
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
