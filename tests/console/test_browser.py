"""The web console end to end: headless Chromium against a live registry with real adapters,
alias moves and compositions. One browser; the tests without tokens read one registry and
add nothing another test reads, the tests with tokens use a registry of their own. No test
depends on another having run before it."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.seeding import SeededRegistry, compose
from tests.support.processes import REQUIRE_ALL_ENV
from tests.support.rest import API, wait_for_job

if importlib.util.find_spec("selenium") is None:
    _reason = "the browser tests need selenium: pip install -e '.[test]'"
    if os.environ.get(REQUIRE_ALL_ENV) == "1":
        pytest.fail(f"{_reason} ({REQUIRE_ALL_ENV}=1)", pytrace=False)
    pytest.skip(_reason, allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from tests.console.browsing import Console  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def closed_console(
    browser: Any, closed_registry: SeededRegistry, shots_dir: Path, shots_copy_dir: Path
) -> Iterator[Console]:
    """The console of the registry closed by ``tokens`` (another origin: its own storage)."""
    page = Console(browser, closed_registry.url, shots_dir, shots_copy_dir)
    yield page
    assert page.script_errors() == []


def _iso_between(earlier: str, later: str) -> str:
    start = datetime.fromisoformat(earlier)
    end = datetime.fromisoformat(later)
    middle = start + (end - start) / 2
    assert start < middle < end, (earlier, later)
    return middle.isoformat()


def _row_texts(console: Console, css: str) -> list[str]:
    return [row.text for row in console.find_all(css)]


def _cells(console: Console, css: str) -> list[list[str]]:
    return [
        [cell.text for cell in row.find_elements("css selector", "td")]
        for row in console.find_all(css)
    ]


def test_the_repository_list_renders_and_the_search_finds_a_repository(console: Console) -> None:
    console.open("/repos")
    listing = console.text("table.repos")
    for repository in ("acme/sql-gen", "acme/sql-formal", "acme/sql-safe", "beta/chat-tone"):
        assert repository in listing
    sql_gen = next(
        row for row in _row_texts(console, "table.repos tbody tr") if "acme/sql-gen" in row
    )
    assert "production → v3" in sql_gen and "v3" in sql_gen
    assert "Text to SQL for the analytics team" in sql_gen and "analytics" in sql_gen
    console.screenshot("01-repositories")

    search = console.find("#repo-search")
    search.send_keys("formal", Keys.ENTER)
    console.wait_until(lambda: "q=formal" in console.driver.current_url, "the search to navigate")
    console.wait_rendered()
    names = [link.text for link in console.find_all("table.repos a.repo-name")]
    assert names == ["acme/formal-tone", "acme/sql-formal"]
    assert console.find("#repo-search").get_attribute("value") == "formal"
    console.screenshot("02-search")
    assert console.script_errors() == []


def test_the_repository_page_shows_versions_aliases_card_files_and_snippets(
    console: Console, seeded_registry: SeededRegistry
) -> None:
    console.open("/repos/acme/sql-gen")
    versions = _row_texts(console, "section[aria-labelledby=versions-heading] tbody tr")
    assert [row.split()[0] for row in versions] == ["v3", "v2", "v1"]
    newest = seeded_registry.versions["sql-gen@3"]["digest"].removeprefix("sha256:")
    assert f"sha256:{newest[:12]}" in versions[0]
    assert "local" in versions[0] and "SQL adapter, data round 3" in versions[0]
    assert "first SQL adapter" in versions[2]
    aliases = console.text("section[aria-labelledby=aliases-heading]")
    assert "production" in aliases and "v3" in aliases and "v3 fixes joins" in aliases

    front_matter = console.text("table.front-matter")
    assert "license" in front_matter and "apache-2.0" in front_matter
    assert "sql, text-to-sql" in front_matter
    card = console.find(".markdown")
    assert card.find_element("css selector", "h1").text == "SQL generator"
    assert "exact match" in card.find_element("css selector", "table").text
    assert "<script>window.cardScriptRan = true</script>" in card.text, "raw HTML shows as text"
    assert card.find_elements("css selector", "script, img, [onerror]") == []
    assert card.find_elements("css selector", "a[href^='javascript']") == []
    assert console.script("return window.cardScriptRan === undefined")

    files = console.text("table.files")
    for path in ("adapter_config.json", "adapter_model.safetensors", "README.md", "notes.txt"):
        assert path in files
    link = console.find("a[aria-label='Download notes.txt']")
    href = link.get_attribute("href") or ""
    assert href.startswith(f"{seeded_registry.url}/api/v1/repos/acme/sql-gen/versions/3/files/")
    downloaded = httpx.get(href)
    assert downloaded.status_code == 200 and downloaded.content == b"v3"

    snippets = console.text(".snippets")
    assert "lorry pull acme/sql-gen@3 ./sql-gen" in snippets
    assert f'os.environ["HF_ENDPOINT"] = "{seeded_registry.url}"' in snippets
    assert 'PeftModel.from_pretrained(base, "acme/sql-gen", revision="3")' in snippets
    assert "--enable-lora --lora-modules sql-gen=acme/sql-gen" in snippets
    Select(console.find("#pull-revision")).select_by_value("production")
    assert "lorry pull acme/sql-gen@production" in console.text(".snippets")
    console.screenshot("03-repository")

    console.open("/repos/acme/sql-gen?version=1")
    assert console.text("#version-heading") == "Version 1"
    assert "v1 (shown below)" in console.text("tr.selected")
    assert console.script_errors() == []


def test_the_alias_timeline_lists_the_moves_in_order_and_answers_what_was_production_then(
    console: Console, seeded_registry: SeededRegistry
) -> None:
    console.open("/repos/acme/sql-gen/aliases/production")
    moves = _row_texts(console, "ol.timeline > li")
    assert len(moves) == 4
    expected = [
        ("set to v1", "first release"),
        ("v1 → v2", "beats v1 on the SQL eval"),
        ("v2 → v1", "rollback: v2 regressed on joins"),
        ("v1 → v3", "v3 fixes joins"),
    ]
    for text, (move, reason) in zip(moves, expected, strict=True):
        assert move in text and reason in text and "by local" in text
    assert "latest move" in moves[-1]
    assert "Now production points at acme/sql-gen v3" in console.text(".lead")

    history = seeded_registry.production_history
    between = _iso_between(history[1]["at"], history[2]["at"])
    console.set_local_time("at-input", between)
    console.find("form[aria-label='What production pointed at'] button[type=submit]").click()
    console.wait_until(lambda: "at=" in console.driver.current_url, "the lookup to navigate")
    console.wait_rendered()
    answer = console.text("#at-answer")
    assert "production pointed at acme/sql-gen v2" in answer, answer
    assert "beats v1 on the SQL eval" in answer and "by local" in answer
    assert "pushed, not composed" in answer
    console.screenshot("04-alias-timeline")

    before_first = (datetime.fromisoformat(history[0]["at"]) - timedelta(seconds=5)).isoformat()
    console.set_local_time("at-input", before_first)
    console.find("#at-input").send_keys(Keys.ENTER)
    console.wait_until(
        lambda: "did not exist" in console.text("main"), "the answer before the first move"
    )
    assert console.script_errors() == []


def test_the_lineage_graph_names_both_parents_with_their_weights_and_the_method(
    console: Console, seeded_registry: SeededRegistry
) -> None:
    console.open("/repos/acme/sql-formal/versions/1/lineage")
    graph = console.find("svg.lineage-graph")
    titles = [t.text for t in graph.find_elements("css selector", ".node-title")]
    assert sorted(titles) == ["acme/formal-tone", "acme/sql-formal", "acme/sql-gen"]
    weights = sorted(t.text for t in graph.find_elements("css selector", ".edge-label"))
    assert weights == ["× 0.6", "× 1"]
    assert "linear merge" in graph.text
    hrefs = {a.get_dom_attribute("href") for a in graph.find_elements("css selector", "a.node")}
    assert (
        "#/repos/acme/sql-gen?version=1" in hrefs and "#/repos/acme/formal-tone?version=1" in hrefs
    )
    assert "Method: linear" in console.text(".method")
    job = seeded_registry.jobs["sql-formal"]["id"]
    assert job in console.text(".method")
    console.find(".method a").click()
    console.wait_until(lambda: "job=" in console.driver.current_url, "the job link")
    console.wait_rendered()
    assert console.text("h1") == f"Job {job}"
    assert "acme/sql-gen v1 × 1" in console.text("tr.details-row"), "one job opens expanded"
    console.driver.back()
    console.wait_rendered()
    as_list = console.text(".tree-root")
    assert "acme/sql-gen v1 × 1" in as_list and "acme/formal-tone v1 × 0.6" in as_list
    console.screenshot("05-lineage")

    console.open("/repos/acme/sql-safe/versions/1/lineage")
    graph = console.find("svg.lineage-graph")
    titles = sorted(t.text for t in graph.find_elements("css selector", ".node-title"))
    assert titles == [
        "acme/formal-tone",
        "acme/sql-formal",
        "acme/sql-gen",
        "acme/sql-safe",
        "acme/toxic",
    ]
    weights = sorted(t.text for t in graph.find_elements("css selector", ".edge-label"))
    assert weights == ["× -0.4", "× 0.6", "× 1", "× 1"]
    assert "itself a linear of" in console.text(".tree-root")
    console.screenshot("06-lineage-two-levels")
    assert console.script_errors() == []


def test_the_derived_view_lists_what_was_composed_from_a_version_and_its_aliases(
    console: Console,
) -> None:
    console.open("/repos/acme/sql-gen/versions/1/lineage")
    assert "was pushed, not composed" in console.text("main")
    rows = {cells[0]: cells[2:] for cells in _cells(console, "table.derived tbody tr")}
    assert rows == {
        "acme/sql-formal v1": ["acme/sql-gen@1", "1", "production"],
        "acme/sql-safe v1": ["acme/sql-formal@1", "2", "none"],
    }
    console.screenshot("07-derived")
    assert console.script_errors() == []


def test_the_jobs_page_shows_live_progress_then_success_and_a_failure_with_its_error(
    console: Console, seeded_registry: SeededRegistry
) -> None:
    settings = seeded_registry.server.settings
    settings.compose_module_delay_s = 1.0
    try:
        with httpx.Client(base_url=seeded_registry.url, timeout=60) as http:
            job = compose(
                http, [("acme/formal-tone@1", 0.5), ("acme/toxic@1", 0.5)], "acme/tone-mix"
            )
            console.open("/jobs")
            row_css = f"tr:has(code[title='{job['id']}'])"
            seen: set[str] = set()
            progress_values: set[str] = set()

            def finished() -> bool:
                row = console.find(row_css).text
                for state in ("queued", "running", "succeeded", "failed"):
                    if state in row:
                        seen.add(state)
                bars = console.find_all(f"{row_css} progress")
                if bars and "running" in row:
                    progress_values.add(bars[0].get_attribute("value") or "")
                    if "running-shot" not in seen:
                        seen.add("running-shot")
                        console.screenshot("08-jobs-running")
                return "succeeded" in row

            console.wait_until(finished, "the job to succeed on the page, without a reload")
            done = wait_for_job(http, job["id"])
    finally:
        settings.compose_module_delay_s = 0.0
    assert done["state"] == "succeeded"
    assert "running" in seen, f"the page never showed the job running: {seen}"
    assert progress_values, "no progress bar while running"
    assert console.find(row_css).text.count("acme/tone-mix") >= 1
    assert "no job in progress" in console.text(".live-note")

    broken = console.find(f"tr:has(code[title='{seeded_registry.jobs['broken']['id']}'])").text
    assert "failed" in broken and "incompatible_inputs" in broken
    assert "different base models" in broken
    formal = console.find(f"tr:has(code[title='{seeded_registry.jobs['sql-formal']['id']}'])").text
    assert "succeeded" in formal and "acme/sql-formal v1" in formal
    console.screenshot("09-jobs")

    Select(console.find("#job-state")).select_by_value("failed")
    console.find("form[aria-label='Filter jobs'] button[type=submit]").click()
    console.wait_until(lambda: "state=failed" in console.driver.current_url, "the filter")
    console.wait_rendered()
    assert len(console.find_all("table.jobs tbody tr.job")) == 1
    details = console.find("tr.details-row")
    assert not details.is_displayed()
    console.find("button.toggle").click()
    assert details.is_displayed() and "failed: incompatible_inputs" in details.text
    assert console.find("button.toggle").get_attribute("aria-expanded") == "true"
    assert console.script_errors() == []


ROUTES = (
    "/repos",
    "/repos/acme/sql-gen",
    "/repos/acme/sql-gen/aliases/production",
    "/repos/acme/sql-safe/versions/1/lineage",
    "/jobs",
    "/audit",
)


def test_keyboard_reaches_the_search_and_links_and_every_control_has_a_label(
    console: Console,
) -> None:
    console.open("/repos")
    console.script("document.activeElement.blur()")
    reached: list[dict[str, str]] = []
    for _ in range(30):
        ActionChains(console.driver).send_keys(Keys.TAB).perform()
        reached.append(console.active_element())
    assert reached[0]["text"] == "Skip to content"
    ids = [element["id"] for element in reached]
    assert "repo-search" in ids, reached
    hrefs = [element["href"] for element in reached]
    assert "#/jobs" in hrefs and "#/audit" in hrefs
    assert any(href.startswith("#/repos/acme/") for href in hrefs), reached

    for route in ROUTES:
        console.open(route)
        assert console.unlabelled_controls() == [], route
        assert console.unreachable_controls() == [], route
        assert console.find_all("main h1"), route
        landmarks = console.script(
            "return ['header', 'nav', 'main', 'footer']"
            ".filter((tag) => document.querySelector(tag) === null)"
        )
        assert landmarks == [], route
    assert console.script_errors() == []


def _create_token(
    http: httpx.Client,
    principal: str,
    scopes: list[str],
    namespaces: list[str],
    admin: str | None = None,
) -> str:
    response = http.post(
        f"{API}/tokens",
        json={"principal": principal, "scopes": scopes, "namespaces": namespaces},
        headers={"Authorization": f"Bearer {admin}"} if admin else None,
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


@pytest.fixture(scope="module")
def tokens(closed_registry: SeededRegistry) -> dict[str, str]:
    """Tokens (the registry is closed from now on) and one more move, by a token's principal."""
    with httpx.Client(base_url=closed_registry.url, timeout=30) as http:
        ops = _create_token(http, "ops", ["admin"], ["*"])
        created = {
            "ops": ops,
            "beta-reader": _create_token(http, "beta-reader", ["read"], ["beta/*"], ops),
            "release-bot": _create_token(http, "release-bot", ["promote"], ["acme/*"], ops),
        }
        moved = http.put(
            f"{API}/repos/acme/sql-gen/aliases/production",
            json={"version": 2, "reason": "hotfix: back to v2"},
            headers={"Authorization": f"Bearer {created['release-bot']}"},
        )
        assert moved.status_code == 200, moved.text
    return created


