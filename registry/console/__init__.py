"""The web console: one HTML page at ``/`` and hand-written ES modules under ``/console/``.

The page holds no data: its scripts read the REST API under ``/api/v1`` with the
visitor's token (kept in ``sessionStorage``), so the API's own authorization decides
what the console shows, and the console only ever sends ``GET`` requests. Its
routes are hash routes (``/#/repos/acme/sql-gen``), so the server answers only ``/``
and ``/console/...`` and shadows nothing: not ``/api/v1``, ``/docs``, ``/healthz`` nor
the Hugging Face routes at the root (``/api/models/...``, ``/{ns}/{name}/resolve/...``,
which are matched first).
There is no build step: the files in ``static/`` are what the browser runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/console"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""Only the console's own files run (a model card's HTML could not execute a script even if
the Markdown renderer let one through), and the page contacts no other host: a card's remote
images stay unloaded rather than tell a third party who reads the registry."""

_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def console_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)


class _RevalidatedStaticFiles(StaticFiles):
    """Static files that the browser revalidates on every load (``ETag``), so that an upgraded
    server never runs with yesterday's scripts."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount_console(app: FastAPI) -> None:
    """Serve the console page at ``/`` and its scripts and styles under ``/console/``."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, _RevalidatedStaticFiles(directory=STATIC_DIR), name="console")


__all__ = ["STATIC_DIR", "mount_console"]
