"""``lorry gc``: blobs and scratch files that nothing references."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.common import JsonOption, RegistryOption, echo_json, registry_client, stdout
from cli.local import LocalOption, local_registry


def gc(
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete them (default: only list them).")
    ] = False,
    grace_minutes: Annotated[
        int | None,
        typer.Option(
            "--grace-minutes",
            min=0,
            help="Keep unreferenced blobs younger than this (default LORRY_GC_GRACE_MINUTES).",
        ),
    ] = None,
    local: LocalOption = False,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """List blobs that no version references; with --delete, delete them.

    Blobs uploaded within the grace period are kept: a push may be about to
    commit a version that references them. Also lists (and with --delete removes)
    the upload spool files and job directories that crashed processes left in
    LORRY_HOME/tmp; never one that a live upload or job still uses.
    """
    report: dict[str, Any]
    if local:
        with local_registry() as database:
            report = database.collect_garbage(delete=delete, grace_minutes=grace_minutes)
    else:
        params = {} if grace_minutes is None else {"grace_minutes": grace_minutes}
        with registry_client(registry) as client:
            report = client.request(
                "POST" if delete else "GET", "/api/v1/gc", params=params, timeout=None
            ).json()
    if json_out:
        echo_json(report)
        return
    for blob in report["unreferenced"]:
        mark = "deleted" if blob["sha256"] in report["deleted"] else "unreferenced"
        typer.echo(f"{mark}  sha256:{blob['sha256']}  {blob['size']} bytes")
    scratch_mark = "removed" if not report["dry_run"] else "left by a crash"
    for entry in report.get("scratch", []):
        typer.echo(f"{scratch_mark}  tmp/{entry['name']}  {entry['bytes']} bytes")
    summary = (
        f"{len(report['unreferenced'])} unreferenced blob(s), {report['bytes']} bytes; "
        f"{report['kept_recent']} younger than {report['grace_minutes']} min kept; "
        f"{len(report.get('scratch', []))} scratch entr(ies) left by crashes, "
        f"{report.get('scratch_bytes', 0)} bytes"
    )
    if report["dry_run"]:
        summary += "; nothing deleted (dry run: add --delete)"
    else:
        summary += f"; {len(report['deleted'])} deleted"
    stdout.print(summary)


def register(app: typer.Typer) -> None:
    app.command("gc")(gc)
