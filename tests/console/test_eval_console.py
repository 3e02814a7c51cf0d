"""The console's evaluation results: a table per version and a chart per metric across
versions with the aliases marked, in headless Chromium against a live registry."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.seeding import SeededRegistry
from tests.support.processes import REQUIRE_ALL_ENV
from tests.support.rest import API

if importlib.util.find_spec("selenium") is None:
    _reason = "the browser tests need selenium: pip install -e '.[test]'"
    if os.environ.get(REQUIRE_ALL_ENV) == "1":
        pytest.fail(f"{_reason} ({REQUIRE_ALL_ENV}=1)", pytrace=False)
    pytest.skip(_reason, allow_module_level=True)

from tests.console.browsing import Console  # noqa: E402

SHOTS_DIR = Path(tempfile.gettempdir()) / "console-shots"

pytestmark = pytest.mark.slow

VALUES = {1: 0.71, 2: 0.78, 3: 0.84}


@pytest.fixture(scope="module")
def console(browser: Any, seeded_registry: SeededRegistry, shots_dir: Any) -> Iterator[Console]:
    page = Console(browser, seeded_registry.url, shots_dir, SHOTS_DIR)
    yield page
    assert page.script_errors() == []


def test_a_version_shows_its_results_and_a_chart_across_versions_with_aliases(
    console: Console, seeded_registry: SeededRegistry
) -> None:
    with httpx.Client(base_url=seeded_registry.url, timeout=30) as http:
        for number, value in VALUES.items():
            document = {
                "sql_eval": {"exact_match": value, "exact_match_stderr": 0.01},
                "dataset": "acme/sql-holdout",
                "split": "test",
            }
            added = http.post(f"{API}/repos/acme/sql-gen/versions/{number}/evals", json=document)
            assert added.status_code == 201, added.text

    console.open("/repos/acme/sql-gen?version=2")
    rows = [row.text for row in console.find_all("table.eval-results tbody tr")]
    assert len(rows) == 1
    assert "sql_eval" in rows[0] and "exact_match" in rows[0] and "0.78" in rows[0]
    assert "acme/sql-holdout · test" in rows[0]

    (figure,) = console.find_all("figure.eval-chart")
    assert figure.find_element("css selector", "figcaption").text == "sql_eval/exact_match"
    points = figure.find_elements("css selector", "circle.point")
    plotted = {
        int(p.get_attribute("data-version") or 0): float(p.get_attribute("data-value") or 0)
        for p in points
    }
    assert plotted == VALUES
    selected = figure.find_elements("css selector", "circle.selected")
    assert [p.get_attribute("data-version") for p in selected] == ["2"]
    heights = {
        int(p.get_attribute("data-version") or 0): float(p.get_attribute("cy") or 0) for p in points
    }
    assert heights[3] < heights[2] < heights[1], "higher values are drawn higher"
    labels = [t.text for t in figure.find_elements("css selector", "text.alias-label")]
    assert labels == ["production"], "v3 holds production"
    console.screenshot("20-eval-results")

    console.open("/repos/acme/sql-formal")
    assert "No evaluation results" in console.text("section[aria-labelledby=evals-heading]")
    assert console.find_all("figure.eval-chart") == []
