"""``audit verify``: the hash chain and the newest signed checkpoints, in one streamed walk.

The walk reads every event once, one batch at a time, so its cost grows with
the log. ``VerificationCache`` keeps the service from walking on every
request: one walk at a time (concurrent callers wait for it and share its
result), and a result younger than ``LORRY_AUDIT_VERIFY_INTERVAL_S`` is
served again; only an ``admin`` on every namespace may ask for a fresh walk.
So however many callers ask, the service walks at most once per interval
(plus once per admin request).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlmodel import Session

from registry.errors import Forbidden
from registry.schemas.trust import AuditVerification, ChainProblemOut, CheckpointCheckOut
from registry.services.audit_anchors import Anchor
from registry.services.audit_chain import ChainReport, verify_chain
from registry.services.audit_checkpoints import CheckpointSetup, Rejected, read_checkpoints
from registry.services.principals import ADMIN, Principal


def verify_audit(session: Session, setup: CheckpointSetup) -> AuditVerification:
    """Walk the chain; check it against the newest checkpoints of every readable target."""
    anchors: list[Anchor] = []
    rejected: list[Rejected] = []
    if setup.verifiers:
        anchors, rejected = read_checkpoints(setup.targets, setup.verifiers, setup.newest)
    report = verify_chain(session, batch=setup.batch, anchors=anchors)
    checks = [_confirmed(anchor) for anchor in report.confirmed]
    checks += [
        _check(problem.anchor, problem.kind, problem.message) for problem in report.anchor_problems
    ]
    checks += [
        CheckpointCheckOut(location=r.location, status=r.kind, message=r.message)  # type: ignore[arg-type]
        for r in rejected
    ]
    checks.sort(key=lambda c: c.signed_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return AuditVerification(
        ok=report.ok and not rejected,
        events=report.events,
        head_hash=report.head_hash,
        head_event_id=report.head_event_id,
        problem=_problem(report, rejected),
        anchored=bool(report.confirmed),
        checkpoints=checks,
        warnings=_warnings(setup, report, anchors, rejected),
        verified_at=datetime.now(UTC),
    )


def _confirmed(anchor: Anchor) -> CheckpointCheckOut:
    return _check(anchor, "confirmed", None)


def _check(anchor: Anchor, status: str, message: str | None) -> CheckpointCheckOut:
    checkpoint = anchor.checkpoint
    return CheckpointCheckOut(
        location=anchor.location,
        status=status,  # type: ignore[arg-type]
        event_id=checkpoint.event_id,
        size=checkpoint.size,
        head_hash=checkpoint.head_hash,
        signed_at=checkpoint.signed_at,
        message=message,
    )


def _problem(report: ChainReport, rejected: list[Rejected]) -> ChainProblemOut | None:
    if report.problem is not None:
        return ChainProblemOut(
            kind=report.problem.kind,  # type: ignore[arg-type]
            event_id=report.problem.event_id,
            message=report.problem.message,
        )
    if report.anchor_problems:
        first = report.anchor_problems[0]
        return ChainProblemOut(
            kind=first.kind,  # type: ignore[arg-type]
            event_id=first.anchor.checkpoint.event_id,
            message=first.message,
            checkpoint=first.anchor.location,
        )
    if rejected:
        return ChainProblemOut(
            kind=rejected[0].kind,  # type: ignore[arg-type]
            event_id=None,
            message=f"checkpoint {rejected[0].location} is rejected: {rejected[0].message}",
            checkpoint=rejected[0].location,
        )
    return None


def _warnings(
    setup: CheckpointSetup, report: ChainReport, anchors: list[Anchor], rejected: list[Rejected]
) -> list[str]:
    readable = [t for t in setup.targets if t.readable]
    if not readable:
        return [
            "no readable checkpoint target (LORRY_AUDIT_CHECKPOINT_TARGETS or --checkpoints): "
            "only the chain was checked, and whoever holds the database can rewrite it"
        ]
    if not setup.verifiers:
        return [
            "no public key (LORRY_AUDIT_PUBLIC_KEYS or --public-key): checkpoints cannot be checked"
        ]
    if not anchors and not rejected and report.head_event_id is not None:
        where = ", ".join(t.location for t in readable)
        return [f"no checkpoint found in {where}: the log is not anchored yet"]
    return []


class VerificationCache:
    """One walk at a time; a result younger than ``interval_s`` is served again."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._result: AuditVerification | None = None
        self._at = 0.0

    def verify(
        self,
        principal: Principal,
        walk: Callable[[], AuditVerification],
        *,
        fresh: bool = False,
    ) -> AuditVerification:
        if fresh and not principal.allows(ADMIN):
            raise Forbidden(
                "only an admin on every namespace may ask for a fresh audit walk (fresh=true); "
                "without it the newest result is served"
            )
        with self._lock:
            result = self._result
            if not fresh and result is not None and time.monotonic() - self._at < self.interval_s:
                return result.model_copy(update={"cached": True})
            result = walk()
            self._result, self._at = result, time.monotonic()
            return result
