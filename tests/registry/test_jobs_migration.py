"""Migration 0010_jobs: ``compose_jobs`` rows written by the previous head become ``jobs``
rows of the right kind and typed spec, on both databases, and go back on downgrade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import JSON, Boolean, Engine, bindparam, inspect, text
from sqlmodel import Session, select

from registry import db
from registry.config import Settings
from registry.services.job_kinds import job_kind
from registry.services.job_kinds.export import ExportSpec
from registry.services.jobs import get_job
from registry.tables import Job, UTCDateTime

PREVIOUS = "0009_access_log"
DIGEST = "ab" * 32
BASE_DIGEST = "cd" * 32
T0 = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)

_COLUMNS = (
    "id, kind, state, target, output_kind, queue, recipe, inputs, idempotency_key, alias, "
    "message, progress_done, progress_total, current_module, log, error_code, error_message, "
    "result_version, result_digest, attempts, cancel_requested, worker, created_by, "
    "request_id, created_at, started_at, finished_at, heartbeat_at"
)


def _old_row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "state": "queued",
        "queue": "any",
        "alias": None,
        "message": None,
        "progress_done": 0,
        "progress_total": 0,
        "current_module": None,
        "log": [{"at": T0.isoformat(), "message": "submitted"}],
        "error_code": None,
        "error_message": None,
        "result_version": None,
        "result_digest": None,
        "attempts": 0,
        "cancel_requested": False,
        "worker": None,
        "created_by": "alice",
        "request_id": "req-1",
        "created_at": T0,
        "started_at": None,
        "finished_at": None,
        "heartbeat_at": None,
    }
    row.update(values)
    return row


OLD_ROWS = [
    _old_row(  # a composition to an adapter, succeeded (``output`` left at its defaults)
        id="a" * 32,
        kind="compose",
        target="acme/sql-formal",
        output_kind="adapter",
        recipe={"method": "linear", "inputs": [{"adapter": f"acme/sql@sha256:{DIGEST}"}]},
        inputs=[
            {
                "ref": "acme/sql@production",
                "repository": "acme/sql",
                "version": 3,
                "digest": f"sha256:{DIGEST}",
                "weight": 1.0,
                "role": "input",
            }
        ],
        idempotency_key="1" * 64,
        alias="staging",
        message="compose it",
        state="succeeded",
        progress_done=7,
        progress_total=7,
        result_version=2,
        result_digest="ef" * 32,
        attempts=1,
        worker="host:1:2",
        started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(seconds=9),
        heartbeat_at=T0 + timedelta(seconds=8),
    ),
    _old_row(  # a merged model on the GPU queue, still queued
        id="b" * 32,
        kind="compose",
        target="acme/sql-merged",
        output_kind="model",
        queue="gpu",
        recipe={
            "method": "ties",
            "inputs": [{"adapter": f"acme/sql@sha256:{DIGEST}", "weight": 0.5}],
            "output": {"type": "merged", "base": f"acme/base@sha256:{BASE_DIGEST}"},
            "device": "cuda",
        },
        inputs=[
            {
                "ref": "acme/sql@3",
                "repository": "acme/sql",
                "version": 3,
                "digest": f"sha256:{DIGEST}",
                "weight": 0.5,
                "role": "input",
            },
            {
                "ref": "acme/base",
                "repository": "acme/base",
                "version": 1,
                "digest": f"sha256:{BASE_DIGEST}",
                "weight": None,
                "role": "base",
            },
        ],
        idempotency_key="2" * 64,
        created_at=T0 + timedelta(minutes=1),
    ),
    _old_row(  # a GGUF export of an adapter, failed
        id="c" * 32,
        kind="export",
        target="acme/sql",
        output_kind="gguf",
        recipe={
            "format": "gguf",
            "outtype": "f16",
            "path": "adapter-f16.gguf",
            "source": f"acme/sql@sha256:{DIGEST}",
            "base": f"acme/base@sha256:{BASE_DIGEST}",
        },
        inputs=[
            {
                "ref": "acme/sql@3",
                "repository": "acme/sql",
                "version": 3,
                "digest": f"sha256:{DIGEST}",
                "weight": None,
                "role": "input",
            }
        ],
        idempotency_key="3" * 64,
        state="failed",
        error_code="invalid_input",
        error_message="no tensors",
        attempts=1,
        started_at=T0 + timedelta(minutes=2, seconds=1),
        finished_at=T0 + timedelta(minutes=2, seconds=3),
        created_at=T0 + timedelta(minutes=2),
    ),
]
_JSON = ("recipe", "inputs", "log")
_TIMES = ("created_at", "started_at", "finished_at", "heartbeat_at")


def _insert_old_rows(engine: Engine) -> None:
    """The rows as the previous head's code wrote them, through its schema (plain SQL)."""
    statement = text(
        f"INSERT INTO compose_jobs ({_COLUMNS}) VALUES "
        f"({', '.join(':' + name.strip() for name in _COLUMNS.split(','))})"
    ).bindparams(
        *[bindparam(name, type_=JSON()) for name in _JSON],
        *[bindparam(name, type_=UTCDateTime()) for name in _TIMES],
    )
    with engine.begin() as connection:
        connection.execute(statement, OLD_ROWS)


