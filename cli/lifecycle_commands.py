"""``lorry repo archive|unarchive|delete`` and ``lorry version delete``: retiring what a
team no longer uses (``docs/lifecycle.md``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from cli.common import (
    JsonOption,
    RegistryOption,
    echo_json,
    parse_reference,
    registry_client,
    stdout,
)
from cli.repo_commands import repo_app

__all__ = ["register"]

API = "/api/v1"

version_app = typer.Typer(
    name="version", help="Delete a version (an admin, with a reason).", no_args_is_help=True
)

RepoArgument = Annotated[str, typer.Argument(metavar="NAMESPACE/NAME")]


def _print_deletion(deleted: dict[str, Any]) -> None:
    what = deleted["repository"]
    if deleted["version"] is not None:
        what = f"{what}@{deleted['version']}"
    count = len(deleted["versions"])
    stdout.print(
        f"deleted {escape(what)} ({count} version(s), {deleted['files']} file(s)): "
        f"{escape(deleted['reason'])}"
    )
    stdout.print(
        "  reads of it now answer who deleted it and why; its number is never given again. "
        "`lorry gc --delete` reclaims the blobs that no remaining version shares"
    )


def archive(
    repository: RepoArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")],
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Archive a repository: read only, left out of listings; every version still pulls."""
    repo, _ = parse_reference(repository, allow_ref=False)
    with registry_client(registry) as client:
        out = client.request("POST", f"{API}/repos/{repo}/archive", json={"reason": reason})
    if json_out:
        echo_json(out.json())
        return
    stdout.print(
        f"archived {escape(repo)}: pulls still work; new versions, alias moves and exports are "
        f"refused until `lorry repo unarchive {escape(repo)}`; `lorry ls --archived` lists it"
    )


def unarchive(
    repository: RepoArgument,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (recorded in the audit log).")
    ] = None,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Make an archived repository writable and listed again."""
    repo, _ = parse_reference(repository, allow_ref=False)
    with registry_client(registry) as client:
        out = client.request("POST", f"{API}/repos/{repo}/unarchive", json={"reason": reason})
    if json_out:
        echo_json(out.json())
        return
    stdout.print(f"unarchived {escape(repo)}")


def delete_repository(
    repository: RepoArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")],
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Delete a repository and all its versions (admin). Refused while it has aliases,
    deployments, open jobs or versions that other versions derive from."""
    repo, _ = parse_reference(repository, allow_ref=False)
    with registry_client(registry) as client:
        out = client.request("DELETE", f"{API}/repos/{repo}", params={"reason": reason})
    if json_out:
        echo_json(out.json())
        return
    _print_deletion(out.json())


def delete_version(
    reference: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME@NUMBER")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")],
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Delete one version, named by its number (admin). Refused while an alias points at it
    or another version derives from it."""
    repo, ref = parse_reference(reference, allow_ref=True)
    if ref is None or not ref.isdigit():
        raise typer.BadParameter(
            f"name the version by its number, e.g. {repo}@3 (see `lorry show {repo}`)",
            param_hint="'NAMESPACE/NAME@NUMBER'",
        )
    with registry_client(registry) as client:
        out = client.request(
            "DELETE", f"{API}/repos/{repo}/versions/{ref}", params={"reason": reason}
        )
    if json_out:
        echo_json(out.json())
        return
    _print_deletion(out.json())


def register(app: typer.Typer) -> None:
    repo_app.command("archive")(archive)
    repo_app.command("unarchive")(unarchive)
    repo_app.command("delete")(delete_repository)
    version_app.command("delete")(delete_version)
    app.add_typer(version_app, name="version")
