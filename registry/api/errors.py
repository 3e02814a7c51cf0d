"""The one place where errors become HTTP responses ``{"code", "message"}``.

``LorryError`` carries its own code and status. Other libraries' error roots
(``composer.ComposerError``) are added with ``register_error_type`` by the app
factory, so this module imports none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.errors import DatabaseUnavailable, LorryError, RangeNotSatisfiable

logger = logging.getLogger(__name__)

ErrorTranslator = Callable[[Exception], tuple[int, str, str]]
"""Maps an exception to ``(status, code, message)``."""

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def _lorry_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LorryError)
    headers = None
    if isinstance(exc, RangeNotSatisfiable) and "size" in exc.details:
        headers = {"Content-Range": f"bytes */{exc.details['size']}"}
    if exc.status_code >= 500:
        logger.error("%s: %s", exc.code, exc.message)
    return error_response(exc.status_code, exc.code, exc.message, headers)


def _describe_validation_error(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    message = str(error.get("msg", "is invalid"))
    return f"{where}: {message}" if where else message


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(_describe_validation_error(error) for error in exc.errors())
    return error_response(
        422, "invalid_request", f"the request is invalid: {problems}; see /docs for its shape"
    )


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 404:
        message = "no such endpoint; the API is under /api/v1 and documented at /docs"
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    logger.error("database unavailable: %s", exc)
    return error_response(
        503,
        DatabaseUnavailable.code,
        "the metadata database cannot be reached or refused the operation "
        f"({exc.__class__.__name__}); check that it is running and LORRY_DATABASE_URL, "
        "then retry",
    )


def _out_of_range(_request: Request, exc: Exception) -> JSONResponse:
    """A number in the request that the database cannot hold (e.g. ``offset=10**20``)."""
    return error_response(
        422,
        "invalid_request",
        f"a number in the request is out of range ({exc.__class__.__name__}); "
        "use smaller values (ids, offsets and limits fit in 64 bits)",
    )


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    logger.exception("unexpected error (request id %s)", request_id, exc_info=exc)
    return error_response(
        500,
        "internal",
        f"the server failed unexpectedly (request id {request_id}); "
        "its log has the details, please report it",
    )


def register_error_type(
    app: FastAPI, error_type: type[Exception], translate: ErrorTranslator
) -> None:
    """Map another error root (e.g. ``composer.ComposerError``) through the same JSON shape."""

    def handle(_request: Request, exc: Exception) -> JSONResponse:
        status, code, message = translate(exc)
        return error_response(status, code, message)

    app.add_exception_handler(error_type, handle)


_COMPOSER_STATUS = {"output_exists": 409, "device_unavailable": 503, "composer_error": 500}


def composer_error_status(exc: Exception) -> tuple[int, str, str]:
    """``ErrorTranslator`` of ``composer.ComposerError``: a recipe or its inputs are wrong
    (422) unless the code says otherwise; read through ``code``/``message`` attributes."""
    code = str(getattr(exc, "code", "composer_error"))
    message = str(getattr(exc, "message", exc))
    return _COMPOSER_STATUS.get(code, 422), code, message


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LorryError, _lorry_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(DataError, _out_of_range)
    app.add_exception_handler(Exception, _unexpected_error)
