from __future__ import annotations

from fastapi import APIRouter, Response

from registry.api.deps import CallerDep, ReaderDep, SessionDep
from registry.api.reads import json_response
from registry.schemas.repos import AliasHistory, AliasList, AliasOut, AliasUpdate
from registry.services import aliases

router = APIRouter(prefix="/repos/{namespace}/{name}/aliases", tags=["aliases"])


@router.get("")
def list_aliases(session: SessionDep, namespace: str, name: str) -> AliasList:
    return aliases.list_aliases(session, namespace, name)


@router.get("/{alias}", response_model=AliasOut)
async def get_alias(reader: ReaderDep, namespace: str, name: str, alias: str) -> Response:
    # A hot read (registry.api.reads): its query on the loop on SQLite, its answer as JSON.
    return json_response(await reader.run(aliases.get_alias, namespace, name, alias))


@router.put("/{alias}")
def set_alias(
    session: SessionDep,
    caller: CallerDep,
    namespace: str,
    name: str,
    alias: str,
    body: AliasUpdate,
) -> AliasOut:
    return aliases.set_alias(
        session,
        namespace,
        name,
        alias,
        body.version,
        body.reason,
        caller,
        override_gate=body.override_gate,
    )


@router.delete("/{alias}", status_code=204, response_class=Response)
def delete_alias(
    session: SessionDep,
    caller: CallerDep,
    namespace: str,
    name: str,
    alias: str,
    reason: str | None = None,
) -> Response:
    aliases.delete_alias(session, namespace, name, alias, reason, caller)
    return Response(status_code=204)


@router.get("/{alias}/history")
def alias_history(session: SessionDep, namespace: str, name: str, alias: str) -> AliasHistory:
    return aliases.alias_history(session, namespace, name, alias)
