"""Registry commands of ``lorry``: push, pull, ls, show, alias, audit (HTTP clients only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cli import render
from cli.alias_commands import alias_app
from cli.audit_commands import audit_app
from cli.common import (
    JsonOption,
    Kind,
    LimitOption,
    OffsetOption,
    RegistryOption,
    echo_json,
    parse_reference,
    registry_client,
    stderr,
    stdout,
    transfer_progress,
)
from cli.push_checks import path_filter
from cli.transfer import pull_version, push_directory

__all__ = ["register"]


# -- push / pull -----------------------------------------------------------------------------


def push(
    directory: Annotated[
        Path,
        typer.Argument(
            exists=True,
            file_okay=False,
            dir_okay=True,
            metavar="DIR",
            help="Adapter directory to publish.",
        ),
    ],
    repository: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME")],
    alias: Annotated[
        str | None, typer.Option("--alias", help="Point this alias at the new version.")
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Version note.")] = None,
    kind: Annotated[Kind, typer.Option("--kind", help="Repository kind.")] = Kind.adapter,
    include: Annotated[
        list[str] | None,
        typer.Option("--include", help="Push only files matching this glob (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Leave out files matching this glob (repeatable)."),
    ] = None,
    base_model: Annotated[
        str | None,
        typer.Option(
            "--base-model",
            metavar="NAMESPACE/NAME[@REF]",
            help="The model repository of this registry that the adapter was trained on.",
        ),
    ] = None,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Publish DIR as the next version of NAMESPACE/NAME.

    Hidden files and directories (.git, .cache, ...) are skipped; --include and --exclude
    globs (on paths relative to DIR; a pattern ending in / names a folder) choose files.

    Pickled files, symbolic links pointing outside DIR and a directory without the
    files its --kind needs are refused before any upload.

    Blobs the registry already has are not uploaded again.
    """
    repo, _ = parse_reference(repository, allow_ref=False)
    with registry_client(registry) as client, transfer_progress(json_out) as progress:
        result = push_directory(
            client,
            directory,
            repo,
            message=message,
            alias=alias,
            kind=kind.value,
            progress=progress,
            selected=path_filter(include, exclude),
            base_model=base_model,
        )
    if json_out:
        echo_json(result.as_json())
        return
    version = result.version
    typer.echo(f"{result.ref} ({version['digest']})")
    stderr.print(
        f"uploaded {render.human_bytes(result.uploaded_bytes)} "
        f"({render.count(len(result.uploaded_files), 'file')}), skipped "
        f"{render.human_bytes(result.skipped_bytes)} "
        f"({render.count(len(result.skipped_files), 'file')} already in the registry)"
    )
    if alias:
        stderr.print(f"alias {escape(alias)} → {escape(result.ref)}")


def pull(
    reference: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME[@REF]")],
    directory: Annotated[
        Path,
        typer.Argument(file_okay=False, metavar="DIR", help="Where to write the files (created)."),
    ],
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Remove files in DIR that are not in the version, then pull."
        ),
    ] = False,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Download a version into DIR, verifying every file's size and sha256.

    REF is a version number, an alias, or a sha256: digest; default latest.

    Files already in DIR with the right sha256 are kept; a DIR holding other files (of
    another model) is refused unless --overwrite.
    """
    repo, ref = parse_reference(reference, allow_ref=True)
    with registry_client(registry) as client, transfer_progress(json_out) as progress:
        result = pull_version(
            client, repo, ref or "latest", directory, progress=progress, overwrite=overwrite
        )
    if json_out:
        echo_json(result.as_json())
        return
    version = result.version
    typer.echo(f"{version['repository']}@{version['version']} ({version['digest']})")
    stderr.print(
        f"{escape(str(directory))}: downloaded "
        f"{render.count(len(result.downloaded_files), 'file')} "
        f"({render.human_bytes(result.downloaded_bytes)}), kept {len(result.kept_files)} "
        "already there"
        + (
            f", removed {render.count(len(result.removed_files), 'other file')}"
            if result.removed_files
            else ""
        )
    )


# -- read commands ---------------------------------------------------------------------------


def ls(
    query: Annotated[
        str | None, typer.Argument(help="Text matched against id, description and tags.")
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace")] = None,
    base_model: Annotated[str | None, typer.Option("--base-model")] = None,
    tag: Annotated[str | None, typer.Option("--tag")] = None,
    kind: Annotated[Kind | None, typer.Option("--kind")] = None,
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
    archived: Annotated[
        bool, typer.Option("--archived", help="Include archived repositories.")
    ] = False,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """List and search repositories (archived ones only with --archived)."""
    with registry_client(registry) as client:
        page = client.list_repos(
            q=query,
            namespace=namespace,
            base_model=base_model,
            tag=tag,
            kind=kind.value if kind else None,
            limit=limit,
            offset=offset,
            archived=archived,
        )
    if json_out:
        echo_json(page)
        return
    stdout.print(render.repos_table(page["items"], page["total"]))


def show(
    reference: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME[@REF]")],
    modules: Annotated[bool, typer.Option("--modules", help="List LoRA module shapes.")] = False,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Show a version (with @REF) or a repository and its versions."""
    repo, ref = parse_reference(reference, allow_ref=True)
    with registry_client(registry) as client:
        if ref is not None:
            version = client.get_version(repo, ref)
            if json_out:
                echo_json(version)
            else:
                stdout.print(render.version_panel(version, show_modules=modules))
            return
        repository = client.get_repo(repo)
        versions = client.list_versions(repo, limit=100)
    if json_out:
        echo_json({"repository": repository, "versions": versions})
        return
    stdout.print(render.repo_panel(repository))
    stdout.print(render.versions_table(versions["items"], versions["total"]))


def register(app: typer.Typer) -> None:
    """Add the registry commands to the ``lorry`` app."""
    app.command("push")(push)
    app.command("pull")(pull)
    app.command("ls")(ls)
    app.command("show")(show)
    app.add_typer(alias_app, name="alias")
    app.add_typer(audit_app, name="audit")
