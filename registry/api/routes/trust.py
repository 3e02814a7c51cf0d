"""Tokens, protected-alias rules, alias-at-time and gc.

Who may call what is decided by ``registry.api.auth.required_access`` (tokens,
rule changes and gc need ``admin`` on every namespace).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool

from registry.api.access import VisibilityDep
from registry.api.deps import BlobStoreDep, CallerDep, PrincipalCacheDep, SessionDep, SettingsDep
from registry.schemas.trust import (
    AliasAt,
    GcReport,
    PolicyCreate,
    PolicyList,
    PolicyOut,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
)
from registry.services import alias_time, gc, policies, tokens

router = APIRouter()


@router.post("/tokens", status_code=201, tags=["tokens"])
def create_token(session: SessionDep, caller: CallerDep, body: TokenCreate) -> TokenCreated:
    """Create a token; its secret (`token`) is in this response only."""
    return tokens.create_token(
        session,
        caller,
        principal=body.principal,
        scopes=list(body.scopes),
        namespaces=body.namespaces,
        description=body.description,
        expires_at=body.expires_at,
    )


@router.get("/tokens", tags=["tokens"])
def list_tokens(session: SessionDep, include_revoked: bool = False) -> TokenList:
    return tokens.list_tokens(session, include_revoked=include_revoked)


@router.delete("/tokens/{token_id}", tags=["tokens"])
def revoke_token(
    session: SessionDep, caller: CallerDep, principals: PrincipalCacheDep, token_id: str
) -> TokenOut:
    """Revoke a token: this process forgets it at once, other replicas within
    `LORRY_PRINCIPAL_CACHE_S`."""
    return tokens.revoke_token(session, caller, token_id, on_revoked=principals.forget)


@router.post("/policies", status_code=201, tags=["policies"])
def create_policy(session: SessionDep, caller: CallerDep, body: PolicyCreate) -> PolicyOut:
    """Protect aliases: matching ones need the `promote` scope (and a reason) to move."""
    return policies.create_policy(session, caller, body)


@router.get("/policies", tags=["policies"])
def list_policies(session: SessionDep, visible: VisibilityDep) -> PolicyList:
    """The rules that may apply to a repository the caller may read."""
    return policies.list_policies(session, visible)


@router.delete("/policies/{policy_id}", status_code=204, response_class=Response, tags=["policies"])
def delete_policy(session: SessionDep, caller: CallerDep, policy_id: int) -> Response:
    policies.delete_policy(session, caller, policy_id)
    return Response(status_code=204)


@router.get("/repos/{namespace}/{name}/aliases/{alias}/at", tags=["aliases"])
def alias_at(
    session: SessionDep,
    namespace: str,
    name: str,
    alias: str,
    time: Annotated[datetime, Query(description="ISO 8601; UTC when no offset is given")],
) -> AliasAt:
    """The version the alias pointed to at `time` (from the audit log)."""
    return alias_time.alias_at(session, namespace, name, alias, time)


def _gc(
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    grace_minutes: int | None,
    delete: bool,
) -> GcReport:
    return gc.collect_garbage(
        session,
        store,
        caller,
        delete_blobs=delete,
        grace_minutes=settings.gc_grace_minutes if grace_minutes is None else grace_minutes,
        scratch_dir=settings.tmp_dir,
    )


@router.get("/gc", tags=["gc"])
async def gc_dry_run(
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    grace_minutes: Annotated[int | None, Query(ge=0, le=525_600)] = None,
) -> GcReport:
    """Blobs that no version references (older than the grace period); deletes nothing."""
    return await run_in_threadpool(_gc, session, store, settings, caller, grace_minutes, False)


@router.post("/gc", tags=["gc"])
async def gc_delete(
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    grace_minutes: Annotated[int | None, Query(ge=0, le=525_600)] = None,
) -> GcReport:
    """Delete the blobs that no version references (older than the grace period)."""
    return await run_in_threadpool(_gc, session, store, settings, caller, grace_minutes, True)
