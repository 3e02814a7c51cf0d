"""The Hugging Face Hub-compatible read API, mounted at the root like the Hub's own.

``HF_ENDPOINT=http://lorry:8765`` makes huggingface_hub, PEFT, transformers
and vLLM read from Lorry. Errors carry the ``X-Error-Code`` header
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) that makes the
client raise its own exception types, and a JSON body ``{"error": ...}``.

File resolves answer as the Hub does for LFS files: ``X-Repo-Commit``,
``ETag``/``X-Linked-Etag`` (the sha256), ``X-Linked-Size``. On a store that
presigns URLs (S3), GET redirects to the object store so the bytes bypass
this server; HEAD answers 200 with the metadata, so that the client's
download is a GET here, which records the pull, and not a direct fetch of a
URL handed out by HEAD.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from registry.api import pulls
from registry.api.deps import AccessLogDep, BlobStoreDep, CallerDep, ReaderDep, SessionDep
from registry.api.downloads import file_response
from registry.api.reads import json_response
from registry.errors import (
    AliasNotFound,
    FileNotFound,
    InvalidPath,
    InvalidReference,
    LorryError,
    RepositoryNotFound,
    VersionNotFound,
)
from registry.schemas.hub import HubModelInfo, HubRefs, HubTreeEntry
from registry.services import hub, hub_reads
from registry.storage.base import BlobStore

PRESIGNED_URL_EXPIRY_S = 3600

_HUB_ERROR_CODES: tuple[tuple[tuple[type[LorryError], ...], int, str], ...] = (
    ((RepositoryNotFound,), 404, "RepoNotFound"),
    ((VersionNotFound, AliasNotFound, InvalidReference), 404, "RevisionNotFound"),
    ((FileNotFound, InvalidPath), 404, "EntryNotFound"),
)


def hub_error_response(exc: LorryError) -> JSONResponse:
    """A Lorry error as the Hub answers it: status, ``X-Error-Code`` and ``{"error"}``."""
    status, headers = exc.status_code, {"X-Error-Message": header_safe(exc.message)}
    for types, hub_status, code in _HUB_ERROR_CODES:
        if isinstance(exc, types):
            status = hub_status
            headers["X-Error-Code"] = code
            break
    commit = exc.details.get("commit")
    if isinstance(commit, str):
        headers["X-Repo-Commit"] = commit
    body: dict[str, Any] = {"error": exc.message, "code": exc.code, "message": exc.message}
    url = exc.details.get("url")
    if isinstance(url, str):
        body["url"] = url  # a 409 of create_repo: the client reads it with exist_ok=True
    return JSONResponse(body, status_code=status, headers=headers)


def header_safe(text: str) -> str:
    """Printable ASCII only: a control character (from a fuzzed repository name, say) would
    make the server refuse to send the header at all."""
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    return "".join(char if 32 <= ord(char) < 127 else " " for char in ascii_text)


class HubRoute(APIRoute):
    """Translates ``LorryError`` into the Hub's error answers at this API's boundary."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except LorryError as exc:
                return hub_error_response(exc)

        return handle


router = APIRouter(tags=["hugging face hub"], route_class=HubRoute)


@router.get("/api/models/{namespace}/{name}/revision/{revision:path}", response_model=HubModelInfo)
async def model_info_at_revision(
    reader: ReaderDep, namespace: str, name: str, revision: str
) -> Response:
    """Model info at a revision: a version number, alias, digest, commit id or `main`."""
    # A hot read (registry.api.reads).
    return json_response(await reader.run(hub_reads.model_info, namespace, name, revision))


@router.get("/api/models/{namespace}/{name}", response_model=HubModelInfo)
async def model_info(reader: ReaderDep, namespace: str, name: str) -> Response:
    """Model info at `main`."""
    return json_response(await reader.run(hub_reads.model_info, namespace, name, hub.MAIN))


@router.get("/api/models/{namespace}/{name}/refs")
def list_refs(session: SessionDep, namespace: str, name: str) -> HubRefs:
    """`main` as a branch; aliases and version numbers as tags."""
    return hub.list_refs(session, namespace, name)


