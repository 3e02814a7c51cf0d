"""Screenshots of every console page at 1400 and 800 px wide, for a person to look at.

    PYTHONPATH=$PWD python -m tests.console.screenshots OUT_DIR [--width 1400 --width 800]

Builds the tiny Llama and the skill adapters, seeds a live registry as the browser tests do
(``tests.console.seeding``), opens every page in headless Chromium and writes
``OUT_DIR/<width>/<NN-page>.png``. The registry is then closed with a token, for the sign-in
pages. It prints one line per page: its width against the viewport and the first elements
that stick out of it, so that a page overflowing sideways shows without opening the PNGs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.console.browsing import Console, set_viewport, start_chromium
from tests.console.seeding import SeededRegistry, seeded_registry_at
from tests.support.compositions import SKILL_SPECS
from tests.support.factories import build_lora_adapter, build_tiny_llama
from tests.support.files import directory_files
from tests.support.rest import API

WIDTHS = (1400, 800)

Step = Callable[[Console], None]


def _open(route: str) -> Step:
    return lambda console: console.open(route)


def _then(first: Step, second: Step) -> Step:
    def both(console: Console) -> None:
        first(console)
        second(console)

    return both


def _click(css: str) -> Step:
    def click(console: Console) -> None:
        console.find(css).click()
        console.wait_rendered()

    return click


def open_pages(registry: SeededRegistry) -> list[tuple[str, Step]]:
    """Every page of the open registry: (file name, how to get there)."""
    job = registry.jobs["broken"]["id"]
    return [
        ("01-repositories", _open("/repos")),
        ("02-search", _open("/repos?q=formal")),
        ("03-repository-latest", _open("/repos/acme/sql-gen")),
        ("04-repository-main-alias", _open("/repos/acme/summarizer")),
        ("05-repository-older-version", _open("/repos/acme/sql-gen?version=1")),
        ("05b-composed-version-card", _open("/repos/acme/sql-safe")),
        ("06-alias-timeline", _open("/repos/acme/sql-gen/aliases/production")),
        ("07-lineage", _open("/repos/acme/sql-safe/versions/1/lineage")),
        ("08-derived", _open("/repos/acme/sql-gen/versions/1/lineage")),
        ("09-jobs", _open("/jobs")),
        ("10-job-failed-open", _open(f"/jobs?job={job}")),
        ("11-audit", _open("/audit")),
        ("12-audit-with-pulls", _open("/audit?pulls=1&repository=acme/summarizer")),
        ("13-not-found", _open("/no/such/page")),
        ("14-error", _open("/repos/acme/missing")),
    ]


def closed_pages(token: str) -> list[tuple[str, Step]]:
    """The sign-in control once tokens exist: anonymous, the popover open, signed in."""

    def sign_in(console: Console) -> None:
        console.script("sessionStorage.setItem('lorry.console.token', arguments[0])", token)
        console.open("/repos")

    def anonymous(console: Console) -> None:
        console.open("/repos")
        console.script("sessionStorage.clear()")
        console.open("/repos")

    return [
        ("15-anonymous", anonymous),
        ("16-sign-in-popover", _then(anonymous, _click("#sign-in"))),
        ("17-signed-in", sign_in),
    ]


def shoot(
    console: Console, pages: list[tuple[str, Step]], out: Path, width: int, max_height: int
) -> list[str]:
    """Each page at ``width``: a PNG and a line saying whether it overflows sideways."""
    lines = []
    target = out / str(width)
    target.mkdir(parents=True, exist_ok=True)
    for name, step in pages:
        set_viewport(console.driver, width)
        step(console)
        found: dict[str, Any] = console.overflow()
        console.full_page_shot(target / f"{name}.png", width, max_height)
        verdict = "ok" if found["scrollWidth"] <= found["innerWidth"] else "OVERFLOWS"
        lines.append(
            f"{width:>5} {name:<30} {found['scrollWidth']:>5}/{found['innerWidth']:<5} "
            f"{verdict} {' '.join(found['wide'])}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory for the PNGs (created)")
    parser.add_argument("--width", type=int, action="append", help="page widths (1400, 800)")
    parser.add_argument(
        "--max-height", type=int, default=8000, help="cut long pages after this many pixels"
    )
    args = parser.parse_args(argv)
    widths = args.width or list(WIDTHS)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="console-shots-") as tmp:
        root = Path(tmp)
        llama = build_tiny_llama(root / "tiny-llama" / "model")
        skills = {
            name: directory_files(build_lora_adapter(llama, root / "skills" / name, r=r, seed=seed))
            for name, (r, seed) in SKILL_SPECS.items()
        }
        driver = start_chromium(root / "downloads")
        try:
            with seeded_registry_at(root / "registry", skills) as registry:
                console = Console(driver, registry.url, root / "shots", root / "shots")
                lines = []
                for width in widths:
                    lines += shoot(console, open_pages(registry), args.out, width, args.max_height)
                with httpx.Client(base_url=registry.url, timeout=30) as http:
                    created = http.post(
                        f"{API}/tokens",
                        json={"principal": "ops", "scopes": ["admin"], "namespaces": ["*"]},
                    )
                    created.raise_for_status()
                for width in widths:
                    token = created.json()["token"]
                    lines += shoot(console, closed_pages(token), args.out, width, args.max_height)
        finally:
            driver.quit()
    print("\n".join(lines))
    return 1 if any("OVERFLOWS" in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
