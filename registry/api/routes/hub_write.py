"""The Hugging Face Hub write API: ``create_repo``, preupload, commit, branches and tags,
and the discovery calls scripts make (``list_models``, ``list_repo_commits``, ``whoami``).

Errors are answered as the read API answers them (``HubRoute``: ``X-Error-Message`` and
a JSON ``error``, which ``hf_raise_for_status`` puts into the client's exception).
"""

from __future__ import annotations

import json
import tempfile
from contextlib import closing
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse

from registry.api.auth import authorize_namespace
from registry.api.deps import BlobStoreDep, CallerDep, PrincipalDep, SessionDep, SettingsDep
from registry.api.routes.hub import HubRoute, header_safe
from registry.config import Settings
from registry.errors import InvalidInput, InvalidModelCard, TooLarge, Unauthorized
from registry.schemas.hub import HubCommit, HubCommitResult, HubModelSummary, HubRepoUrl
from registry.services import hub_commits, hub_ndjson, hub_refs, hub_repos, preupload
from registry.services.principals import ANONYMOUS_ACTOR

router = APIRouter(tags=["hugging face hub"], route_class=HubRoute)

JsonBody = Annotated[dict[str, Any], Body()]
_SPOOL_CHUNK = 1024 * 1024


def _endpoint(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.post("/api/repos/create")
def create_repo(
    request: Request, session: SessionDep, caller: CallerDep, body: JsonBody
) -> HubRepoUrl:
    """An empty repository `{organization}/{name}`; 409 when it exists."""
    namespace, name = hub_repos.repo_from_body(body)
    authorize_namespace(request, namespace)
    return hub_repos.create_repository(session, caller, namespace, name, _endpoint(request))


@router.delete("/api/repos/delete")
def delete_repo(request: Request, body: JsonBody) -> None:
    """Refused: repositories are never deleted (the message says how to retire one)."""
    namespace, name = hub_repos.repo_from_body(body)
    authorize_namespace(request, namespace)
    hub_repos.refuse_deletion(namespace, name)


@router.post("/api/validate-yaml", response_model=None)
def validate_yaml(body: JsonBody) -> dict[str, Any] | JSONResponse:
    """Check a README.md's front matter as `lorry push` will; 400 with `errors` if malformed
    (which huggingface_hub raises as `ValueError` before uploading anything)."""
    try:
        return hub_repos.validate_yaml(body)
    except InvalidModelCard as exc:
        return JSONResponse(
            {"error": exc.message, "errors": [{"message": exc.message}], "warnings": []},
            status_code=400,
            headers={"X-Error-Message": header_safe(exc.message)},
        )


@router.get("/api/whoami-v2")
def whoami(principal: PrincipalDep) -> dict[str, Any]:
    """The token's principal, scopes and namespaces."""
    if principal.name == ANONYMOUS_ACTOR:
        raise Unauthorized(
            "Invalid credentials in Authorization header: send a Lorry token "
            "(HF_TOKEN=lorry_...); `lorry token create` makes one"
        )
    return hub_repos.whoami(principal)


@router.get("/api/models")
def list_models(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    search: str | None = None,
    author: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="from the previous page's Link")] = None,
) -> list[HubModelSummary]:
    """Repositories the caller may read; `search` matches id, description and tags."""
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    models, total = hub_repos.list_models(
        session, principal, search=search, author=author, limit=limit, offset=offset
    )
    if offset + limit < total:
        next_url = request.url.include_query_params(cursor=str(offset + limit))
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return models


@router.get("/api/models/{namespace}/{name}/commits/{revision}")
def list_commits(
    request: Request,
    response: Response,
    session: SessionDep,
    namespace: str,
    name: str,
    revision: str,
    cursor: Annotated[str | None, Query(description="from the previous page's Link")] = None,
) -> list[HubCommit]:
    """Versions up to the revision's, newest first, as commits."""
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    commits, more = hub_refs.list_commits(session, namespace, name, revision, offset)
    if more:
        next_url = request.url.include_query_params(cursor=str(offset + len(commits)))
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return commits


