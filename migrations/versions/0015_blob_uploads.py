"""blob uploads: which namespace received which blob's bytes

Revision ID: 0015_blob_uploads
Revises: 0014_export_merge
Create Date: 2026-12-03 05:25:00

Blobs are stored once for every namespace. A version may name a blob only if its
namespace holds it: a version or export of the namespace references it, or the
server received its bytes for the namespace (a row here; ``registry.services.
blob_claims``). Existing blobs are held through the versions that reference them,
so the table starts empty.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_blob_uploads"
down_revision: str | Sequence[str] | None = "0014_export_merge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blob_uploads",
        sa.Column("namespace", sa.String(96), primary_key=True),
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_blob_uploads_sha256", "blob_uploads", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_blob_uploads_sha256", table_name="blob_uploads")
    op.drop_table("blob_uploads")
