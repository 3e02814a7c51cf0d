"""archived repositories, and tombstones of deleted versions and repositories

Revision ID: 0013_archive
Revises: 0012_evals
Create Date: 2026-12-03 04:30:00

``repositories`` gains ``archived_at``, ``archived_by`` and ``archive_reason`` (set while a
repository is archived). ``tombstones`` keeps, for each deleted version (``version`` set)
or repository (``version`` NULL), who deleted it, when and why: reads of it answer with
that, and a deleted version's number is never given again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_archive"
down_revision: str | Sequence[str] | None = "0012_evals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        batch.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("archived_by", sa.String(255), nullable=True))
        batch.add_column(sa.Column("archive_reason", sa.Text(), nullable=True))
    op.create_table(
        "tombstones",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("repository", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("deleted_by", sa.String(255), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index(
        "ix_tombstones_repository_version", "tombstones", ["repository", "version"]
    )


def downgrade() -> None:
    op.drop_index("ix_tombstones_repository_version", "tombstones")
    op.drop_table("tombstones")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("archive_reason")
        batch.drop_column("archived_by")
        batch.drop_column("archived_at")
