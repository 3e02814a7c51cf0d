"""``lorry audit verify``, ``lorry audit checkpoint`` and ``lorry audit keygen``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from cli.common import JsonOption, RegistryOption, echo_json, fail, registry_client, stdout
from cli.token_commands import LocalOption

EXIT_TAMPERED = 2


def _local_setup(
    checkpoints: Path | None, public_key: Path | None, *, sign: bool
) -> tuple[Any, Any]:
    """The settings' checkpoint setup, with ``--checkpoints`` / ``--public-key`` in place of
    the configured targets and keys; and a session on the configured database."""
    from cli.token_commands import _local_session
    from registry.config import Settings
    from registry.services.audit_checkpoints import CheckpointSetup
    from registry.services.signed_note import load_verifiers
    from registry.storage import open_blob_store
    from registry.storage.checkpoints import DirectoryCheckpoints

    settings = Settings()
    if checkpoints is not None:
        settings.audit_checkpoint_targets = ""
    store = None
    if "blobstore:" in settings.audit_checkpoint_targets:
        store = open_blob_store(settings)
    setup = CheckpointSetup.from_settings(settings, store, sign=sign)
    if checkpoints is not None:
        setup.targets = [DirectoryCheckpoints(checkpoints)]
    if public_key is not None:
        setup.verifiers = load_verifiers(public_key)
    return setup, _local_session()


def verify(
    local: LocalOption = False,
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            "--checkpoints",
            help="Check against the checkpoints in this directory (offline; implies --local).",
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="Verifier keys (NAME+KEYID+BASE64 lines) instead of LORRY_AUDIT_PUBLIC_KEYS.",
        ),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ask the server for a new walk (admin only).")
    ] = False,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Walk the audit hash chain and check it against the newest signed checkpoints.

    Names the first event that was edited, removed, reordered or inserted, and the
    checkpoint that proves a truncation or a rewrite. Exits 2 when either is found
    or a checkpoint does not verify.
    """
    if local or checkpoints is not None or public_key is not None:
        from registry.errors import LorryError
        from registry.services.audit_verify import verify_audit

        try:
            setup, session = _local_setup(checkpoints, public_key, sign=False)
            with session:
                report: dict[str, Any] = verify_audit(session, setup).model_dump(mode="json")
        except LorryError as exc:
            fail(exc.message, exc.code)
    else:
        with registry_client(registry) as client:
            params = {"fresh": "true"} if fresh else {}
            report = client.request("GET", "/api/v1/audit/verify", params=params).json()
    if json_out:
        echo_json(report)
    else:
        _print_report(report)
    if not report["ok"]:
        raise typer.Exit(EXIT_TAMPERED)


def _print_report(report: dict[str, Any]) -> None:
    if report["ok"]:
        anchored = "anchored" if report.get("anchored") else "not anchored"
        stdout.print(
            f"[green]audit chain intact[/] ({anchored}): {report['events']} events, head event "
            f"{report['head_event_id']} hash {report['head_hash']}"
        )
    else:
        problem = report["problem"]
        stdout.print(
            f"[bold red]audit chain broken[/] ({problem['kind']}): {escape(problem['message'])}"
        )
    for check in report.get("checkpoints", []):
        color = "green" if check["status"] == "confirmed" else "red"
        where = f"event {check['event_id']}" if check.get("event_id") is not None else ""
        stdout.print(f"  [{color}]{check['status']}[/] {escape(check['location'])} {where}")
    for warning in report.get("warnings", []):
        stdout.print(f"[yellow]warning:[/] {escape(warning)}")
    if report.get("cached"):
        stdout.print(
            f"(result of the walk at {report['verified_at']}; --fresh as admin for a new one)"
        )


def checkpoint(
    local: LocalOption = False, json_out: JsonOption = False, registry: RegistryOption = None
) -> None:
    """Sign the audit chain's head now and write it to every checkpoint target.

    Refuses (and signs nothing) when the log no longer extends the newest checkpoint.
    """
    if local:
        from registry.errors import LorryError
        from registry.services.audit_checkpoints import write_checkpoint

        try:
            setup, session = _local_setup(None, None, sign=True)
            with session:
                written = write_checkpoint(session, setup, only_if_moved=False)
        except LorryError as exc:
            fail(exc.message, exc.code)
        assert written is not None
        result: dict[str, Any] = written.model_dump(mode="json")
    else:
        with registry_client(registry) as client:
            result = client.request("POST", "/api/v1/audit/checkpoints").json()
    if json_out:
        echo_json(result)
        return
    stdout.print(
        f"checkpoint of {result['size']} events, head event {result['event_id']} hash "
        f"{result['head_hash']}, written to {', '.join(result['written_to'])}"
    )


def keygen(
    key_file: Annotated[Path, typer.Argument(metavar="KEY_FILE", help="Where to write it.")],
    origin: Annotated[
        str | None,
        typer.Option("--origin", help="The log's name (default LORRY_AUDIT_CHECKPOINT_ORIGIN)."),
    ] = None,
) -> None:
    """Write a new Ed25519 checkpoint signing key (mode 0600) and KEY_FILE.pub, its verifier.

    Keep the key where the database's holders cannot read it; give the .pub line to
    whoever verifies (LORRY_AUDIT_PUBLIC_KEYS, or `lorry audit verify --public-key`).
    """
    from registry.config import Settings
    from registry.errors import LorryError
    from registry.services.signed_note import generate_key

    name = origin or Settings().audit_checkpoint_origin
    public = key_file.with_name(key_file.name + ".pub")
    try:
        verifier = generate_key(key_file, name)
    except LorryError as exc:
        fail(exc.message, exc.code)
    public.write_text(verifier.vkey + "\n")
    os.chmod(public, 0o644)
    stdout.print(f"signing key: {escape(str(key_file))} (0600); public key: {escape(str(public))}")
    typer.echo(verifier.vkey)
    stdout.print(
        f"set LORRY_AUDIT_SIGNING_KEY={escape(str(key_file))}"
        + ("" if origin is None else f" LORRY_AUDIT_CHECKPOINT_ORIGIN={escape(name)}")
        + f" and LORRY_AUDIT_PUBLIC_KEYS={escape(str(public))}"
    )
