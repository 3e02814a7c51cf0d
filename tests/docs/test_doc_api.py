"""Every route the REST API page lists is served by the app, with the methods it lists."""

from __future__ import annotations

import re
from pathlib import Path

from registry.app import create_app
from registry.config import Settings
from tests.docs.sessions import REPO

API_PAGE = REPO / "docs" / "api.md"

_ROW = re.compile(r"^\| (?P<first>`[^|]*) \|", re.M)
_SPAN = re.compile(r"`([^`]+)`")
_METHOD = re.compile(r"^(GET|HEAD|POST|PUT|PATCH|DELETE)\b\s*")


def _shape(path: str) -> str:
    """A path with its parameters unnamed, so that ``{ns}`` and ``{namespace}`` agree."""
    return re.sub(r"\{[^}]*\}", "{}", path.split("?", 1)[0])


def _variants(path: str) -> list[str]:
    """``/a[/{b}]`` is ``/a`` and ``/a/{b}``."""
    optional = re.search(r"\[([^\]]*)\]", path)
    if optional is None:
        return [path]
    before, after = path[: optional.start()], path[optional.end() :]
    return _variants(before + after) + _variants(before + optional[1] + after)


def documented_routes(page: str) -> list[tuple[frozenset[str], list[str]]]:
    """(methods, candidate paths) per path the table's first column names. A path written
    ``…/x`` continues the one before it from one of its prefixes."""
    routes: list[tuple[frozenset[str], list[str]]] = []
    for row in _ROW.finditer(page):
        methods: set[str] = set()
        previous = ""
        for span in _SPAN.findall(row["first"]):
            method = _METHOD.match(span)
            if method:
                methods.add(method[1])
                span = span[method.end() :]
            if not span:
                continue
            span = re.sub(r"\[\?[^\]]*\]", "", span).split("?", 1)[0]
            if span.startswith("…"):
                stem = previous.rstrip("/").split("/")
                paths = ["/".join(stem[:cut]) + span[1:] for cut in range(2, len(stem) + 1)]
            else:
                paths = [span]
                previous = _variants(span)[0]
            routes.append((frozenset(methods or {"GET"}), [v for p in paths for v in _variants(p)]))
            methods = set()
    return routes


def _served(tmp_path: Path) -> dict[str, set[str]]:
    """Path shape -> methods, from the app's own OpenAPI description (no server runs)."""
    app = create_app(Settings(home=tmp_path))
    served: dict[str, set[str]] = {}
    for path, operations in app.openapi()["paths"].items():
        served.setdefault(_shape(path), set()).update(method.upper() for method in operations)
    if app.docs_url:
        served[app.docs_url] = {"GET"}
    return served


def test_api_page_lists_served_routes(tmp_path: Path) -> None:
    routes = documented_routes(API_PAGE.read_text())
    assert len(routes) > 30, "the table was read"
    served = _served(tmp_path)
    missing = []
    for methods, candidates in routes:
        found = [served[_shape(path)] for path in candidates if _shape(path) in served]
        if not any(methods <= served_methods for served_methods in found):
            missing.append(f"{sorted(methods)} {candidates[0]}")
    assert not missing, "listed in docs/api.md, not served:\n" + "\n".join(missing)


def test_api_page_names_health_and_openapi(tmp_path: Path) -> None:
    page = API_PAGE.read_text()
    served = _served(tmp_path)
    for path in ("/healthz", "/readyz", "/docs"):
        assert f"`{path}`" in page or f"`GET {path}`" in page
        assert path in served, path
