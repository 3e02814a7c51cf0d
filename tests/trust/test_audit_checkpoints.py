"""Signed checkpoints of the audit chain's head, kept outside the database: truncation,
rewrites and forged checkpoints are caught; the schedule writes only when the head moved."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from registry.app import create_app
from registry.config import Settings
from registry.jobs.checkpointing import CheckpointScheduler
from registry.services.audit_anchors import Checkpoint, parse_checkpoint
from registry.services.audit_chain import verify_chain
from registry.services.audit_checkpoints import CheckpointSetup
from registry.services.audit_verify import verify_audit
from registry.services.signed_note import generate_key, load_signer, load_verifiers, open_note
from registry.storage import open_blob_store
from tests.support.rest import API, engine_of, push_ok, with_extra
from tests.trust.audit_tampering import event_ids, rewrite, truncate

REPO = "acme/sql-lora"
ORIGIN = "registry.test/audit"


@pytest.fixture
def signing_key(tmp_path: Path) -> Path:
    key = tmp_path / "keys" / "audit.pem"
    key.parent.mkdir()
    verifier = generate_key(key, ORIGIN)
    (key.parent / "audit.pub").write_text(verifier.vkey + "\n")
    return key


def anchored(settings: Settings, key: Path, **overrides: Any) -> Settings:
    """``settings`` with checkpoints signed by ``key`` into the blob store, no schedule."""
    values: dict[str, Any] = {
        "audit_signing_key": key,
        "audit_public_keys": key.with_name("audit.pub"),
        "audit_checkpoint_origin": ORIGIN,
        "audit_checkpoint_targets": "blobstore:",
        "audit_checkpoint_interval_s": 0,
        "audit_verify_interval_s": 0,
        **overrides,
    }
    return settings.model_copy(update=values)


@pytest.fixture
def anchored_client(settings: Settings, signing_key: Path) -> Iterator[TestClient]:
    with TestClient(create_app(anchored(settings, signing_key))) as test_client:
        yield test_client


def _history(client: TestClient, files: dict[str, bytes]) -> list[int]:
    push_ok(client, REPO, files)
    push_ok(client, REPO, with_extra(files, "notes.txt", b"v2"))
    for version in (1, 2, 1):
        moved = client.put(f"{API}/repos/{REPO}/aliases/production", json={"version": version})
        assert moved.status_code == 200, moved.text
    return event_ids(engine_of(client))


def _checkpoint(client: TestClient) -> dict[str, Any]:
    response = client.post(f"{API}/audit/checkpoints")
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _verify(client: TestClient) -> dict[str, Any]:
    response = client.get(f"{API}/audit/verify")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_checkpoint_is_a_signed_note_of_the_head_stored_in_the_blob_store(
    anchored_client: TestClient, adapter_files: dict[str, bytes], signing_key: Path
) -> None:
    ids = _history(anchored_client, adapter_files)
    written = _checkpoint(anchored_client)
    assert (written["event_id"], written["size"]) == (ids[-1], len(ids))
    assert written["written_to"][0].endswith(f"-e{ids[-1]}.note")
    assert "/checkpoints" in written["written_to"][0]
    body, signer = open_note(written["note"], load_verifiers(signing_key.with_name("audit.pub")))
    assert signer.name == ORIGIN
    checkpoint = parse_checkpoint(body)
    assert body.splitlines()[:2] == [ORIGIN, str(len(ids))]
    assert checkpoint.head_hash == written["head_hash"] == _verify(anchored_client)["head_hash"]

    report = _verify(anchored_client)
    assert report["ok"] and report["anchored"] and report["warnings"] == []
    assert [c["status"] for c in report["checkpoints"]] == ["confirmed"]
    gc = anchored_client.post(f"{API}/gc", params={"grace_minutes": 0})
    assert gc.status_code == 200 and gc.json()["deleted"] == []
    assert _verify(anchored_client)["anchored"], "gc leaves checkpoints alone"


def test_truncating_the_log_and_moving_the_head_back_is_caught_by_a_checkpoint(
    anchored_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    ids = _history(anchored_client, adapter_files)
    location = _checkpoint(anchored_client)["written_to"][0]
    engine = engine_of(anchored_client)
    truncate(engine, keep_through=ids[-3])
    with Session(engine) as session:
        assert verify_chain(session).ok, "the chain alone cannot see a truncation"

    report = _verify(anchored_client)
    assert report["ok"] is False
    problem = report["problem"]
    assert (problem["kind"], problem["event_id"], problem["checkpoint"]) == (
        "truncated",
        ids[-1],
        location,
    )
    assert f"ends at event {ids[-3]}" in problem["message"]
    refused = anchored_client.post(f"{API}/audit/checkpoints")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "audit_chain_inconsistent"

    moved = anchored_client.put(f"{API}/repos/{REPO}/aliases/staging", json={"version": 1})
    assert moved.status_code == 200
    rewound = _verify(anchored_client)
    assert rewound["ok"] is False
    assert rewound["problem"]["kind"] in {"truncated", "rewritten"}
    assert rewound["problem"]["checkpoint"] == location
    assert anchored_client.post(f"{API}/audit/checkpoints").status_code == 409


def test_rewriting_an_old_event_with_every_hash_recomputed_is_caught_by_a_checkpoint(
    anchored_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    ids = _history(anchored_client, adapter_files)
    location = _checkpoint(anchored_client)["written_to"][0]
    engine = engine_of(anchored_client)
    rewrite(engine, ids[1], actor="mallory")
    with Session(engine) as session:
        assert verify_chain(session).ok, "the rewritten chain verifies on its own"

    report = _verify(anchored_client)
    assert report["ok"] is False
    problem = report["problem"]
    assert (problem["kind"], problem["checkpoint"]) == ("rewritten", location)
    assert f"at or before event {ids[-1]}" in problem["message"]
    assert [c["status"] for c in report["checkpoints"]] == ["rewritten"]
    assert anchored_client.post(f"{API}/audit/checkpoints").status_code == 409


def test_a_checkpoint_covers_only_history_up_to_its_head(
    anchored_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(anchored_client, REPO, adapter_files)
    _checkpoint(anchored_client)
    ids = _history(anchored_client, with_extra(adapter_files, "more.txt", b"3"))
    rewrite(engine_of(anchored_client), ids[-1], actor="mallory")
    report = _verify(anchored_client)
    assert report["ok"] and report["anchored"], "events after the newest checkpoint are bare"


@pytest.fixture
def directory_setup(sqlite_settings: Settings, signing_key: Path, tmp_path: Path) -> Settings:
    return anchored(sqlite_settings, signing_key, audit_checkpoint_targets=f"file://{tmp_path}/cp")


def test_a_checkpoint_signed_by_another_key_or_altered_is_rejected(
    directory_setup: Settings, adapter_files: dict[str, bytes], tmp_path: Path
) -> None:
    with TestClient(create_app(directory_setup)) as client:
        ids = _history(client, adapter_files)
        genuine = _checkpoint(client)
        forger_key = tmp_path / "forger.pem"
        generate_key(forger_key, ORIGIN)
        forged = load_signer(forger_key, ORIGIN).sign(
            Checkpoint(
                ORIGIN, len(ids) + 5, "ab" * 32, ids[-1] + 5, parse_checkpoint_time(genuine)
            ).body()
        )
        day = tmp_path / "cp" / genuine["signed_at"][:10]
        (day / "235959.999998Z-e999.note").write_text(forged)
        altered = genuine["note"].replace(f"\n{genuine['size']}\n", f"\n{genuine['size'] + 1}\n")
        (day / "235959.999999Z-e998.note").write_text(altered)

        report = _verify(client)
    statuses = {c["location"].rsplit("/", 1)[-1]: c["status"] for c in report["checkpoints"]}
    assert statuses["235959.999998Z-e999.note"] == "unknown_key"
    assert statuses["235959.999999Z-e998.note"] == "bad_signature"
    assert sorted(statuses.values()) == ["bad_signature", "confirmed", "unknown_key"]
    assert report["ok"] is False and report["anchored"] is True
    assert report["problem"]["kind"] in {"unknown_key", "bad_signature"}
    assert "forged" in report["problem"]["message"]


def parse_checkpoint_time(written: dict[str, Any]) -> Any:
    return parse_checkpoint(written["note"].split("\n\n")[0] + "\n").signed_at


def test_the_schedule_writes_only_when_the_head_moved(
    settings: Settings, signing_key: Path, adapter_files: dict[str, bytes]
) -> None:
    configured = anchored(settings, signing_key)
    with TestClient(create_app(configured)) as client:
        engine = engine_of(client)
        setup = CheckpointSetup.from_settings(configured, open_blob_store(configured))
        scheduler = CheckpointScheduler(engine, setup, interval_s=60)
        assert scheduler.tick() is False, "an empty log has no head to sign"
        push_ok(client, REPO, adapter_files)
        assert scheduler.tick() is True
        assert scheduler.tick() is False
        assert scheduler.tick() is False
        assert len(setup.targets[0].newest(10)) == 1
        moved = client.put(f"{API}/repos/{REPO}/aliases/production", json={"version": 1})
        assert moved.status_code == 200
        assert scheduler.tick() is True
        assert scheduler.tick() is False
        newest = setup.targets[0].newest(10)
        assert len(newest) == 2
        assert newest[0][0].endswith(f"-e{event_ids(engine)[-1]}.note")
        report = _verify(client)
    assert report["ok"] and [c["status"] for c in report["checkpoints"]] == ["confirmed"] * 2


def test_the_scheduler_runs_inside_the_server(
    sqlite_settings: Settings, signing_key: Path, adapter_files: dict[str, bytes]
) -> None:
    configured = anchored(sqlite_settings, signing_key, audit_checkpoint_interval_s=0.2)
    with TestClient(create_app(configured)) as client:
        push_ok(client, REPO, adapter_files)
        target = client.app.state.audit_checkpoints.targets[0]  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while not target.newest(1) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert target.newest(1), "no scheduled checkpoint within 20 s"


def test_without_public_keys_checkpoints_are_not_checked_and_verify_says_so(
    directory_setup: Settings, adapter_files: dict[str, bytes]
) -> None:
    with TestClient(create_app(directory_setup)) as client:
        push_ok(client, REPO, adapter_files)
        _checkpoint(client)
        setup = CheckpointSetup.from_settings(
            directory_setup.model_copy(update={"audit_public_keys": None}), None, sign=False
        )
        assert setup.verifiers == [] and setup.signer is None
        with Session(engine_of(client)) as session:
            report = verify_audit(session, setup)
    assert report.ok and not report.anchored and report.checkpoints == []
    assert report.warnings and "no public key" in report.warnings[0]
