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


_ROW = re.compile(r"^\| (?P<names>`LORRY_[^|]*) \| (?P<defaults>[^|]*) \|", re.M)
_UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def _documented_value(text: str) -> object:
    """A default as the table writes it: ``–`` (none), `true`, 64 MiB, 5, `lorry.local/audit`."""
    text = text.strip().strip("`")
    if text == "–":
        return None
    if text in {"true", "false"}:
        return text == "true"
    sized = re.fullmatch(r"(\d+) (KiB|MiB|GiB)", text)
    if sized:
        return int(sized[1]) * _UNITS[sized[2]]
    if re.fullmatch(r"\d+", text):
        return int(text)
    return text


def test_configuration_table_gives_the_defaults_of_registry_config() -> None:
    page = (REPO / "docs" / "operations" / "configuration.md").read_text()
    defaults = Settings.model_construct()
    checked = 0
    wrong = []
    for row in _ROW.finditer(page):
        names = re.findall(r"`LORRY_([A-Z0-9_]+)`", row["names"])
        values = row["defaults"].split(", ")
        if len(values) != len(names) and len(values) != 1:
            wrong.append(f"{names}: {len(values)} defaults for {len(names)} settings")
            continue
        expanded = values * len(names) if len(values) == 1 else values
        for name, value in zip(names, expanded, strict=True):
            field = name.lower()
            if field not in Settings.model_fields or "$LORRY_HOME" in value or field == "home":
                continue  # client variables, and defaults that follow LORRY_HOME
            actual = getattr(defaults, field)
            documented = _documented_value(value)
            if actual in ("", None) and documented is None:
                pass
            elif documented != actual:
                wrong.append(f"LORRY_{name}: the page says {value}, the default is {actual!r}")
            checked += 1
    assert checked > 35, "the table was read"
    assert not wrong, "\n".join(wrong)
