"""jobs: ``compose_jobs`` becomes ``jobs``, each kind with its own typed spec

Revision ID: 0010_jobs
Revises: 0009_access_log
Create Date: 2026-12-02 23:00:00

Compositions and exports shared ``compose_jobs``, an export keeping its spec in
``recipe`` and its format in ``output_kind``. The table is now ``jobs``: ``kind``
names the job kind (``registry.services.job_kinds``) and ``spec`` holds that kind's
spec (a composition: its recipe, as before). ``output_kind`` goes: each kind derives
it from its spec (a composition: ``model`` for a merged output, else ``adapter``; an
export: its format), exactly as it was written.

Every row is copied (same ids, states, logs, timestamps) into the new table, with its
indexes, and the old table is dropped: one path on SQLite and PostgreSQL. Nothing
references the table by foreign key (``version_exports.job_id`` is a plain column).
The downgrade copies the rows back, computing ``output_kind`` from the spec.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_jobs"
down_revision: str | Sequence[str] | None = "0009_access_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SHARED = (
    "id, kind, state, target, queue, {spec}, inputs, idempotency_key, alias, message, "
    "progress_done, progress_total, current_module, log, error_code, error_message, "
    "result_version, result_digest, attempts, cancel_requested, worker, created_by, "
    "request_id, created_at, started_at, finished_at, heartbeat_at"
)
_INDEXED = ("state", "target", "idempotency_key", "created_at")


def _columns(spec: str) -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("queue", sa.String(16), nullable=False),
        sa.Column(spec, sa.JSON(), nullable=False),
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
    ]


def _create_indexes(table: str) -> None:
    for column in _INDEXED:
        op.create_index(f"ix_{table}_{column}", table, [column])


def _drop(table: str) -> None:
    for column in _INDEXED:
        op.drop_index(f"ix_{table}_{column}", table)
    op.drop_table(table)


def upgrade() -> None:
    op.create_table("jobs", *_columns("spec"))
    _create_indexes("jobs")
    op.execute(
        f"INSERT INTO jobs ({_SHARED.format(spec='spec')}) "
        f"SELECT {_SHARED.format(spec='recipe')} FROM compose_jobs"
    )
    _drop("compose_jobs")


def _output_kind() -> str:
    """SQL for the ``output_kind`` a row of ``jobs`` had in ``compose_jobs``."""
    if op.get_bind().dialect.name == "postgresql":
        export, output = "spec->>'format'", "spec->'output'->>'type'"
    else:
        export, output = "json_extract(spec, '$.format')", "json_extract(spec, '$.output.type')"
    return (
        f"CASE WHEN kind = 'export' THEN {export} "
        f"WHEN {output} = 'merged' THEN 'model' ELSE 'adapter' END"
    )


def downgrade() -> None:
    columns = _columns("recipe")
    columns[1] = sa.Column("kind", sa.String(16), nullable=False, server_default="compose")
    columns.insert(5, sa.Column("output_kind", sa.String(16), nullable=False))
    op.create_table("compose_jobs", *columns)
    _create_indexes("compose_jobs")
    op.execute(
        f"INSERT INTO compose_jobs ({_SHARED.format(spec='recipe')}, output_kind) "
        f"SELECT {_SHARED.format(spec='spec')}, {_output_kind()} FROM jobs"
    )
    _drop("jobs")
