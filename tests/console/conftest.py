"""A live registry with real adapters, alias moves and compositions, and headless Chromium.

One browser per module. ``seeded_registry`` is open (no token) and its tests only read it;
``closed_registry`` is seeded the same way, then tokens close it (and one more move is made
with a token), for the tests of signing in.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.seeding import SeededRegistry, seeded_registry_at
from tests.support.processes import unavailable


@pytest.fixture(scope="module")
def seeded_registry(
    tmp_path_factory: pytest.TempPathFactory, skill_adapters: dict[str, dict[str, bytes]]
) -> Iterator[SeededRegistry]:
    """The seeded registry without tokens (see ``seeded_registry_at``)."""
    with seeded_registry_at(tmp_path_factory.mktemp("console"), skill_adapters) as registry:
        yield registry


@pytest.fixture(scope="module")
def closed_registry(
    tmp_path_factory: pytest.TempPathFactory, skill_adapters: dict[str, dict[str, bytes]]
) -> Iterator[SeededRegistry]:
    """Another seeded registry, for the tests that close it with tokens."""
    with seeded_registry_at(tmp_path_factory.mktemp("console-closed"), skill_adapters) as registry:
        yield registry


@pytest.fixture(scope="module")
def downloads_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-downloads")


@pytest.fixture(scope="module")
def browser(downloads_dir: Path) -> Iterator[Any]:
    """Headless Chromium (``tests.console.browsing.start_chromium``)."""
    try:
        from tests.console.browsing import BrowserUnavailable, start_chromium
    except ImportError:
        unavailable("the browser tests need selenium (pip install -e '.[test]')")
    try:
        driver = start_chromium(downloads_dir)
    except BrowserUnavailable as exc:
        unavailable(str(exc))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture(scope="session")
def shots_copy_dir() -> Path:
    """Screenshots are copied here too, for a person to look at after the run."""
    return Path(tempfile.gettempdir()) / "console-shots"


@pytest.fixture(scope="module")
def console(
    browser: Any, seeded_registry: SeededRegistry, shots_dir: Path, shots_copy_dir: Path
) -> Iterator[Any]:
    """The console of the open registry (``tests.console.browsing.Console``); no script error
    may be logged by the end of the module."""
    from tests.console.browsing import Console

    page = Console(browser, seeded_registry.url, shots_dir, shots_copy_dir)
    yield page
    assert page.script_errors() == []
