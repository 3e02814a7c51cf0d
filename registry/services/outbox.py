"""The outbox: messages written in the transaction of the change they report.

``enqueue_for_event`` is called by ``record_event`` for every audit event: when the
event is one that webhooks subscribe to, a delivery row is added for each matching
subscription; when it moves or deletes an alias that deployment targets follow, a
rollout row is added for each target (with its ``deployment.request`` event). The rows
commit, or vanish, with the change; the workers of ``registry.jobs.outbox`` send them.
A change never waits for a delivery.
"""

from __future__ import annotations

import uuid
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import insert, update
from sqlmodel import Session, col, select

from registry.schemas.outbox import WEBHOOK_EVENTS, EventPayload
from registry.services.audit_chain import defer_event
from registry.tables import (
    AuditEvent,
    DeploymentTarget,
    OutboxDelivery,
    Repository,
    Version,
    WebhookSubscription,
    utcnow,
)

ROLLOUT = "deployment.rollout"
"""The ``event`` of a rollout delivery (its payload's ``action`` is ``load`` or ``unload``)."""
DEPLOYMENT_REQUEST = "deployment.request"
DEPLOYMENT_SUCCEED = "deployment.succeed"
DEPLOYMENT_FAIL = "deployment.fail"
_ALIAS_EVENTS = ("alias.set", "alias.delete")


def new_id() -> str:
    return uuid.uuid4().hex


def event_payload(event: AuditEvent, event_id: str) -> dict[str, Any]:
    payload = EventPayload(
        event_id=event_id,
        type=event.action,
        at=event.at,
        actor=event.actor,
        repository=event.repository,
        target=event.target,
        before=event.before,
        after=event.after,
        request_id=event.request_id,
    )
    return payload.model_dump(mode="json", by_alias=True)


def delivery_row(
    *,
    event_id: str,
    event: str,
    repository: str | None,
    payload: dict[str, Any],
    subscription_id: int | None = None,
    target_id: int | None = None,
    redelivery_of: str | None = None,
) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": new_id(),
        "event_id": event_id,
        "event": event,
        "repository": repository,
        "subscription_id": subscription_id,
        "target_id": target_id,
        "payload": payload,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "log": [],
        "redelivery_of": redelivery_of,
        "created_at": now,
    }


def add_deliveries(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert delivery rows (``delivery_row``) in the session's transaction, in one
    statement: an event watched by many webhooks costs one round trip, not one ORM
    object each (``bench/outbox.py``)."""
    if rows:
        session.connection().execute(insert(OutboxDelivery.__table__), rows)  # type: ignore[attr-defined]


def add_delivery(session: Session, **fields: Any) -> str:
    """Insert one delivery (the fields of ``delivery_row``); its id."""
    row = delivery_row(**fields)
    add_deliveries(session, [row])
    return str(row["id"])


_SUBSCRIPTIONS = select(
    col(WebhookSubscription.id),
    col(WebhookSubscription.events),
    col(WebhookSubscription.repositories),
)


def _matching_subscriptions(session: Session, event: AuditEvent) -> list[int]:
    if event.repository is None or "/" not in event.repository:
        return []
    namespace, name = event.repository.split("/", 1)
    rows = session.exec(_SUBSCRIPTIONS.where(WebhookSubscription.namespace == namespace)).all()
    return [
        subscription_id
        for subscription_id, events, pattern in rows
        if subscription_id is not None and event.action in events and fnmatchcase(name, pattern)
    ]


def enqueue_for_event(session: Session, event: AuditEvent) -> None:
    """Add the deliveries that ``event`` causes to the session (module docstring)."""
    if event.action in WEBHOOK_EVENTS:
        subscriptions = _matching_subscriptions(session, event)
        if subscriptions:
            event_id = new_id()
            payload = event_payload(event, event_id)
            rows = [
                delivery_row(
                    event_id=event_id,
                    event=event.action,
                    repository=event.repository,
                    payload=payload,
                    subscription_id=subscription_id,
                )
                for subscription_id in subscriptions
            ]
            add_deliveries(session, rows)
    if event.action in _ALIAS_EVENTS and event.repository is not None:
        alias = event.target.rsplit("@", 1)[-1]
        version = (event.after or {}).get("version")
        targets = session.exec(
            select(DeploymentTarget).where(
                DeploymentTarget.repository == event.repository, DeploymentTarget.alias == alias
            )
        ).all()
        for target in targets:
            request_rollout(
                session, target, version, actor=event.actor, request_id=event.request_id
            )


def _digest_of(session: Session, repository: str, number: int) -> str | None:
    namespace, name = repository.split("/", 1)
    digest = session.exec(
        select(Version.digest)
        .join(Repository, col(Repository.id) == col(Version.repository_id))
        .where(Repository.namespace == namespace, Repository.name == name, Version.number == number)
    ).first()
    return f"sha256:{digest}" if digest is not None else None


def request_rollout(
    session: Session,
    target: DeploymentTarget,
    version: int | None,
    *,
    actor: str,
    request_id: str | None,
) -> str:
    """Queue a rollout of ``version`` (``None``: unload) to ``target``, superseding the
    rollouts of it still pending, and record ``deployment.request``."""
    assert target.id is not None
    session.connection().execute(
        update(OutboxDelivery)
        .where(
            col(OutboxDelivery.target_id) == target.id,
            col(OutboxDelivery.state) == "pending",
        )
        .values(state="superseded", finished_at=utcnow())
    )
    event_id = new_id()
    payload: dict[str, Any] = {
        "schema": 1,
        "event_id": event_id,
        "type": ROLLOUT,
        "action": "unload" if version is None else "load",
        "deployment_id": target.id,
        "repository": target.repository,
        "alias": target.alias,
        "version": version,
        "digest": None if version is None else _digest_of(session, target.repository, version),
        "lora_name": target.lora_name,
    }
    delivery_id = add_delivery(
        session,
        event_id=event_id,
        event=ROLLOUT,
        repository=target.repository,
        payload=payload,
        target_id=target.id,
    )
    record_deployment_event(
        session,
        DEPLOYMENT_REQUEST,
        target,
        actor=actor,
        request_id=request_id,
        after={
            "deployment": target.id,
            "delivery": delivery_id,
            "action": payload["action"],
            "version": version,
            "url": target.url,
            "lora_name": target.lora_name,
        },
    )
    return delivery_id


def record_deployment_event(
    session: Session,
    action: str,
    target: DeploymentTarget,
    *,
    actor: str,
    request_id: str | None = None,
    after: dict[str, Any],
) -> None:
    """A rollout step in the audit log (and to the webhooks that subscribe to it)."""
    event = AuditEvent(
        at=utcnow(),
        actor=actor,
        action=action,
        repository=target.repository,
        target=f"deployment:{target.id}",
        before=None,
        after=after,
        request_id=request_id,
    )
    defer_event(session, event)
    enqueue_for_event(session, event)
