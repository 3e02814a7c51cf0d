"""outbox: webhook subscriptions, deployment targets and the deliveries that leave for them

Revision ID: 0011_outbox
Revises: 0010_jobs
Create Date: 2026-12-02 23:00:00

Webhooks and deployment rollouts leave through a durable outbox: a row of
``outbox_deliveries`` is written in the transaction of the change it reports (an
alias move, a published version, a finished job) and sent by workers afterwards,
at least once, with retries (``registry.jobs.outbox``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_outbox"
down_revision: str | Sequence[str] | None = "0010_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("namespace", sa.String(100), nullable=False),
        sa.Column("repositories", sa.String(200), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_webhook_subscriptions_namespace", "webhook_subscriptions", ["namespace"]
    )
    op.create_table(
        "deployment_targets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("repository", sa.String(200), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("lora_name", sa.String(255), nullable=False),
        sa.Column("secret", sa.String(255), nullable=True),
        sa.Column("served_version", sa.Integer(), nullable=True),
        sa.Column("served_digest", sa.String(71), nullable=True),
        sa.Column("served_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("url", "lora_name", name="uq_deployment_targets_url_name"),
    )
    op.create_index("ix_deployment_targets_repository", "deployment_targets", ["repository"])
    op.create_table(
        "outbox_deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("repository", sa.String(200), nullable=True),
        sa.Column(
            "subscription_id",
            sa.Integer(),
            sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column(
            "target_id",
            sa.Integer(),
            sa.ForeignKey("deployment_targets.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(32), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("log", sa.JSON(), nullable=False),
        sa.Column("redelivery_of", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_outbox_deliveries_event_id", "outbox_deliveries", ["event_id"])
    op.create_index(
        "ix_outbox_deliveries_subscription_id", "outbox_deliveries", ["subscription_id"]
    )
    op.create_index("ix_outbox_deliveries_target_id", "outbox_deliveries", ["target_id"])
    op.create_index("ix_outbox_deliveries_due", "outbox_deliveries", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("outbox_deliveries")
    op.drop_table("deployment_targets")
    op.drop_table("webhook_subscriptions")
