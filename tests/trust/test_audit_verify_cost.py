"""``audit verify`` streams the log in batches and is not a free walk for any caller:
read on every namespace, results reused for a while, one walk at a time, fresh walks for admins."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from sqlmodel import Session

from registry.config import Settings
from registry.db import create_engine_for
from registry.services.audit_chain import append_event
from registry.services.audit_checkpoints import CheckpointSetup, write_checkpoint
from registry.services.audit_verify import verify_audit
from registry.services.signed_note import generate_key
from registry.tables import AuditEvent, utcnow
from tests.support.rest import API, engine_of, push_ok

REPO = "acme/sql-lora"
ORIGIN = "registry.test/audit"


def _append(engine: Engine, count: int) -> None:
    with Session(engine) as session:
        for i in range(count):
            append_event(
                session,
                AuditEvent(
                    at=utcnow(),
                    actor="loader",
                    action="alias.set",
                    repository=REPO,
                    target=f"{REPO}@a{i % 7}",
                    after={"version": i},
                ),
            )
        session.commit()


@contextmanager
def _walk_queries(engine: Engine) -> Iterator[list[str]]:
    """The statements that read batches of audit events."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM audit_events" in statement and "LIMIT" in statement and "ORDER BY" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_verify_streams_a_log_larger_than_a_batch_and_checks_checkpoints_inside_it(
    settings: Settings, tmp_path: Path
) -> None:
    key = tmp_path / "audit.pem"
    generate_key(key, ORIGIN)
    configured = settings.model_copy(
        update={
            "audit_signing_key": key,
            "audit_checkpoint_origin": ORIGIN,
            "audit_checkpoint_targets": f"file://{tmp_path}/checkpoints",
            "audit_verify_batch": 50,
        }
    )
    setup = CheckpointSetup.from_settings(configured, None)
    engine = create_engine_for(configured)
    try:
        _append(engine, 289)
        with Session(engine) as session:
            first = write_checkpoint(session, setup, only_if_moved=True)
        _append(engine, 311)
        with Session(engine) as session:
            second = write_checkpoint(session, setup, only_if_moved=True)
        assert first is not None and second is not None
        assert (first.size, second.size) == (289, 600)

        with _walk_queries(engine) as queries, Session(engine) as session:
            report = verify_audit(session, setup)
        assert report.ok and report.events == 600, report.problem
        assert [c.status for c in report.checkpoints] == ["confirmed", "confirmed"]
        assert len(queries) == math.ceil(600 / 50) + 1, "one query per batch of 50 events"

        with engine.begin() as connection:
            connection.execute(text("UPDATE audit_events SET actor = 'x' WHERE id = 517"))
        with Session(engine) as session:
            broken = verify_audit(session, setup)
        assert broken.problem is not None
        assert (broken.problem.kind, broken.problem.event_id) == ("edited", 517)
        assert broken.ok is False and broken.anchored, "the stored hashes still match"
    finally:
        engine.dispose()


def _get(client: TestClient, headers: dict[str, str], **params: str) -> Any:
    return client.get(f"{API}/audit/verify", headers=headers, params=params)


def test_callers_without_admin_get_the_recent_result_and_never_force_a_walk(
    sqlite_client: TestClient,
    adapter_files: dict[str, bytes],
    token_factory: Callable[..., dict[str, str]],
) -> None:
    push_ok(sqlite_client, REPO, adapter_files)
    admin = token_factory(["admin"], principal="ops")
    reader = token_factory(["read"], principal="auditor")
    limited = token_factory(["read"], ["acme/*"], principal="acme-reader")
    anonymous: dict[str, str] = {}
    engine = engine_of(sqlite_client)

    with _walk_queries(engine) as queries:
        results: list[Any] = []
        threads = [
            threading.Thread(target=lambda: results.append(_get(sqlite_client, anonymous)))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [r.status_code for r in results] == [200] * 8
    assert len(queries) == 2, "eight concurrent callers share one walk (one batch + the end)"
    assert sum(not r.json()["cached"] for r in results) == 1

    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 1"))
    with _walk_queries(engine) as queries:
        again = _get(sqlite_client, anonymous).json()
        read_again = _get(sqlite_client, reader).json()
    assert queries == [], "served from the recent result, no walk"
    assert again["ok"] and again["cached"] and read_again["cached"]

    for headers, status in [(anonymous, 403), (reader, 403), (limited, 403)]:
        assert _get(sqlite_client, headers, fresh="true").status_code == status
    refused = _get(sqlite_client, limited)
    assert refused.status_code == 403, "the whole log's state needs read on every namespace"
    assert "every namespace" in refused.json()["message"]

    fresh = _get(sqlite_client, admin, fresh="true").json()
    assert (fresh["ok"], fresh["cached"], fresh["problem"]["kind"]) == (False, False, "edited")
    served = _get(sqlite_client, anonymous).json()
    assert (served["ok"], served["cached"]) == (False, True)
