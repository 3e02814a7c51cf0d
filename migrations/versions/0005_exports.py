"""exports: a kind for jobs; derived files (GGUF exports) of versions

Revision ID: 0005_exports
Revises: 0004_compose_jobs
Create Date: 2026-12-01 12:00:00

``compose_jobs.kind`` tells compositions (``compose``, every existing row) from
exports (``export``); both share the table, the queue and the runner. A version's
manifest and digest never change, so an export is not one of its files: it is a
row of ``version_exports`` (version, path, sha256, size, lineage) whose blob lives
in the blob store like any other and is kept by garbage collection.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_exports"
down_revision: str | Sequence[str] | None = "0004_compose_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("compose_jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="compose"))
    op.create_table(
        "version_exports",
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey("versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("outtype", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_version_exports_sha256", "version_exports", ["sha256"])
    op.create_index("ix_version_exports_job_id", "version_exports", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_version_exports_job_id", "version_exports")
    op.drop_index("ix_version_exports_sha256", "version_exports")
    op.drop_table("version_exports")
    with op.batch_alter_table("compose_jobs") as batch:
        batch.drop_column("kind")
