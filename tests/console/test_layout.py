"""The console's everyday layout in Chromium against the seeded open registry: what a repository
page opens on, pages that fit an 800 px window, times that carry their zone, and an audit view
of changes with the pulls behind a toggle."""

from __future__ import annotations

import importlib.util
import os
import re
from datetime import datetime, timedelta

import pytest

from tests.support.processes import REQUIRE_ALL_ENV

if importlib.util.find_spec("selenium") is None:
    _reason = "the browser tests need selenium: pip install -e '.[test]'"
    if os.environ.get(REQUIRE_ALL_ENV) == "1":
        pytest.fail(f"{_reason} ({REQUIRE_ALL_ENV}=1)", pytrace=False)
    pytest.skip(_reason, allow_module_level=True)

from tests.console.browsing import Console, set_viewport  # noqa: E402
from tests.console.seeding import SEEDED_PULLS  # noqa: E402

pytestmark = pytest.mark.slow

PAGES = (
    "/repos",
    "/repos?q=formal",
    "/repos/acme/sql-gen",
    "/repos/acme/summarizer",
    "/repos/acme/sql-gen?version=1",
    "/repos/acme/sql-safe",
    "/repos/acme/sql-gen/aliases/production",
    "/repos/acme/sql-safe/versions/1/lineage",
    "/repos/acme/sql-gen/versions/1/lineage",
    "/jobs",
    "/audit",
    "/audit?pulls=1&repository=acme/summarizer",
    "/no/such/page",
    "/repos/acme/missing",
)
"""Every page of the console (the sign-in popover is in test_browser's token test)."""

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?P<zone>[A-Z]{2,5}|GMT[+-]\d{1,2}(:\d\d)?)$")
"""The one way the console shows a time: local, to the second, with the zone."""


def test_a_repository_page_opens_on_what_main_serves_and_says_why(console: Console) -> None:
    console.open("/repos/acme/summarizer")
    served = console.text("#main-serves")
    assert "main → production → v1" in served, served
    assert "The latest version is v2, which main does not serve" in served
    heading = console.text("#version-heading")
    assert heading.startswith("Version 1") and "served by main" in heading
    assert "latest" not in heading
    assert "lorry pull acme/summarizer@1" in console.text(".snippets")

    console.find("#show-latest").click()
    console.wait_until(lambda: "version=2" in console.driver.current_url, "the latest version")
    console.wait_rendered()
    heading = console.text("#version-heading")
    assert heading.startswith("Version 2") and "latest" in heading
    assert "served by main" not in heading
    assert "Shown below: v2, not what main serves" in console.text("#main-serves")

    console.open("/repos/acme/sql-gen")
    served = console.text("#main-serves")
    assert "main → latest → v3" in served and "it follows no alias" in served
    assert console.text("#version-heading").startswith("Version 3")
    assert console.script_errors() == []


@pytest.mark.parametrize("width", [800, 1400])
def test_no_page_is_wider_than_the_window(console: Console, width: int) -> None:
    too_wide = {}
    try:
        for route in PAGES:
            set_viewport(console.driver, width)
            console.open(route)
            found = console.overflow()
            if found["scrollWidth"] > found["innerWidth"] or found["wide"]:
                too_wide[route] = found
    finally:
        set_viewport(console.driver, 0)
    assert too_wide == {}
    assert console.script_errors() == []


def test_the_jobs_table_shows_every_column_at_1400_px(console: Console) -> None:
    set_viewport(console.driver, 1400)
    try:
        console.open("/jobs")
        clipped = console.script(
            "const box = document.querySelector('#jobs-body .table-wrap');"
            "return box.scrollWidth - box.clientWidth;"
        )
    finally:
        set_viewport(console.driver, 0)
    assert clipped <= 0, f"the jobs table is {clipped} px wider than its box"


def test_every_time_shown_carries_its_zone_and_the_exact_instant(console: Console) -> None:
    for route in ("/repos/acme/sql-gen", "/repos/acme/sql-gen/aliases/production", "/jobs"):
        console.open(route)
        times = console.find_all("main time")
        assert times, route
        for element in times:  # textContent: the times in a closed job's log are hidden
            text = element.get_attribute("textContent") or ""
            assert STAMP.match(text), (route, text)
            iso = element.get_attribute("title") or ""
            assert iso == element.get_attribute("datetime") and iso.endswith("Z"), iso
    assert re.search(r"Updated .* [A-Z]{2,5};", console.text(".live-note"))

    console.driver.execute_cdp_cmd(
        "Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"}
    )
    try:
        console.open("/repos/acme/sql-gen")
        element = console.find("main time")
        instant = datetime.fromisoformat(element.get_attribute("title") or "")
        shown = STAMP.match(element.text)
        assert shown and shown["zone"] == "EST", element.text  # December: standard time
        local = (instant - timedelta(hours=5)).strftime("%Y-%m-%d %H:%M:%S")
        assert element.text == f"{local} EST"
    finally:
        console.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})
    assert console.script_errors() == []


def test_the_audit_view_shows_changes_and_the_pulls_only_when_asked(console: Console) -> None:
    console.open("/audit?repository=acme/summarizer")
    actions = _column(console, "table.audit", 3)
    assert "version.publish" in actions and "alias.set" in actions
    assert "version.pull" not in actions, "pulls are hidden by default"
    assert "legacy-puller" not in console.text("table.audit")
    assert console.find_all("#pulls") == []
    assert "Pulls (file downloads) are hidden" in console.text(".lead")
    assert "version.pull" not in console.text("#audit-action")

    console.find("#audit-pulls").click()
    console.wait_until(lambda: "pulls=1" in console.driver.current_url, "the toggle")
    console.wait_rendered()
    assert console.find("#audit-pulls").is_selected()
    assert "version.pull" in _column(console, "table.audit", 3)
    pulls = console.text("#pulls")
    assert "3 pulls" in pulls, pulls
    files = sorted(cells[3] for cells in _rows(console, "table.pulls"))
    assert files == sorted(path for _, _, path in SEEDED_PULLS)
    counts = {cells[0]: cells[1] for cells in _rows(console, "table.pull-counts")}
    assert counts == {"v1": "2", "v2": "1"}
    assert console.script_errors() == []


def _rows(console: Console, table: str) -> list[list[str]]:
    return [
        [cell.text for cell in row.find_elements("css selector", "td")]
        for row in console.find_all(f"{table} tbody tr")
    ]


def _column(console: Console, table: str, number: int) -> list[str]:
    return [cells[number - 1] for cells in _rows(console, table)]
