"""export merge: a merged export (adapter merged into a base model) links its base version

Revision ID: 0014_export_merge
Revises: 0012_evals
Create Date: 2026-12-03 04:30:00

An export of an adapter version may be the adapter merged into a base model (one GGUF
model file). ``version_exports.merged_into_version_id`` names that base version, so
that the base's export listing shows what was merged into it; the export's lineage
keeps the base's repository, version and digest whatever happens to the base later
(``SET NULL`` when the base version is deleted). Existing rows are not merges: NULL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_export_merge"
down_revision: str | Sequence[str] | None = "0013_archive"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("version_exports") as batch:
        batch.add_column(sa.Column("merged_into_version_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_version_exports_merged_into_version_id",
            "versions",
            ["merged_into_version_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(
            "ix_version_exports_merged_into_version_id", ["merged_into_version_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("version_exports") as batch:
        batch.drop_index("ix_version_exports_merged_into_version_id")
        batch.drop_constraint("fk_version_exports_merged_into_version_id", type_="foreignkey")
        batch.drop_column("merged_into_version_id")
