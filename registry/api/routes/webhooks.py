"""Webhook subscriptions of a namespace, their deliveries, test pings and redelivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from registry.api.access import VisibilityDep
from registry.api.deps import CallerDep, SessionDep, SettingsDep
from registry.schemas.outbox import (
    DeliveryList,
    DeliveryOut,
    DeliveryState,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
)
from registry.services import webhooks
from registry.services.egress import EgressRules

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


async def get_egress_rules(settings: SettingsDep) -> EgressRules:
    return EgressRules.from_settings(settings)


EgressDep = Annotated[EgressRules, Depends(get_egress_rules)]


@router.get("")
def list_webhooks(session: SessionDep, visible: VisibilityDep) -> WebhookList:
    return webhooks.list_webhooks(session, visible)


@router.post("/{namespace}", status_code=201)
def create_webhook(
    session: SessionDep, caller: CallerDep, rules: EgressDep, namespace: str, body: WebhookCreate
) -> WebhookCreated:
    return webhooks.create_webhook(session, namespace, body, rules, caller)


@router.get("/{namespace}/{webhook_id}")
def get_webhook(session: SessionDep, namespace: str, webhook_id: int) -> WebhookOut:
    return webhooks.get_webhook(session, namespace, webhook_id)


@router.delete("/{namespace}/{webhook_id}", status_code=204, response_class=Response)
def delete_webhook(session: SessionDep, namespace: str, webhook_id: int) -> Response:
    webhooks.delete_webhook(session, namespace, webhook_id)
    return Response(status_code=204)


@router.post("/{namespace}/{webhook_id}/test", status_code=202)
def test_webhook(
    session: SessionDep, caller: CallerDep, namespace: str, webhook_id: int
) -> DeliveryOut:
    return webhooks.ping_webhook(session, namespace, webhook_id, caller)


@router.get("/{namespace}/{webhook_id}/deliveries")
def list_deliveries(
    session: SessionDep,
    namespace: str,
    webhook_id: int,
    state: DeliveryState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DeliveryList:
    return webhooks.list_deliveries(
        session, namespace, webhook_id, state=state, limit=limit, offset=offset
    )


@router.post("/{namespace}/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202)
def redeliver(
    session: SessionDep, namespace: str, webhook_id: int, delivery_id: str
) -> DeliveryOut:
    return webhooks.redeliver(session, namespace, webhook_id, delivery_id)
