"""access log: pulls leave the audit chain for an append-only, batched table

Revision ID: 0009_access_log
Revises: 0005_exports
Create Date: 2026-12-02 17:45:00

Every file handed out to a client was an audit event ``version.pull``, appended
in a write transaction of its own, which serialized all downloads. Pulls are now
rows of ``access_log`` written in batches (``registry.services.access_log``), and
``download_counts`` keeps the number of files handed out per version, updated in
the same transaction as each batch. Existing ``version.pull`` events stay in the
audit chain as history (rewriting it would break the chain).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_access_log"
down_revision: str | Sequence[str] | None = "0007_base_model_link"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("repository", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("revision", sa.String(255), nullable=False),
        sa.Column("via", sa.String(8), nullable=False),
        sa.Column("redirect", sa.Boolean(), nullable=False),
        sa.Column("byte_range", sa.String(128), nullable=True),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("forwarded_for", sa.String(512), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
    )
    op.create_index("ix_access_log_at", "access_log", ["at"])
    op.create_index("ix_access_log_actor", "access_log", ["actor"])
    op.create_index("ix_access_log_repository_version", "access_log", ["repository", "version"])
    op.create_table(
        "download_counts",
        sa.Column("repository", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("downloads", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("download_counts")
    op.drop_index("ix_access_log_repository_version", "access_log")
    op.drop_index("ix_access_log_actor", "access_log")
    op.drop_index("ix_access_log_at", "access_log")
    op.drop_table("access_log")
