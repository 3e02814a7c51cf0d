"""Webhook subscriptions, their delivery log, test pings and redelivery."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from registry.db import begin_write
from registry.errors import DeliveryNotFound, InvalidInput, WebhookNotFound
from registry.schemas.outbox import (
    PING,
    WEBHOOK_EVENTS,
    DeliveryAttempt,
    DeliveryList,
    DeliveryOut,
    EventPayload,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
)
from registry.services.audit import Caller
from registry.services.egress import EgressRules, check_destination
from registry.services.outbox import add_delivery, new_id
from registry.services.visibility import EVERYTHING, Visibility
from registry.services.webhook_signing import new_secret
from registry.tables import OutboxDelivery, WebhookSubscription, utcnow

_NAME_GLOB = re.compile(r"^[A-Za-z0-9._*?\[\]-]+$")


def webhook_out(row: WebhookSubscription) -> WebhookOut:
    assert row.id is not None
    return WebhookOut(
        id=row.id,
        namespace=row.namespace,
        repositories=row.repositories,
        events=list(row.events),
        url=row.url,
        description=row.description,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def delivery_out(row: OutboxDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        event_id=row.event_id,
        event=row.event,
        repository=row.repository,
        webhook_id=row.subscription_id,
        deployment_id=row.target_id,
        state=row.state,  # type: ignore[arg-type]
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.state == "pending" else None,
        last_status=row.last_status,
        last_error=row.last_error,
        log=[DeliveryAttempt.model_validate(entry) for entry in row.log],
        redelivery_of=row.redelivery_of,
        created_at=row.created_at,
        finished_at=row.finished_at,
        payload=row.payload,
    )


def _check_request(request: WebhookCreate, rules: EgressRules) -> None:
    unknown = sorted(set(request.events) - set(WEBHOOK_EVENTS))
    if unknown:
        raise InvalidInput(
            f"unknown webhook event(s) {', '.join(unknown)}; known: {', '.join(WEBHOOK_EVENTS)}"
        )
    if not _NAME_GLOB.match(request.repositories):
        raise InvalidInput(
            f"repositories {request.repositories!r} is not a glob over repository names of the "
            "namespace; write e.g. '*' or 'sql-*'"
        )
    check_destination(request.url, rules)


def create_webhook(
    session: Session, namespace: str, request: WebhookCreate, rules: EgressRules, caller: Caller
) -> WebhookCreated:
    _check_request(request, rules)
    secret = request.secret or new_secret()
    row = WebhookSubscription(
        namespace=namespace,
        repositories=request.repositories,
        events=sorted(set(request.events)),
        url=request.url,
        secret=secret,
        description=request.description,
        created_by=caller.actor,
        created_at=utcnow(),
    )
    begin_write(session)
    try:
        session.add(row)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return WebhookCreated(**webhook_out(row).model_dump(), secret=secret)


def list_webhooks(session: Session, visible: Visibility = EVERYTHING) -> WebhookList:
    rows = session.exec(
        select(WebhookSubscription)
        .where(visible.where(col(WebhookSubscription.namespace), repository=False))
        .order_by(col(WebhookSubscription.id))
    ).all()
    return WebhookList(items=[webhook_out(row) for row in rows])


def _find_webhook(session: Session, namespace: str, webhook_id: int) -> WebhookSubscription:
    row = session.get(WebhookSubscription, webhook_id)
    if row is None or row.namespace != namespace:
        raise WebhookNotFound(
            f"namespace {namespace!r} has no webhook {webhook_id}; list them with "
            "`lorry webhook ls`"
        )
    return row


def get_webhook(session: Session, namespace: str, webhook_id: int) -> WebhookOut:
    return webhook_out(_find_webhook(session, namespace, webhook_id))


def delete_webhook(session: Session, namespace: str, webhook_id: int) -> None:
    """Remove the subscription and its deliveries, pending ones included."""
    begin_write(session)
    try:
        session.delete(_find_webhook(session, namespace, webhook_id))
        session.commit()
    except BaseException:
        session.rollback()
        raise


def ping_webhook(session: Session, namespace: str, webhook_id: int, caller: Caller) -> DeliveryOut:
    """Queue a ``ping`` delivery to the webhook (sent by the outbox workers like any other)."""
    begin_write(session)
    try:
        row = _find_webhook(session, namespace, webhook_id)
        event_id = new_id()
        payload = EventPayload(
            event_id=event_id,
            type=PING,
            at=utcnow(),
            actor=caller.actor,
            repository=None,
            target=f"webhook:{webhook_id}",
            after={"webhook": webhook_id, "url": row.url},
            request_id=caller.request_id,
        ).model_dump(mode="json", by_alias=True)
        delivery_id = add_delivery(
            session,
            event_id=event_id,
            event=PING,
            repository=None,
            payload=payload,
            subscription_id=row.id,
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return _delivery(session, delivery_id)


def _delivery(session: Session, delivery_id: str) -> DeliveryOut:
    row = session.get(OutboxDelivery, delivery_id)
    assert row is not None
    return delivery_out(row)


def list_deliveries(
    session: Session,
    namespace: str,
    webhook_id: int,
    *,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> DeliveryList:
    _find_webhook(session, namespace, webhook_id)
    conditions: list[Any] = [col(OutboxDelivery.subscription_id) == webhook_id]
    if state is not None:
        conditions.append(col(OutboxDelivery.state) == state)
    total = session.exec(select(func.count()).select_from(OutboxDelivery).where(*conditions)).one()
    rows = session.exec(
        select(OutboxDelivery)
        .where(*conditions)
        .order_by(col(OutboxDelivery.created_at).desc(), col(OutboxDelivery.id))
        .limit(limit)
        .offset(offset)
    ).all()
    return DeliveryList(items=[delivery_out(row) for row in rows], total=total)


def redeliver(session: Session, namespace: str, webhook_id: int, delivery_id: str) -> DeliveryOut:
    """Send a delivery again, as a new delivery (new id, same ``event_id`` and payload)."""
    begin_write(session)
    try:
        _find_webhook(session, namespace, webhook_id)
        original = session.get(OutboxDelivery, delivery_id)
        if original is None or original.subscription_id != webhook_id:
            raise DeliveryNotFound(
                f"webhook {webhook_id} has no delivery {delivery_id!r}; list them with "
                f"`lorry webhook deliveries {namespace} {webhook_id}`"
            )
        copy_id = add_delivery(
            session,
            event_id=original.event_id,
            event=original.event,
            repository=original.repository,
            payload=original.payload,
            subscription_id=webhook_id,
            redelivery_of=original.id,
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return _delivery(session, copy_id)
