"""HTTP semantics of file downloads: ETag, If-None-Match, If-Range and single byte ranges."""

from __future__ import annotations

import re

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from registry.errors import RangeNotSatisfiable
from registry.services.versions import VersionFileRef
from registry.storage.base import BlobStore

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
SMALL_BODY_BYTES = 1024 * 1024
"""Files (or ranges) up to this size are read whole and sent as one body."""


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or etag in candidates


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``bytes=`` range; ``None`` to send the whole file.

    Multiple ranges and unknown units are answered with the whole file, which
    RFC 9110 allows; a syntactically valid range outside the file raises
    ``RangeNotSatisfiable``.
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return max(0, size - suffix), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(header, size)
    return start, end


def _unsatisfiable(header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"range {header!r} is outside the file, which has {size} bytes "
        f"(valid byte positions 0-{max(size - 1, 0)})",
        size=size,
    )


def file_response(request: Request, store: BlobStore, file: VersionFileRef) -> Response:
    etag = f'"{file.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "X-Lorry-Version": str(file.version),
        "X-Lorry-Digest": file.digest,
        "Cache-Control": "public, max-age=31536000, immutable",
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    status, start, end = 200, 0, file.size
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header is not None and (if_range is None or if_range.strip() == etag):
        byte_range = parse_range(range_header, file.size)
        if byte_range is not None:
            status, (start, end) = 206, byte_range
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    if end - start <= SMALL_BODY_BYTES:
        # Configs, cards and small adapters: one read here, in the route's thread, instead
        # of a stream that hops to the thread pool for every chunk and once more at its end.
        body = store.read_bytes(file.sha256, start, end - start)
        if len(body) == end - start:
            return Response(
                body, status_code=status, headers=headers, media_type="application/octet-stream"
            )
    chunks = store.open_range(file.sha256, start, end)
    return StreamingResponse(
        chunks, status_code=status, headers=headers, media_type="application/octet-stream"
    )
