"""A real ``lorry serve`` process for the CLI tests (a pytest plugin, registered in
tests/conftest.py), and helpers of those tests.

Fixture: ``registry_url`` (session), the URL of a registry process on its embedded
defaults (SQLite + disk), migrated.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import Result

from registry.config import Settings
from tests.support.processes import free_port, lorry_executable, lorry_process, settings_env

Lorry = Callable[..., Result]
"""A ``lorry`` command run in-process: ``lorry("push", path, "acme/x")``."""


def variant_of(adapter: Path, directory: Path, note: str) -> Path:
    """A copy of ``adapter`` with one extra small file, so that its digest differs."""
    shutil.copytree(adapter, directory)
    (directory / "notes.txt").write_text(note)
    return directory


@pytest.fixture(scope="session")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real registry process (the installed `lorry` script), migrated, on its
    embedded defaults."""
    home = tmp_path_factory.mktemp("lorry-home")
    env = settings_env(Settings(home=home, database_url=None, blob_url=None))
    lorry = lorry_executable()
    migrate = subprocess.run(
        [lorry, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    with lorry_process(serve, env, home / "server.log", command=[lorry]) as server:
        server.wait_until_serving(url)
        yield url