def test_with_tokens_the_console_asks_for_one_and_shows_only_what_the_token_may_read(
    closed_console: Console,
    tokens: dict[str, str],
    closed_registry: SeededRegistry,
    downloads_dir: Path,
) -> None:
    console = closed_console
    console.open("/repos")
    console.script("sessionStorage.clear()")
    console.open("/repos")
    assert console.find("#sign-in").is_displayed(), "a compact control in the header"
    assert not console.find("#token-panel").is_displayed(), "no panel for anonymous visitors"
    assert console.find_all("main #token-panel, main #token-input") == []
    header = console.script("return document.querySelector('.site-header').offsetHeight")
    assert header < 80, f"the header is {header} px high"
    assert "Anonymous" in console.text("#session")
    console.find("#sign-in").click()
    console.wait_until(lambda: console.find("#token-panel").is_displayed(), "the popover")
    assert "Sign in with a token" in console.text("#token-panel")
    assert console.find("#sign-in").get_attribute("aria-expanded") == "true"
    assert console.active_element()["id"] == "token-input"
    assert console.unlabelled_controls() == []
    console.screenshot("10-token-prompt")

    console.find("#token-input").send_keys(tokens["beta-reader"], Keys.ENTER)
    console.wait_until(
        lambda: "Signed in as beta-reader" in console.text("#session"), "the token to be taken"
    )
    console.wait_rendered()
    assert not console.find("#token-panel").is_displayed()
    assert "read on beta/*" in console.text("#session")
    assert console.find("#sign-out").is_displayed()
    names = [link.text for link in console.find_all("table.repos a.repo-name")]
    assert names == ["beta/chat-tone"]
    console.screenshot("11-namespace-token")

    console.open("/repos/beta/chat-tone")
    console.find("a[aria-label='Download adapter_config.json']").click()
    console.wait_until(
        lambda: "Downloaded adapter_config.json." in console.text(".download-status"),
        "the download through fetch, with the token as a header",
    )
    saved = downloads_dir / "adapter_config.json"
    console.wait_until(saved.exists, "the downloaded file")
    with httpx.Client(base_url=closed_registry.url, timeout=30) as http:
        expected = http.get(f"{API}/repos/beta/chat-tone/versions/1/files/adapter_config.json")
        closed_registry.server.server.config.app.state.access_log.flush()
        pulls = http.get(f"{API}/access-log", params={"actor": "beta-reader"}).json()["items"]
    console.wait_until(lambda: saved.read_bytes() == expected.content, "the whole file")
    assert [(p["repository"], p["version"], p["path"]) for p in pulls] == [
        ("beta/chat-tone", 1, "adapter_config.json")
    ]

    console.open("/repos/acme/sql-gen")
    error = console.text("main .error")
    assert "forbidden" in error and "beta-reader" in error
    console.find("#sign-out").click()
    console.wait_until(lambda: console.find_all("#sign-in"), "the sign-in control")
    assert not console.find("#token-panel").is_displayed()
    assert "Anonymous" in console.text("#session")
    console.find("#sign-in").click()
    console.wait_until(lambda: console.find("#token-panel").is_displayed(), "the popover")

    console.find("#token-input").send_keys("lorry_000000000000_not-a-token", Keys.ENTER)
    console.wait_until(
        lambda: "The token was refused" in console.text("#token-panel"), "the refusal"
    )
    assert console.script_errors() == []


