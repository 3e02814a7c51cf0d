"""`lorry audit keygen | checkpoint | verify`, offline verification, and a webhook target."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from registry.app import create_app
from registry.config import Settings
from registry.db import create_engine_for
from registry.services.signed_note import (
    NoteSigner,
    generate_key,
    load_verifiers,
    open_note,
    parse_vkey,
)
from tests.support.processes import free_port
from tests.support.rest import API, engine_of, push_ok
from tests.trust.audit_tampering import event_ids, truncate

REPO = "acme/sql-lora"
ORIGIN = "registry.test/audit"


class _Receiver(BaseHTTPRequestHandler):
    notes: list[bytes] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        length = int(self.headers["Content-Length"])
        type(self).notes.append(self.rfile.read(length))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"notes": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/witness", handler
    finally:
        server.shutdown()
        server.server_close()


def test_keygen_checkpoint_and_offline_verify_from_the_command_line(
    sqlite_settings: Settings,
    lorry_app: typer.Typer,
    adapter_files: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    key = tmp_path / "keys" / "audit.pem"
    key.parent.mkdir()
    made = runner.invoke(lorry_app, ["audit", "keygen", str(key), "--origin", ORIGIN])
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = key.with_name("audit.pem.pub")
    vkey = public.read_text().strip()
    assert vkey.startswith(f"{ORIGIN}+") and vkey in made.output
    again = runner.invoke(lorry_app, ["audit", "keygen", str(key)])
    assert again.exit_code == 1 and "refusing to overwrite" in again.output

    with TestClient(create_app(sqlite_settings)) as client:
        push_ok(client, REPO, adapter_files)
        assert client.put(f"{API}/repos/{REPO}/aliases/prod", json={"version": 1}).is_success
        ids = event_ids(engine_of(client))
    checkpoints = tmp_path / "witness"
    monkeypatch.setenv("LORRY_HOME", str(sqlite_settings.home))
    monkeypatch.delenv("LORRY_DATABASE_URL", raising=False)
    monkeypatch.setenv("LORRY_AUDIT_SIGNING_KEY", str(key))
    monkeypatch.setenv("LORRY_AUDIT_CHECKPOINT_ORIGIN", ORIGIN)
    monkeypatch.setenv("LORRY_AUDIT_CHECKPOINT_TARGETS", f"file://{checkpoints}")
    written = runner.invoke(lorry_app, ["audit", "checkpoint", "--local", "--json"])
    assert written.exit_code == 0, written.output
    assert json.loads(written.output)["event_id"] == ids[-1]

    for name in ("LORRY_AUDIT_SIGNING_KEY", "LORRY_AUDIT_CHECKPOINT_TARGETS"):
        monkeypatch.delenv(name)
    offline = ["audit", "verify", "--checkpoints", str(checkpoints), "--public-key", str(public)]
    intact = runner.invoke(lorry_app, offline)
    assert intact.exit_code == 0, intact.output
    assert "audit chain intact (anchored)" in intact.output

    engine = create_engine_for(sqlite_settings)
    try:
        truncate(engine, keep_through=ids[-2])
    finally:
        engine.dispose()
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    process = subprocess.run(
        [sys.executable, "-m", "cli.main", *offline, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert process.returncode == 2, process.stderr
    report = json.loads(process.stdout)
    assert report["problem"]["kind"] == "truncated"
    assert report["problem"]["checkpoint"].startswith(str(checkpoints))
    unanchored = runner.invoke(lorry_app, ["audit", "verify", "--local"])
    assert unanchored.exit_code == 0, "without checkpoints the truncation goes unseen"
    assert "not anchored" in unanchored.output and "warning" in unanchored.output


def test_checkpoints_are_posted_to_a_webhook_and_a_failed_delivery_is_a_503(
    sqlite_settings: Settings,
    adapter_files: dict[str, bytes],
    receiver: tuple[str, type[_Receiver]],
    tmp_path: Path,
) -> None:
    url, handler = receiver
    key = tmp_path / "audit.pem"
    public = tmp_path / "audit.pub"
    public.write_text(generate_key(key, ORIGIN).vkey)
    configured = sqlite_settings.model_copy(
        update={
            "audit_signing_key": key,
            "audit_checkpoint_origin": ORIGIN,
            "audit_checkpoint_targets": f"file://{tmp_path}/cp, {url}",
        }
    )
    with TestClient(create_app(configured)) as client:
        push_ok(client, REPO, adapter_files)
        written = client.post(f"{API}/audit/checkpoints")
        assert written.status_code == 201, written.text
        assert written.json()["written_to"][1] == url
        assert [note.decode() for note in handler.notes] == [written.json()["note"]]
        body, signer = open_note(handler.notes[0].decode(), load_verifiers(public))
        assert signer.name == ORIGIN and f"event {event_ids(engine_of(client))[-1]}" in body

        handler.status = 500
        failed = client.post(f"{API}/audit/checkpoints")
        assert failed.status_code == 503, failed.text
        assert failed.json()["code"] == "storage_unavailable"
        assert "answered 500" in failed.json()["message"]
        assert f"written to {tmp_path}/cp" in failed.json()["message"]


def test_notes_are_signed_and_read_as_go_sumdb_note_does() -> None:
    """The key, key id and signature of the example in golang.org/x/mod/sumdb/note."""
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    seed = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
    signer = NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))
    text = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
    )
    signed = signer.sign(text)
    assert signer.verifier.vkey == vkey
    assert signed == text + (
        "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
        "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    )
    assert open_note(signed, [parse_vkey(vkey)])[0] == text
