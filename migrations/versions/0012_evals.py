"""evaluation results on versions, and evaluation gates on protected aliases

Revision ID: 0012_evals
Revises: 0011_outbox
Create Date: 2026-12-02 22:45:00

``eval_documents`` keeps each evaluation document as it was sent (lm-evaluation-harness
JSON, a plain document, a card's ``model-index``, an ``.eval_results`` file);
``eval_results`` holds one row per task, metric and filter, bound to the version's
digest. Both are insert only. ``alias_policies`` gains the evidence a rule requires:
thresholds (``requirements``) and metrics that may not regress (``no_regression``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_evals"
down_revision: str | Sequence[str] | None = "0011_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "eval_documents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey("versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("path", sa.String(1024), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_eval_documents_version_id", "eval_documents", ["version_id"])
    op.create_table(
        "eval_results",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "document_id",
            sa.Integer(),
            sa.ForeignKey("eval_documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey("versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("filter", sa.String(200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("stderr", sa.Float(), nullable=True),
        sa.Column("n_shot", sa.Integer(), nullable=True),
        sa.Column("higher_is_better", sa.Boolean(), nullable=True),
        sa.Column("dataset", sa.String(512), nullable=True),
        sa.Column("split", sa.String(200), nullable=True),
        sa.Column("revision", sa.String(200), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_eval_results_version_task_metric", "eval_results", ["version_id", "task", "metric"]
    )
    with op.batch_alter_table("alias_policies") as batch:
        batch.add_column(
            sa.Column("requirements", sa.JSON(), nullable=False, server_default="[]")
        )
        batch.add_column(
            sa.Column("no_regression", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("alias_policies") as batch:
        batch.drop_column("no_regression")
        batch.drop_column("requirements")
    op.drop_index("ix_eval_results_version_task_metric", "eval_results")
    op.drop_table("eval_results")
    op.drop_index("ix_eval_documents_version_id", "eval_documents")
    op.drop_table("eval_documents")