def test_the_audit_log_filters_by_action_actor_repository_and_time(
    closed_console: Console, closed_registry: SeededRegistry, tokens: dict[str, str]
) -> None:
    console = closed_console
    console.open("/audit")
    console.script("sessionStorage.setItem('lorry.console.token', arguments[0])", tokens["ops"])
    console.open("/audit")
    assert "Signed in as ops" in console.text("#session")
    Select(console.find("#audit-action")).select_by_value("alias.set")
    console.find("#audit-actor").send_keys("release-bot")
    console.find("form[aria-label='Filter the audit log'] button[type=submit]").click()
    console.wait_until(lambda: "actor=release-bot" in console.driver.current_url, "the filter")
    console.wait_rendered()
    rows = _row_texts(console, "table.audit tbody tr")
    assert len(rows) == 1, rows
    assert "release-bot" in rows[0] and "v3 → v2" in rows[0] and "hotfix: back to v2" in rows[0]
    console.screenshot("12-audit-filtered")

    console.open("/audit?action=alias.set&repository=acme/sql-gen")
    rows = _row_texts(console, "table.audit tbody tr")
    assert len(rows) == 5 and all("alias.set" in row for row in rows)
    assert "release-bot" in rows[0] and "local" in rows[-1], "newest first"

    last_local_move = closed_registry.production_history[-1]["at"]
    since = (datetime.fromisoformat(last_local_move) + timedelta(milliseconds=1)).isoformat()
    console.open(
        f"/audit?action=alias.set&repository=acme/sql-gen&since={since.replace('+', '%2B')}"
    )
    rows = _row_texts(console, "table.audit tbody tr")
    assert len(rows) == 1 and "release-bot" in rows[0]

    console.open("/audit?action=composition.fail")
    rows = _row_texts(console, "table.audit tbody tr")
    assert len(rows) == 1 and "acme/broken" in rows[0]
    console.open("/audit")
    assert "composition.succeed" in console.text("#audit-action")
    console.screenshot("13-audit")
    assert console.script_errors() == []
