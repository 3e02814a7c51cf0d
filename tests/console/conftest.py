"""A live registry with real adapters, alias moves and compositions, and headless Chromium.

One browser per module. ``seeded_registry`` is open (no token) and its tests only read it;
``closed_registry`` is seeded the same way, then tokens close it (and one more move is made
with a token), for the tests of signing in.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.seeding import SeededRegistry, seeded_registry_at
from tests.support.processes import unavailable

CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--window-size=1400,1000",
)


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
    """Headless Chromium driven by chromedriver (both from the system; nothing downloaded);
    files the pages download land in ``downloads_dir``."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        unavailable(
            "the browser tests need Chromium and chromedriver on PATH "
            "(Debian: apt-get install chromium chromium-driver)"
        )
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("the browser tests need selenium (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads_dir), "download.prompt_for_download": False},
    )
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    except WebDriverException as exc:
        unavailable(f"could not start headless Chromium ({chromium}, {chromedriver}): {exc.msg}")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")
