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
