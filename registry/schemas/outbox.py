"""API schemas of webhooks, deployment targets and outbox deliveries, and the payload that
receivers get (``EventPayload``, ``"schema": 1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from registry.schemas.base import Schema

WEBHOOK_EVENTS = (
    "version.publish",
    "alias.set",
    "alias.delete",
    "composition.succeed",
    "composition.fail",
    "export.succeed",
    "export.fail",
    "deployment.request",
    "deployment.succeed",
    "deployment.fail",
    "repository.archive",
    "repository.unarchive",
    "version.delete",
    "repository.delete",
)
"""Audit actions that a webhook may subscribe to; ``ping`` is sent by ``webhook test`` only."""
PING = "ping"

DeliveryState = Literal["pending", "succeeded", "failed", "superseded"]


class EventPayload(Schema):
    """The JSON body of a webhook delivery. ``schema`` changes only when a field changes
    meaning or goes away; new fields may be added within a schema."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal[1] = Field(default=1, alias="schema")
    event_id: str
    """Shared by every delivery of one event (deduplicate on it)."""
    type: str
    """The audit action: ``alias.set``, ``version.publish``, ``ping`` ..."""
    at: datetime
    actor: str
    repository: str | None
    target: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    request_id: str | None = None


class WebhookCreate(Schema):
    url: str = Field(max_length=2048)
    events: list[str] = Field(min_length=1, max_length=len(WEBHOOK_EVENTS))
    repositories: str = Field(default="*", min_length=1, max_length=200)
    """A glob over the repository names of the namespace."""
    secret: str | None = Field(default=None, min_length=16, max_length=255)
    """Default: a random secret, returned once in the response."""
    description: str | None = Field(default=None, max_length=2000)


class WebhookOut(Schema):
    id: int
    namespace: str
    repositories: str
    events: list[str]
    url: str
    description: str | None
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str
    """Shown here only: Lorry never returns it again."""


class WebhookList(Schema):
    items: list[WebhookOut]


class DeliveryAttempt(Schema):
    at: datetime
    status: int | None
    error: str | None
    ms: int


class DeliveryOut(Schema):
    id: str
    event_id: str
    event: str
    repository: str | None
    webhook_id: int | None
    deployment_id: int | None
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    log: list[DeliveryAttempt]
    redelivery_of: str | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]


class DeliveryList(Schema):
    items: list[DeliveryOut]
    total: int


class DeploymentCreate(Schema):
    alias: str = Field(min_length=1, max_length=64)
    kind: str = Field(default="vllm", max_length=32)
    url: str = Field(max_length=2048)
    lora_name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._:@/-]+$")
    """The name the server serves the adapter under (vLLM's ``lora_name``)."""


class DeploymentOut(Schema):
    id: int
    repository: str
    alias: str
    kind: str
    url: str
    lora_name: str
    alias_version: int | None
    """Where the alias points now (``None``: it does not exist)."""
    served_version: int | None
    """The version the target confirmed loading last; ``None`` before the first rollout."""
    served_digest: str | None
    served_since: datetime | None
    last_error: str | None
    last_attempt_at: datetime | None
    pending: int
    """Rollouts not yet delivered (retrying when ``last_error`` is set)."""
    created_by: str
    created_at: datetime
    secret: str | None = None
    """The signing secret of a ``webhook`` target: in the response that creates it, only."""


class DeploymentList(Schema):
    items: list[DeploymentOut]
