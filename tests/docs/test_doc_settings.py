"""Every ``LORRY_`` variable the README and the docs name is one Lorry reads."""

from __future__ import annotations

import re

from registry.config import Settings
from tests.docs.sessions import REPO

_VARIABLE = re.compile(r"\bLORRY_[A-Z0-9_]*[A-Z0-9]\b")


def _read_by_code() -> set[str]:
    """Settings fields (``LORRY_`` + the field name), and the variables the CLI, the tests
    and CI read by name (``LORRY_URL``, ``LORRY_TOKEN``, ``LORRY_TEST_REQUIRE_ALL`` ...)."""
    names = {f"LORRY_{field.upper()}" for field in Settings.model_fields}
    sources = [
        *(REPO / "cli").rglob("*.py"),
        *(REPO / "tests").rglob("*.py"),
        *(REPO / ".ci").iterdir(),
    ]
    for source in sources:
        if source.is_file() and source.parent.name != "docs":
            names |= set(re.findall(r"[\"'](LORRY_[A-Z0-9_]+)[\"']", source.read_text()))
            names |= set(re.findall(r"\b(LORRY_[A-Z0-9_]+)=", source.read_text()))
    return names


def test_documented_settings_exist() -> None:
    pages = [REPO / "README.md", *(REPO / "docs").rglob("*.md")]
    named = {
        (page.relative_to(REPO), var)
        for page in pages
        for var in _VARIABLE.findall(page.read_text())
    }
    assert len(named) > 40, "the configuration page names every setting"
    known = _read_by_code()
    unknown = sorted(f"{page}: {var}" for page, var in named if var not in known)
    assert not unknown, "named in the docs, read by nothing:\n" + "\n".join(unknown)
