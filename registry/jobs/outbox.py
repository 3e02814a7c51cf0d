"""The outbox workers: a thread of ``lorry serve`` and ``lorry worker`` that sends due
deliveries (``registry.services.outbox``), at least once.

A worker claims one due row at a time in a short write transaction (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so replicas never take the same row; SQLite's write lock does
the same): the claim counts the attempt and moves ``next_attempt_at`` one lease into the
future, so a delivery whose worker died is taken up again when the lease ends. The
request goes out with no transaction open; the outcome is written only while the claim
still holds. A failed attempt is retried after an exponential backoff with jitter, or
after the receiver's ``Retry-After`` when that is longer; after
``LORRY_OUTBOX_MAX_ATTEMPTS`` attempts the delivery is ``failed``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from registry.config import Settings
from registry.db import begin_write
from registry.errors import LorryError
from registry.services.egress import EgressRules, check_destination
from registry.services.outbox import (
    DEPLOYMENT_FAIL,
    DEPLOYMENT_SUCCEED,
    new_id,
    record_deployment_event,
)
from registry.services.target_kinds import (
    Outgoing,
    PermanentFailure,
    Superseded,
    target_kind,
)
from registry.services.webhook_signing import signed_headers
from registry.tables import DeploymentTarget, OutboxDelivery, WebhookSubscription, utcnow

logger = logging.getLogger(__name__)

LEASE_MARGIN_S = 30.0
ACTOR = "system"
USER_AGENT = "Lorry-Outbox/1"


@dataclass(frozen=True)
class Claim:
    id: str
    token: str
    attempts: int
    event: str
    payload: dict[str, Any]
    subscription_id: int | None
    target_id: int | None


@dataclass(frozen=True)
class Outcome:
    state: str
    """``succeeded``, ``retry``, ``failed`` or ``superseded``."""
    status: int | None = None
    error: str | None = None
    ms: int = 0
    retry_after_s: float | None = None


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


def backoff_s(settings: Settings, attempts: int, retry_after_s: float | None) -> float:
    exponential = float(settings.outbox_backoff_s * 2 ** max(0, attempts - 1))
    delay = min(settings.outbox_backoff_max_s, exponential) * random.uniform(0.5, 1.0)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(settings.outbox_backoff_max_s, delay)


class OutboxWorker:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(
            timeout=settings.outbox_timeout_s,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    def start(self) -> None:
        if not self.settings.outbox_worker:
            return
        self._thread = threading.Thread(target=self._run, name="lorry-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.outbox_timeout_s + 5)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                logger.exception("outbox worker: a delivery round failed; trying again")
                busy = False
            if not busy:
                self._stop.wait(self.settings.outbox_poll_s)

    def run_once(self) -> bool:
        """Claim and send one due delivery; whether there was one."""
        claim = self._claim()
        if claim is None:
            return False
        outcome = self._deliver(claim)
        self._finish(claim, outcome)
        return True

    def _due(self) -> bool:
        """Whether a delivery is due, read without the write lock (which an idle poll on
        SQLite would otherwise take every ``outbox_poll_s``)."""
        with Session(self.engine) as session:
            return (
                session.exec(
                    select(OutboxDelivery.id)
                    .where(
                        OutboxDelivery.state == "pending",
                        col(OutboxDelivery.next_attempt_at) <= utcnow(),
                    )
                    .limit(1)
                ).first()
                is not None
            )

    def _claim(self) -> Claim | None:
        if not self._due():
            return None
        lease = timedelta(seconds=self.settings.outbox_timeout_s + LEASE_MARGIN_S)
        with Session(self.engine) as session:
            try:
                begin_write(session)
                now = utcnow()
                row = session.exec(
                    select(OutboxDelivery)
                    .where(
                        OutboxDelivery.state == "pending",
                        col(OutboxDelivery.next_attempt_at) <= now,
                    )
                    .order_by(col(OutboxDelivery.next_attempt_at))
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    session.rollback()
                    return None
                row.claimed_by = new_id()
                row.attempts += 1
                row.next_attempt_at = now + lease
                session.add(row)
                claim = Claim(
                    id=row.id,
                    token=row.claimed_by,
                    attempts=row.attempts,
                    event=row.event,
                    payload=dict(row.payload),
                    subscription_id=row.subscription_id,
                    target_id=row.target_id,
                )
                session.commit()
                return claim
            except BaseException:
                session.rollback()
                raise

    def _request(self, session: Session, claim: Claim) -> Outgoing:
        if claim.target_id is not None:
            target = session.get(DeploymentTarget, claim.target_id)
            if target is None:
                raise PermanentFailure("the deployment target was removed")
            kind = target_kind(target.kind)
            return kind.rollout_request(session, target, claim.payload, claim.id)
        subscription = session.get(WebhookSubscription, claim.subscription_id)
        if subscription is None:
            raise PermanentFailure("the webhook was removed")
        body = json.dumps(claim.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = signed_headers(subscription.secret, claim.id, claim.event, body)
        return Outgoing(subscription.url, body, headers)

    def _deliver(self, claim: Claim) -> Outcome:
        try:
            with Session(self.engine) as session:
                outgoing = self._request(session, claim)
            # Read per delivery: the rules in force when it is sent are the ones that count.
            check_destination(outgoing.url, EgressRules.from_settings(self.settings))
        except Superseded:
            return Outcome("superseded", error="the alias moved again; a newer rollout follows")
        except PermanentFailure as exc:
            return Outcome("failed", error=str(exc))
        except LorryError as exc:
            return Outcome("retry", error=exc.message)
        started = time.monotonic()
        try:
            response = self._client.post(
                outgoing.url, content=outgoing.body, headers=outgoing.headers
            )
        except httpx.HTTPError as exc:
            ms = int((time.monotonic() - started) * 1000)
            return Outcome("retry", error=f"{type(exc).__name__}: {exc}", ms=ms)
        ms = int((time.monotonic() - started) * 1000)
        if 200 <= response.status_code < 300:
            return Outcome("succeeded", status=response.status_code, ms=ms)
        return Outcome(
            "retry",
            status=response.status_code,
            error=f"HTTP {response.status_code}: {response.text[:500]}",
            ms=ms,
            retry_after_s=retry_after_seconds(response.headers.get("retry-after"), utcnow()),
        )

    def _finish(self, claim: Claim, outcome: Outcome) -> None:
        with Session(self.engine) as session:
            try:
                begin_write(session)
                row = session.exec(
                    select(OutboxDelivery)
                    .where(OutboxDelivery.id == claim.id, OutboxDelivery.claimed_by == claim.token)
                    .with_for_update()
                ).first()
                if row is None or row.state != "pending":
                    session.rollback()  # superseded meanwhile, or the claim expired
                    return
                self._record(session, row, outcome)
                session.commit()
            except BaseException:
                session.rollback()
                raise
        log = logger.info if outcome.state == "succeeded" else logger.warning
        log("delivery %s (%s): %s %s", claim.id, claim.event, outcome.state, outcome.error or "")

    def _record(self, session: Session, row: OutboxDelivery, outcome: Outcome) -> None:
        now = utcnow()
        entry = {"at": now.isoformat(), "status": outcome.status, "error": outcome.error}
        row.log = [*row.log, {**entry, "ms": outcome.ms}]
        row.last_status, row.last_error = outcome.status, outcome.error
        row.claimed_by = None
        state = outcome.state
        if state == "retry" and row.attempts >= self.settings.outbox_max_attempts:
            state = "failed"
            row.last_error = f"{outcome.error} (gave up after {row.attempts} attempts)"
        if state == "retry":
            delay = backoff_s(self.settings, row.attempts, outcome.retry_after_s)
            row.next_attempt_at = now + timedelta(seconds=delay)
        else:
            row.state = state
            row.finished_at = now
        session.add(row)
        if row.target_id is not None:
            target = session.get(DeploymentTarget, row.target_id)
            if target is not None:
                self._update_target(session, target, row, state, now)

    def _update_target(
        self,
        session: Session,
        target: DeploymentTarget,
        row: OutboxDelivery,
        state: str,
        now: datetime,
    ) -> None:
        target.last_attempt_at = now
        version = row.payload.get("version")
        after = {"deployment": target.id, "delivery": row.id, "version": version}
        if state == "succeeded":
            target.served_version = version
            target.served_digest = row.payload.get("digest")
            target.served_since = now
            target.last_error = None
            record_deployment_event(
                session, DEPLOYMENT_SUCCEED, target, actor=ACTOR, after={**after, "url": target.url}
            )
        elif state == "retry":
            target.last_error = (
                f"{row.last_error} (attempt {row.attempts} of "
                f"{self.settings.outbox_max_attempts}; retrying)"
            )
        elif state == "failed":
            target.last_error = row.last_error
            record_deployment_event(
                session,
                DEPLOYMENT_FAIL,
                target,
                actor=ACTOR,
                after={**after, "error": row.last_error, "attempts": row.attempts},
            )
        session.add(target)
