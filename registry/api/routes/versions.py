from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from registry.api import pulls
from registry.api.deps import (
    AccessLogDep,
    BlobStoreDep,
    CallerDep,
    ReaderDep,
    SessionDep,
    SettingsDep,
)
from registry.api.downloads import file_response
from registry.api.reads import json_response
from registry.schemas.repos import PublishRequest, VersionList, VersionOut
from registry.services import derived_files, publish, versions

router = APIRouter(prefix="/repos/{namespace}/{name}/versions", tags=["versions"])


@router.post("", status_code=201)
def publish_version(
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    namespace: str,
    name: str,
    body: PublishRequest,
) -> VersionOut:
    return publish.publish_version(session, store, settings, caller, namespace, name, body)


@router.get("")
def list_versions(
    session: SessionDep,
    namespace: str,
    name: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> VersionList:
    return versions.list_versions(session, namespace, name, limit=limit, offset=offset)


@router.get("/{ref}", response_model=VersionOut)
async def get_version(reader: ReaderDep, namespace: str, name: str, ref: str) -> Response:
    # A hot read (registry.api.reads).
    return json_response(await reader.run(versions.get_version, namespace, name, ref))


@router.get(
    "/{ref}/files/{path:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_file(
    request: Request,
    session: SessionDep,
    store: BlobStoreDep,
    namespace: str,
    name: str,
    ref: str,
    path: str,
    caller: CallerDep,
    access_log: AccessLogDep,
) -> Response:
    file = derived_files.find_file(session, namespace, name, ref, path)
    response = file_response(request, store, file)
    pulls.record_served_file(access_log, caller, request, file, response, via="api", revision=ref)
    return response


router.add_api_route(
    "/{ref}/files/{path:path}",
    download_file,
    methods=["HEAD"],
    name="head_file",
    response_class=Response,
)
