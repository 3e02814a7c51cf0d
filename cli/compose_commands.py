"""`lorry compose`: run a composition recipe locally with the composer library.

The composer is imported when the command runs, so other commands do not pay
for loading torch and mergekit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from cli.common import RegistryOption, fail, is_reference, step_progress
from cli.remote_compose import compose_remote

if TYPE_CHECKING:
    from composer import ComposeResult, ProgressEvent

__all__ = ["register"]

_DEVICES = ("auto", "cpu", "cuda")


def _print_summary(console: Console, result: ComposeResult) -> None:
    ranks = [module.rank for module in result.modules if module.rank is not None]
    console.print(
        f"[green]Composed[/green] {result.method} of {len(result.inputs)} input(s) into "
        f"{result.output_type} [bold]{result.out_dir}[/bold]"
    )
    line = f"{len(result.modules)} modules on {result.device}"
    if ranks:
        line += f", ranks {min(ranks)}-{max(ranks)}"
    line += f", max relative error {result.max_error:.3e}"
    console.print(line)


def _refuse_registry_references(recipe: Path) -> None:
    """Inputs that are registry references (and no directory here) compose on the registry:
    say so, instead of the composer's "no adapter_config.json in acme/sql-gen@production"."""
    from composer.recipe import load_recipe

    inputs = load_recipe(recipe).inputs
    root = recipe.parent
    references = [
        item.adapter
        for item in inputs
        if is_reference(item.adapter) and not (root / item.adapter).expanduser().exists()
    ]
    if references:
        fail(
            f"{', '.join(references)}: registry reference(s), which compose on the registry: "
            f"run `lorry compose {recipe} --to NAMESPACE/NAME` to compose there and publish "
            "the result, or pull them (`lorry pull REF DIR`) and name the directories in "
            "the recipe",
            "registry_reference",
        )


def compose_command(
    recipe: Annotated[
        Path, typer.Argument(help="Recipe file (YAML, or JSON by its .json suffix).")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Directory to write the adapter or merged model to."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a non-empty output directory.")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu or cuda (overrides the recipe).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (no progress bar).")
    ] = False,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="NAMESPACE/NAME",
            help="Compose on the registry (inputs are registry refs) and publish there.",
        ),
    ] = None,
    alias: Annotated[
        str | None, typer.Option("--alias", help="With --to: point this alias at the result.")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="With --to: the version's message.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="With --to: follow the job with a progress bar.")
    ] = False,
    registry: RegistryOption = None,
) -> None:
    """Compose LoRA adapters as RECIPE says, into a new adapter or a merged model.

    With --out the composer runs here; with --to NAMESPACE/NAME the registry runs it
    as a job and publishes the result as a new version.
    """
    err = Console(stderr=True)
    if to is not None:
        if out is not None:
            err.print("[red]error:[/red] use either --out DIR (local) or --to NS/NAME (registry)")
            raise typer.Exit(code=1)
        compose_remote(
            recipe,
            to,
            alias=alias,
            message=message,
            wait=wait,
            registry=registry,
            as_json=as_json,
        )
        return
    if out is None:
        err.print(
            "[red]error:[/red] --out DIR (compose here) or --to NAMESPACE/NAME (compose on "
            "the registry) is required"
        )
        raise typer.Exit(code=1)
    if device is not None and device not in _DEVICES:
        err.print(f"[red]error:[/red] --device must be one of {', '.join(_DEVICES)}")
        raise typer.Exit(code=1)

    from composer import ComposerError, compose

    chosen: Literal["auto", "cpu", "cuda"] | None = device  # type: ignore[assignment]
    try:
        _refuse_registry_references(recipe)
        if as_json:
            result = compose(recipe, out, device=chosen, overwrite=overwrite)
        else:
            with step_progress(err) as bar:
                task = bar.add_task("composing", total=None)

                def on_progress(event: ProgressEvent) -> None:
                    bar.update(
                        task, completed=event.done, total=event.total, description=event.module
                    )

                result = compose(
                    recipe, out, device=chosen, overwrite=overwrite, progress=on_progress
                )
    except ComposerError as error:
        err.print(f"[red]error:[/red] {escape(error.message)}", highlight=False)
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_summary(Console(), result)


def register(app: typer.Typer) -> None:
    """Add the `compose` command to the `lorry` app."""
    app.command("compose")(compose_command)
