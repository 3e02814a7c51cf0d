"""base model link: an adapter's base model as a model repository of the registry

Revision ID: 0007_base_model_link
Revises: 0005_exports
Create Date: 2026-12-02 18:00:00

``repositories.base_model_link`` is the repository setting (``NAMESPACE/NAME[@REF]``)
that Hub commits use; ``versions.base_model_link`` is the link each adapter version
got when it was published (``registry.services.base_models``). Both are nullable:
existing rows keep no link, and versions whose ``base_model_name_or_path`` names a
model repository are still linked where the link is read (exports).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_base_model_link"
down_revision: str | Sequence[str] | None = "0005_exports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        batch.add_column(sa.Column("base_model_link", sa.String(512), nullable=True))
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("base_model_link", sa.String(512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("base_model_link")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("base_model_link")
