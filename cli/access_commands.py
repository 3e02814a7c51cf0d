"""``lorry downloads``: the access log (who downloaded which file of which version)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from cli.common import (
    ActorOption,
    JsonOption,
    LimitOption,
    OffsetOption,
    RegistryOption,
    SinceOption,
    UntilOption,
    echo_json,
    parse_reference,
    parse_time,
    registry_client,
    stdout,
)
from cli.tables import Column, FittedTable


def _table(items: list[dict[str, Any]], total: int) -> FittedTable:
    table = FittedTable(
        f"{len(items)} of {total} downloads",
        [
            Column("at", key=True),
            Column("actor", key=True),
            Column("file"),
            Column("revision", drop=3),
            Column("via", drop=4),
            Column("address", drop=2),
            Column("user agent", drop=1),
        ],
    )
    for item in items:
        table.add_row(
            escape(str(item["at"])[:19].replace("T", " ")),
            escape(item["actor"]),
            escape(f"{item['repository']}@{item['version']}/{item['path']}"),
            escape(item["revision"]),
            item["via"],
            escape(item.get("address") or "-"),
            escape(item.get("user_agent") or "-"),
        )
    return table


def downloads(
    reference: Annotated[
        str | None,
        typer.Argument(metavar="[NAMESPACE/NAME[@VERSION]]", help="A repository or a version."),
    ] = None,
    actor: ActorOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: LimitOption = 100,
    offset: OffsetOption = 0,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Query the access log (downloaded files), newest first; the last second may be missing
    (records are written in batches)."""
    repository, version = None, None
    if reference:
        repository, ref = parse_reference(reference, allow_ref=True)
        if ref is not None:
            if not ref.isdigit():
                raise typer.BadParameter(
                    f"{ref!r}: give a version number (downloads are kept per version)",
                    param_hint="'NAMESPACE/NAME@VERSION'",
                )
            version = int(ref)
    with registry_client(registry) as client:
        page = client.downloads(
            repository=repository,
            version=version,
            actor=actor,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            limit=limit,
            offset=offset,
        )
    if json_out:
        echo_json(page)
        return
    stdout.print(_table(page["items"], page["total"]))


def register(app: typer.Typer) -> None:
    app.command("downloads")(downloads)
