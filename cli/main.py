"""The `lorry` command line."""

from __future__ import annotations

import typer

from cli import (
    access_commands,
    admin_commands,
    compose_commands,
    eval_commands,
    export_commands,
    jobs_commands,
    registry_commands,
    repo_commands,
    server_commands,
    token_commands,
)

app = typer.Typer(
    name="lorry",
    help="Lorry: a registry and composition service for LoRA adapters.",
    no_args_is_help=True,
    add_completion=False,
)

server_commands.register(app)
registry_commands.register(app)
repo_commands.register(app)
compose_commands.register(app)
export_commands.register(app)
jobs_commands.register(app)
token_commands.register(app)
access_commands.register(app)
eval_commands.register(app)
# After registry_commands: it turns `audit` into a group with `audit verify`.
admin_commands.register(app)

if __name__ == "__main__":
    app()