def _migrate(engine: Engine, direction: str, revision: str) -> None:
    config = db.alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def test_jobs_of_the_previous_head_become_jobs_with_their_kind_and_spec(
    backend_settings: Settings,
) -> None:
    db.upgrade(backend_settings, PREVIOUS)
    engine = db.create_engine_for(backend_settings)
    try:
        _insert_old_rows(engine)
        db.upgrade_engine(engine)
        db.ensure_migrated(engine)

        schema = inspect(engine)
        assert "compose_jobs" not in schema.get_table_names()
        assert {index["name"] for index in schema.get_indexes("jobs")} == {
            "ix_jobs_state",
            "ix_jobs_target",
            "ix_jobs_idempotency_key",
            "ix_jobs_created_at",
        }
        with Session(engine) as session:
            rows = {row.id: row for row in session.exec(select(Job)).all()}
            assert sorted(rows) == [old["id"] for old in OLD_ROWS]
            for old in OLD_ROWS:
                row = rows[old["id"]]
                assert row.kind == old["kind"]
                assert row.spec == old["recipe"]
                kind = job_kind(row.kind)
                assert kind.output_kind(row.spec) == old["output_kind"]
                spec = kind.parse_spec(row.spec)
                assert kind.dump_spec(spec) == old["recipe"]
                for name, value in old.items():
                    if name not in ("recipe", "output_kind"):
                        assert getattr(row, name) == value, name
            export_spec = job_kind("export").parse_spec(rows["c" * 32].spec)
            assert isinstance(export_spec, ExportSpec)
            assert export_spec.base == f"acme/base@sha256:{BASE_DIGEST}"

            # the API shows them as before the rename
            for old in OLD_ROWS:
                shown = get_job(session, old["id"])
                assert (shown.kind, shown.state, shown.target) == (
                    old["kind"],
                    old["state"],
                    old["target"],
                )
                assert shown.output_kind == old["output_kind"]
                assert shown.recipe == old["recipe"]
                assert shown.queue == old["queue"]
                assert [item.model_dump() for item in shown.inputs] == old["inputs"]
            exported = get_job(session, "c" * 32).export
            assert exported is not None
            assert (exported.path, exported.outtype, exported.sha256) == (
                "adapter-f16.gguf",
                "f16",
                None,
            )

        _migrate(engine, "downgrade", PREVIOUS)
        assert "jobs" not in inspect(engine).get_table_names()
        names = [name.strip() for name in _COLUMNS.split(",")]
        with engine.connect() as connection:
            back = connection.execute(
                text(f"SELECT {_COLUMNS} FROM compose_jobs ORDER BY id").columns(
                    **{name: JSON() for name in _JSON},
                    **{name: UTCDateTime() for name in _TIMES},
                    cancel_requested=Boolean(),
                )
            ).all()
        assert [dict(zip(names, row, strict=True)) for row in back] == OLD_ROWS

        db.upgrade_engine(engine)
        with Session(engine) as session:
            assert len(session.exec(select(Job)).all()) == len(OLD_ROWS)
    finally:
        engine.dispose()
