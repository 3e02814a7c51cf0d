"""Audit verification and signed checkpoints of the audit chain's head.

``GET /audit/verify`` needs ``read`` on every namespace and ``POST
/audit/checkpoints`` ``admin`` on every namespace (``registry.api.auth``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from registry.api.deps import PrincipalDep, SessionDep
from registry.schemas.trust import AuditVerification, CheckpointOut
from registry.services.audit_checkpoints import CheckpointSetup, write_checkpoint
from registry.services.audit_verify import VerificationCache, verify_audit

router = APIRouter(prefix="/audit", tags=["audit"])


def _setup(request: Request) -> CheckpointSetup:
    setup: CheckpointSetup = request.app.state.audit_checkpoints
    return setup


def _cache(request: Request) -> VerificationCache:
    cache: VerificationCache = request.app.state.audit_verify_cache
    return cache


SetupDep = Annotated[CheckpointSetup, Depends(_setup)]
CacheDep = Annotated[VerificationCache, Depends(_cache)]


@router.get("/verify")
def verify_audit_log(
    session: SessionDep,
    principal: PrincipalDep,
    setup: SetupDep,
    cache: CacheDep,
    fresh: Annotated[
        bool, Query(description="Walk now instead of serving a recent result (admin only).")
    ] = False,
) -> AuditVerification:
    """Walk the audit hash chain and check it against the newest signed checkpoints.

    `problem` names the first edited, removed, reordered or inserted event, or the
    checkpoint that proves a truncation or rewrite; a result younger than
    `LORRY_AUDIT_VERIFY_INTERVAL_S` is served again (`cached`)."""
    return cache.verify(principal, lambda: verify_audit(session, setup), fresh=fresh)


@router.post("/checkpoints", status_code=201)
def create_checkpoint(session: SessionDep, setup: SetupDep) -> CheckpointOut:
    """Sign the chain's head now and write it to every checkpoint target."""
    checkpoint = write_checkpoint(session, setup, only_if_moved=False)
    assert checkpoint is not None
    return checkpoint