@router.post("/api/models/{namespace}/{name}/preupload/{revision}")
def preupload_files(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    namespace: str,
    name: str,
    revision: str,
    body: JsonBody,
) -> dict[str, Any]:
    """How each file will travel (`uploadMode`), as `registry.services.upload_modes` decides."""
    user_agent = request.headers.get("user-agent")
    return preupload.preupload(session, settings, namespace, name, revision, body, user_agent)


def _spool(settings: Settings) -> tempfile._TemporaryFileWrapper[bytes]:
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    return tempfile.NamedTemporaryFile(dir=settings.tmp_dir, prefix="commit-", suffix=".ndjson")


@router.post("/api/models/{namespace}/{name}/commit/{revision}")
async def commit(
    request: Request,
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    namespace: str,
    name: str,
    revision: str,
    create_pr: bool = False,
) -> HubCommitResult:
    """NDJSON commit: version N+1 = N's files + additions - deletions (validated like a push).

    The body is spooled to a temp file, then scanned a line (one file) at a time, each
    file's base64 content decoded into a blob as it is read (``hub_ndjson``)."""
    if create_pr:
        raise InvalidInput(
            "Lorry has no pull requests; commit to a branch (an alias) instead: "
            "create_branch(...) then create_commit(..., revision=BRANCH)"
        )
    limit = settings.max_version_bytes * 4 // 3 + hub_commits.max_line_bytes(settings)
    with _spool(settings) as spool:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise TooLarge(f"the commit is larger than {limit} bytes (LORRY_MAX_VERSION_BYTES)")
            await anyio.to_thread.run_sync(spool.write, chunk)
        await anyio.to_thread.run_sync(spool.flush)
        spool.seek(0)
        max_line = hub_commits.max_line_bytes(settings)
        with closing(hub_ndjson.read_lines(spool, max_line, settings.tmp_dir)) as lines:
            result = await anyio.to_thread.run_sync(
                partial(
                    hub_commits.commit,
                    session,
                    store,
                    settings,
                    caller,
                    namespace,
                    name,
                    revision,
                    lines,
                )
            )
    endpoint = _endpoint(request)
    return HubCommitResult(
        commitOid=result.commit,
        commitUrl=f"{endpoint}/{namespace}/{name}/commit/{result.commit}",
        lorry={"version": result.version, "created": result.created},
    )


@router.post("/api/models/{namespace}/{name}/branch/{branch}", status_code=200)
def create_branch(
    session: SessionDep,
    caller: CallerDep,
    namespace: str,
    name: str,
    branch: str,
    body: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, Any]:
    """A new alias at `startingPoint` (default `main`); 409 when it exists."""
    starting = (body or {}).get("startingPoint")
    hub_refs.create_alias_ref(
        session, caller, namespace, name, branch, _text(starting, "startingPoint"), None
    )
    return {}


@router.delete("/api/models/{namespace}/{name}/branch/{branch}")
def delete_branch(
    session: SessionDep, caller: CallerDep, namespace: str, name: str, branch: str
) -> dict[str, Any]:
    hub_refs.delete_alias_ref(session, caller, namespace, name, branch)
    return {}


@router.post("/api/models/{namespace}/{name}/tag/{revision}", status_code=200)
def create_tag(
    session: SessionDep,
    caller: CallerDep,
    namespace: str,
    name: str,
    revision: str,
    body: JsonBody,
) -> dict[str, Any]:
    """A new alias `tag` at the revision; the tag message is the move's reason."""
    tag = _text(body.get("tag"), "tag")
    if tag is None:
        raise InvalidInput("create_tag needs {'tag': NAME}")
    message = _text(body.get("message"), "message")
    hub_refs.create_alias_ref(session, caller, namespace, name, tag, revision, message)
    return {}


@router.delete("/api/models/{namespace}/{name}/tag/{tag}")
def delete_tag(
    session: SessionDep, caller: CallerDep, namespace: str, name: str, tag: str
) -> dict[str, Any]:
    hub_refs.delete_alias_ref(session, caller, namespace, name, tag)
    return {}


def _text(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidInput(f"`{what}` must be a string, got {json.dumps(value)}")
