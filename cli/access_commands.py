"""``lorry downloads``: the access log (who downloaded which file of which version)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.common import (
    JsonOption,
    RegistryOption,
    echo_json,
    parse_reference,
    parse_time,
    registry_client,
    stdout,
)


def _table(items: list[dict[str, Any]], total: int) -> Table:
    table = Table(title=f"{len(items)} of {total} downloads", title_justify="left")
    for column in ("at", "actor", "file", "revision", "via", "address", "user agent"):
        table.add_column(column, overflow="fold")
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
    actor: Annotated[str | None, typer.Option("--actor")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO time or a duration back: 30m, 1h, 7d.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="ISO time or a duration back: 30m, 1h, 7d.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
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