def _tree(
    request: Request,
    response: Response,
    session: SessionDep,
    namespace: str,
    name: str,
    revision: str,
    path: str,
    recursive: bool,
    expand: bool,
    cursor: str | None,
) -> list[HubTreeEntry]:
    page = hub.list_tree(
        session,
        namespace,
        name,
        revision,
        path,
        recursive=recursive,
        expand=expand,
        cursor=cursor,
    )
    if page.next_cursor is not None:
        next_url = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return page.entries


@router.get("/api/models/{namespace}/{name}/tree/{revision}", response_model_exclude_none=True)
def list_tree(
    request: Request,
    response: Response,
    session: SessionDep,
    namespace: str,
    name: str,
    revision: str,
    recursive: bool = False,
    expand: bool = False,
    cursor: Annotated[str | None, Query(description="from the previous page's Link")] = None,
) -> list[HubTreeEntry]:
    """Files and directories at the top of a revision; paginated with `Link: rel="next"`."""
    return _tree(
        request, response, session, namespace, name, revision, "", recursive, expand, cursor
    )


@router.get(
    "/api/models/{namespace}/{name}/tree/{revision}/{path:path}", response_model_exclude_none=True
)
def list_tree_under(
    request: Request,
    response: Response,
    session: SessionDep,
    namespace: str,
    name: str,
    revision: str,
    path: str,
    recursive: bool = False,
    expand: bool = False,
    cursor: Annotated[str | None, Query(description="from the previous page's Link")] = None,
) -> list[HubTreeEntry]:
    """Files and directories under `path` at a revision."""
    return _tree(
        request, response, session, namespace, name, revision, path, recursive, expand, cursor
    )


@router.post(
    "/api/models/{namespace}/{name}/paths-info/{revision}", response_model_exclude_none=True
)
def paths_info(
    session: SessionDep,
    namespace: str,
    name: str,
    revision: str,
    paths: Annotated[list[str], Form()],
    expand: Annotated[bool, Form()] = False,
) -> list[HubTreeEntry]:
    """Information on the given paths (form field `paths`, repeated); missing ones are left out."""
    return hub.paths_info(session, namespace, name, revision, paths, expand=expand)


@router.get(
    "/{namespace}/{name}/resolve/{revision}/{path:path}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        302: {"description": "on S3: the file at a presigned URL"},
    },
)
async def resolve_file(
    request: Request,
    reader: ReaderDep,
    store: BlobStoreDep,
    caller: CallerDep,
    access_log: AccessLogDep,
    namespace: str,
    name: str,
    revision: str,
    path: str,
) -> Response:
    """A file at a revision, with the Hub's headers; Range requests as the native API."""
    # Async: the lookup is a hot read (registry.api.reads); the store, which may sign a URL
    # or read the file, is called in the thread pool.
    found, response = await reader.run_then(
        partial(
            hub_reads.find_hub_file, namespace=namespace, name=name, revision=revision, path=path
        ),
        partial(_file_answer, request, store),
    )
    pulls.record_served_file(
        access_log, caller, request, found.file, response, via="hub", revision=revision
    )
    return response


def _file_answer(
    request: Request, store: BlobStore, found: hub_reads.HubFile
) -> tuple[hub_reads.HubFile, Response]:
    file = found.file
    hub_headers = {
        "X-Repo-Commit": found.commit,
        "X-Linked-Etag": f'"{file.sha256}"',
        "X-Linked-Size": str(file.size),
    }
    location = store.presigned_url(file.sha256, PRESIGNED_URL_EXPIRY_S)
    if location is not None and request.method == "GET":
        response: Response = Response(
            status_code=302,
            headers={
                "Location": location,
                "ETag": f'"{file.sha256}"',
                "X-Lorry-Version": str(file.version),
                "X-Lorry-Digest": file.digest,
                "Cache-Control": "no-store",
                **hub_headers,
            },
        )
    else:
        response = file_response(request, store, file)
        response.headers.update(hub_headers)
    return found, response


router.add_api_route(
    "/{namespace}/{name}/resolve/{revision}/{path:path}",
    resolve_file,
    methods=["HEAD"],
    name="head_resolve_file",
    response_class=Response,
)
