"""Driving the console in Chromium: open a route and wait until it rendered, read, screenshot."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

RENDER_TIMEOUT_S = 30.0

RENDERED = """
const main = document.getElementById("main");
return main.dataset.page === window.location.hash && !main.hasAttribute("aria-busy");
"""

UNLABELLED_CONTROLS = """
const controls = document.querySelectorAll(
  "input:not([type=hidden]):not([type=submit]):not([type=button]), select, textarea");
return [...controls]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
    && !el.getAttribute("aria-labelledby"))
  .map((el) => el.outerHTML.slice(0, 120));
"""

UNREACHABLE_CONTROLS = """
const interactive = document.querySelectorAll("a[href], button, input, select, textarea, summary");
return [...interactive]
  .filter((el) => el.tabIndex < 0 || el.hasAttribute("disabled"))
  .map((el) => el.outerHTML.slice(0, 120));
"""

ACTIVE_ELEMENT = """
const el = document.activeElement;
return el ? {tag: el.tagName.toLowerCase(), id: el.id, href: el.getAttribute("href") || "",
  text: (el.textContent || "").trim().slice(0, 60)} : null;
"""

SET_LOCAL_TIME = """
const [id, iso] = arguments;
const date = new Date(iso);
const pad = (n, w = 2) => String(n).padStart(w, "0");
document.getElementById(id).value =
  `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
  `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.` +
  `${pad(date.getMilliseconds(), 3)}`;
"""


CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--window-size=1400,1000",
)

OVERFLOW = """
const doc = document.documentElement;
const wide = [...document.querySelectorAll("body *")]
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1
    && !el.closest(".table-wrap, .graph-wrap, pre, [popover]"))
  .slice(0, 5)
  .map((el) => `${el.tagName.toLowerCase()}.${el.className}`);
return {scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth, wide};
"""
"""How wide the page is against the viewport, and the first elements sticking out of it
(outside the boxes that scroll on their own: tables, graphs, code)."""


class BrowserUnavailable(RuntimeError):
    """Chromium, chromedriver or selenium is missing, or Chromium did not start."""


def start_chromium(downloads_dir: Path) -> Any:
    """Headless Chromium driven by chromedriver (both from the system; nothing downloaded);
    files the pages download land in ``downloads_dir``."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        raise BrowserUnavailable(
            "the browser tests need Chromium and chromedriver on PATH "
            "(Debian: apt-get install chromium chromium-driver)"
        )
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
        raise BrowserUnavailable(
            f"could not start headless Chromium ({chromium}, {chromedriver}): {exc.msg}"
        ) from exc
    driver.set_page_load_timeout(30)
    return driver


def set_viewport(driver: Any, width: int, height: int = 1000) -> None:
    """Make the page's viewport exactly ``width`` x ``height`` CSS pixels (0, 0: undo)."""
    if width == 0:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        return
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


class Console:
    """The console at ``url`` in ``driver``; screenshots go to ``shots`` and ``copy_to``."""

    def __init__(self, driver: Any, url: str, shots: Path, copy_to: Path) -> None:
        self.driver = driver
        self.url = url
        self.shots = shots
        self.copy_to = copy_to
        self._loads = 0

    def open(self, route: str) -> None:
        """Load the page afresh (a new document, not only a new hash) at ``route``."""
        self._loads += 1
        self.driver.get(f"{self.url}/?load={self._loads}#{route}")
        self.wait_rendered()

    def wait_rendered(self) -> None:
        WebDriverWait(self.driver, RENDER_TIMEOUT_S).until(
            lambda driver: driver.execute_script(RENDERED)
        )

    def wait_until(self, condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except StaleElementReferenceException:
                value = None  # the page re-rendered (a poll) between finding and reading
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def find(self, css: str) -> WebElement:
        element: WebElement = self.driver.find_element(By.CSS_SELECTOR, css)
        return element

    def find_all(self, css: str) -> list[WebElement]:
        elements: list[WebElement] = self.driver.find_elements(By.CSS_SELECTOR, css)
        return elements

    def text(self, css: str = "main") -> str:
        text: str = self.find(css).text
        return text

    def script(self, source: str, *args: Any) -> Any:
        return self.driver.execute_script(source, *args)

    def set_local_time(self, input_id: str, iso: str) -> None:
        """Fill a datetime-local input with the instant ``iso`` in the browser's time zone."""
        self.script(SET_LOCAL_TIME, input_id, iso)

    def active_element(self) -> dict[str, str]:
        active: dict[str, str] = self.script(ACTIVE_ELEMENT)
        return active

    def unlabelled_controls(self) -> list[str]:
        found: list[str] = self.script(UNLABELLED_CONTROLS)
        return found

    def unreachable_controls(self) -> list[str]:
        found: list[str] = self.script(UNREACHABLE_CONTROLS)
        return found

    def script_errors(self) -> list[str]:
        """Uncaught JavaScript errors logged since the last call (failed requests excluded:
        the console shows those on the page)."""
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
        ]

    def overflow(self) -> dict[str, Any]:
        """``scrollWidth``, ``innerWidth`` and the elements wider than the viewport."""
        found: dict[str, Any] = self.script(OVERFLOW)
        return found

    def full_page_shot(self, path: Path, width: int, max_height: int = 8000) -> None:
        """The whole page (its first ``max_height`` pixels), ``width`` CSS pixels wide, as a
        PNG at ``path``."""
        height = int(self.script("return document.documentElement.scrollHeight"))
        set_viewport(self.driver, width, min(max(height, 600), max_height))
        try:
            assert self.driver.save_screenshot(str(path)), f"no screenshot {path}"
        finally:
            set_viewport(self.driver, width)

    def screenshot(self, name: str) -> Path:
        """The whole page as ``name``.png (the window grows to the page's height for it)."""
        height = self.script("return document.documentElement.scrollHeight")
        width = self.driver.get_window_size()["width"]
        self.driver.set_window_size(width, min(max(int(height) + 140, 700), 6000))
        path = self.shots / f"{name}.png"
        try:
            assert self.driver.save_screenshot(str(path)), f"no screenshot {path}"
        finally:
            self.driver.set_window_size(width, 1000)
        self.copy_to.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, self.copy_to / path.name)
        return path
