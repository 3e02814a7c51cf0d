"""ASGI middleware: size limits on request bodies (other than blob uploads) and headers.

JSON and form bodies are parsed in memory, so they are capped
(``Settings.max_json_body_bytes``); a larger body is refused with 413 before
any route runs. Blob uploads (``PUT /api/v1/blobs/...``) stream to disk and
have their own limit (``max_file_bytes``).

Headers: ``lorry serve`` passes ``max_header_bytes`` to uvicorn's h11 parser
(which then refuses a larger request head before the app sees it);
``HeaderLimitMiddleware`` enforces the same limit with 431 whatever HTTP
parser the server uses (uvicorn prefers httptools when it is installed).
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

STREAMED_PREFIXES = ("/api/v1/blobs/", "/api/lfs/uploads/", "/api/xet/")
STREAMED_PATHS = re.compile(r"/api/models/[^/]+/[^/]+/commit/.+")
"""Hub commits: spooled to disk by the route, with its own limit (``max_version_bytes``)."""
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"code": code, "message": message}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeaderLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))
            if size > self.max_bytes:
                await _refuse(
                    send,
                    431,
                    "headers_too_large",
                    f"the request line and headers are larger than {self.max_bytes} bytes "
                    "(LORRY_MAX_HEADER_BYTES)",
                )
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or str(scope["path"]).startswith(STREAMED_PREFIXES)
            or STREAMED_PATHS.fullmatch(str(scope["path"])) is not None
        ):
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = value
                break
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, "invalid_request", "Content-Length is not a number")
                return
            if int(declared) > self.max_bytes:
                await self._too_large(send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await _refuse(
            send,
            413,
            "too_large",
            f"the request body is larger than {self.max_bytes} bytes "
            "(LORRY_MAX_JSON_BODY_BYTES); upload files as blobs (PUT /api/v1/blobs/sha256/<hex>)",
        )
