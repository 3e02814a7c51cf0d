"""compose jobs table; procrastinate's queue schema on PostgreSQL

Revision ID: 0004_compose_jobs
Revises: 0003_trust
Create Date: 2026-11-24 23:00:00

Lorry's ``compose_jobs`` table holds each job's state, progress, log and result
on every database. On PostgreSQL the job queue is procrastinate: its tables and
functions are created here, from the schema of the installed procrastinate (3.x),
in their own PostgreSQL schema ``procrastinate`` (Lorry's connections to it set
``search_path``), so that ``lorry db upgrade`` is the one command that prepares
a database and Lorry's own schema stays apart. A procrastinate release that
changes its schema gets a Lorry revision that applies procrastinate's migrations.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_compose_jobs"
down_revision: str | Sequence[str] | None = "0003_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROCRASTINATE_SCHEMA = "procrastinate"


def _apply_procrastinate_schema() -> None:
    from procrastinate.schema import SchemaManager

    # psycopg runs a parameterless multi-statement script as it is (no % escaping);
    # the objects land in PROCRASTINATE_SCHEMA, then the search path is restored.
    connection = op.get_bind().connection.driver_connection
    assert connection is not None
    previous = connection.execute("SHOW search_path").fetchone()[0]
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {PROCRASTINATE_SCHEMA}")
    connection.execute(f"SET LOCAL search_path TO {PROCRASTINATE_SCHEMA}")
    connection.execute(SchemaManager.get_schema())
    connection.execute("SELECT set_config('search_path', %s, true)", (previous,))


def upgrade() -> None:
    op.create_table(
        "compose_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("output_kind", sa.String(16), nullable=False),
        sa.Column("queue", sa.String(16), nullable=False),
        sa.Column("recipe", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("alias", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=False),
        sa.Column("current_module", sa.String(512), nullable=True),
        sa.Column("log", sa.JSON(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("result_version", sa.Integer(), nullable=True),
        sa.Column("result_digest", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_compose_jobs_state", "compose_jobs", ["state"])
    op.create_index("ix_compose_jobs_target", "compose_jobs", ["target"])
    op.create_index("ix_compose_jobs_idempotency_key", "compose_jobs", ["idempotency_key"])
    op.create_index("ix_compose_jobs_created_at", "compose_jobs", ["created_at"])
    if op.get_bind().dialect.name == "postgresql":
        _apply_procrastinate_schema()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP SCHEMA IF EXISTS {PROCRASTINATE_SCHEMA} CASCADE")
    op.drop_index("ix_compose_jobs_created_at", "compose_jobs")
    op.drop_index("ix_compose_jobs_idempotency_key", "compose_jobs")
    op.drop_index("ix_compose_jobs_target", "compose_jobs")
    op.drop_index("ix_compose_jobs_state", "compose_jobs")
    op.drop_table("compose_jobs")
