"""``lorry repo``: repository settings, such as what ``main`` means to Hugging Face clients."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from cli.client import LorryClient, LorryClientError
from cli.common import (
    JsonOption,
    RegistryOption,
    echo_json,
    parse_reference,
    registry_client,
    stdout,
)

__all__ = ["register"]

repo_app = typer.Typer(
    name="repo",
    help="Repository settings (main alias for Hugging Face clients, description, tags).",
    no_args_is_help=True,
)


def _repo_path(repository: str) -> str:
    namespace, _, name = repository.partition("/")
    return f"/api/v1/repos/{quote(namespace, safe='')}/{quote(name, safe='')}"


def _served_main(client: LorryClient, repository: str) -> dict[str, Any]:
    """``{"version", "main_alias"}``: what Hugging Face clients get for ``main``.

    Read from the Hub API's model info; ``version`` is ``None`` when ``main``
    resolves to nothing (no version yet, or the main alias was deleted).
    """
    try:
        info = client.request("GET", f"/api/models/{repository}").json()
    except LorryClientError as exc:
        if exc.status == 404:
            return {"version": None, "main_alias": None}
        raise
    lorry: dict[str, Any] = info.get("lorry", {})
    return {"version": lorry.get("version"), "main_alias": lorry.get("main_alias")}


def _print_repo(repo: dict[str, Any], main: dict[str, Any]) -> None:
    main_alias = repo.get("main_alias") or main["main_alias"]
    main_version = main["version"]
    chosen = f"alias {main_alias}" if main_alias else "the latest version"
    served = f"version {main_version}" if main_version is not None else "nothing (no version)"
    aliases = ", ".join(f"{name} -> {number}" for name, number in repo["aliases"].items())
    stdout.print(f"[bold]{escape(repo['id'])}[/] ({escape(repo['kind'])})")
    stdout.print(f"  description:  {escape(repo['description'] or '-')}")
    stdout.print(f"  tags:         {escape(', '.join(repo['tags']) or '-')}")
    stdout.print(f"  latest:       {repo['latest_version'] or '-'}")
    stdout.print(f"  aliases:      {escape(aliases or '-')}")
    stdout.print(f"  main:         {escape(chosen)}: Hugging Face clients get {served}")


@repo_app.command("set")
def set_settings(
    repository: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME")],
    main_alias: Annotated[
        str | None,
        typer.Option(
            "--main-alias",
            metavar="ALIAS",
            help="Serve this alias as `main` to Hugging Face clients (vLLM asks for `main`); "
            "'' goes back to the latest version.",
        ),
    ] = None,
    clear_main_alias: Annotated[
        bool,
        typer.Option("--clear-main-alias", help="Serve the latest version as `main` again."),
    ] = False,
    description: Annotated[
        str | None, typer.Option("--description", help="Repository description.")
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Replace the repository's tags (repeat for several)."),
    ] = None,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Change a repository's settings; each change is recorded in the audit log."""
    repo_id, _ = parse_reference(repository, allow_ref=False)
    if clear_main_alias and main_alias:
        raise typer.BadParameter("give either --main-alias ALIAS or --clear-main-alias, not both")
    body: dict[str, Any] = {}
    if clear_main_alias or main_alias is not None:
        body["main_alias"] = main_alias or None
    if description is not None:
        body["description"] = description
    if tags is not None:
        body["tags"] = tags
    if not body:
        raise typer.BadParameter(
            "nothing to change: give --main-alias, --clear-main-alias, --description or --tag"
        )
    with registry_client(registry) as client:
        repo = client.request("PATCH", _repo_path(repo_id), json=body).json()
        main = _served_main(client, repo_id)
    if json_out:
        echo_json(repo)
        return
    _print_repo(repo, main)


@repo_app.command("show")
def show_settings(
    repository: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME")],
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Show a repository's settings and the version Hugging Face clients get for `main`."""
    repo_id, _ = parse_reference(repository, allow_ref=False)
    with registry_client(registry) as client:
        repo = client.request("GET", _repo_path(repo_id)).json()
        main = _served_main(client, repo_id)
    if json_out:
        echo_json(
            {
                **repo,
                "main_alias": repo.get("main_alias") or main["main_alias"],
                "main_version": main["version"],
            }
        )
        return
    _print_repo(repo, main)


def register(app: typer.Typer) -> None:
    """Add ``lorry repo`` to the ``lorry`` app."""
    app.add_typer(repo_app, name="repo")
