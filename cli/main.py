"""The `lorry` command line."""

from __future__ import annotations

import typer

from cli import compose_commands, registry_commands, server_commands

app = typer.Typer(
    name="lorry",
    help="Lorry: a registry and composition service for LoRA adapters.",
    no_args_is_help=True,
    add_completion=False,
)

server_commands.register(app)
registry_commands.register(app)
compose_commands.register(app)

if __name__ == "__main__":
    app()
