"""The `lorry` command line."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from cli import (
    access_commands,
    admin_commands,
    compose_commands,
    eval_commands,
    export_commands,
    jobs_commands,
    lifecycle_commands,
    registry_commands,
    repo_commands,
    server_commands,
    serving_commands,
    token_commands,
)

app = typer.Typer(
    name="lorry",
    help="Lorry: a registry and composition service for LoRA adapters.",
    no_args_is_help=True,
)


def _lorry_version() -> str:
    try:
        return version("lorry")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"lorry {_lorry_version()}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print lorry's version and exit.",
        ),
    ] = False,
) -> None:
    """Lorry: a registry and composition service for LoRA adapters."""


server_commands.register(app)
registry_commands.register(app)
repo_commands.register(app)
lifecycle_commands.register(app)
compose_commands.register(app)
export_commands.register(app)
jobs_commands.register(app)
token_commands.register(app)
access_commands.register(app)
serving_commands.register(app)
eval_commands.register(app)
admin_commands.register(app)

if __name__ == "__main__":
    app()
