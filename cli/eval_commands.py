"""``lorry eval``: record evaluation results on versions, show them, compare versions, and
run evaluations as registry jobs (``lorry eval run``, in ``cli.eval_run``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from cli.common import (
    JsonOption,
    RegistryOption,
    echo_json,
    fail,
    parse_reference,
    registry_client,
    stdout,
)
from cli.eval_run import eval_run
from cli.tables import Column, FittedTable

__all__ = ["eval_app", "register"]

eval_app = typer.Typer(
    name="eval",
    help="Record evaluation results on versions, show them, compare versions.",
    no_args_is_help=True,
)


def _repo_url(repository: str) -> str:
    namespace, _, name = repository.partition("/")
    return f"/api/v1/repos/{quote(namespace, safe='')}/{quote(name, safe='')}"


def _versioned(reference: str) -> tuple[str, str]:
    repo, ref = parse_reference(reference, allow_ref=True)
    if ref is None:
        raise typer.BadParameter(
            f"{reference!r} names no version; write NAMESPACE/NAME@REF (e.g. acme/sql-gen@3)"
        )
    return repo, ref


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _results_table(page: dict[str, Any]) -> FittedTable:
    title = f"{page['repository']}@{page['version']} ({len(page['items'])} results)"
    table = FittedTable(
        escape(title),
        [
            Column("task", key=True, style="bold"),
            Column("metric", key=True),
            Column("filter", drop=3),
            Column("value", key=True, justify="right"),
            Column("± stderr", drop=4, justify="right"),
            Column("n-shot", drop=2, justify="right"),
            Column("source", drop=1),
            Column("id", drop=5, justify="right"),
        ],
    )
    for item in page["items"]:
        table.add_row(
            escape(item["task"]),
            escape(item["metric"]),
            escape(item["filter"]),
            _number(item["value"]),
            _number(item["stderr"]),
            "—" if item["n_shot"] is None else str(item["n_shot"]),
            item["source"],
            str(item["id"]),
        )
    return table


def _significance(row: dict[str, Any]) -> str:
    if row["significant"] is None:
        return "—"
    return "yes" if row["significant"] else "no"


def _compare_table(comparison: dict[str, Any]) -> FittedTable:
    title = f"{comparison['repository']}: version {comparison['base']} → {comparison['candidate']}"
    table = FittedTable(
        escape(title),
        [
            Column("task", key=True, style="bold"),
            Column("metric", key=True),
            Column("filter", drop=1),
            Column("base", key=True, justify="right"),
            Column("candidate", key=True, justify="right"),
            Column("Δ", key=True, justify="right"),
            Column("significant", drop=2, justify="right"),
        ],
    )
    for row in comparison["rows"]:
        difference = _number(row["difference"])
        if row["improved"] is True:
            difference = f"[green]{difference}[/]"
        elif row["improved"] is False:
            difference = f"[red]{difference}[/]"
        table.add_row(
            escape(row["task"]),
            escape(row["metric"]),
            escape(row["filter"]),
            _number(row["base"]),
            _number(row["candidate"]),
            difference,
            _significance(row),
        )
    return table


def _history_table(history: dict[str, Any]) -> FittedTable:
    """One column per version; at narrow widths the oldest versions are left out first."""
    versions = [v["version"] for v in history["versions"]]
    labels = {v["version"]: ", ".join(v["aliases"]) for v in history["versions"]}
    columns = [Column("task/metric", key=True, style="bold")]
    for index, number in enumerate(versions):
        alias = f" ({labels[number]})" if labels[number] else ""
        newest = index == len(versions) - 1
        columns.append(
            Column(escape(f"v{number}{alias}"), key=newest, drop=index + 1, justify="right")
        )
    table = FittedTable(escape(f"results of {history['repository']}"), columns)
    for series in history["series"]:
        values = {point["version"]: point["value"] for point in series["points"]}
        name = f"{series['task']}/{series['metric']}"
        if series["filter"] != "none":
            name += f",{series['filter']}"
        table.add_row(escape(name), *(_number(values.get(n)) for n in versions))
    return table


@eval_app.command("add")
def eval_add(
    reference: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME@REF")],
    document: Annotated[
        Path,
        typer.Argument(
            metavar="RESULTS.json",
            help='lm-evaluation-harness results_*.json, or {"task": {"metric": value}}.',
            exists=True,
            dir_okay=False,
        ),
    ],
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Record the results of RESULTS.json against a version (kept whole, and audited)."""
    repo, ref = _versioned(reference)
    try:
        body = json.loads(document.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{document} is not a JSON document ({exc}); pass the results file as written")
    with registry_client(registry) as client:
        recorded = client.request(
            "POST", f"{_repo_url(repo)}/versions/{quote(ref, safe='')}/evals", json=body
        ).json()
    if json_out:
        echo_json(recorded)
        return
    stdout.print(
        f"recorded {len(recorded['results'])} results ({recorded['source']}) on "
        f"{escape(recorded['repository'])}@{recorded['version']} ({recorded['digest']})"
    )
    for note in recorded["skipped"]:
        stdout.print(f"skipped: {escape(note)}")


@eval_app.command("show")
def eval_show(
    reference: Annotated[
        str, typer.Argument(metavar="NAMESPACE/NAME[@REF]", help="Without @REF: every version.")
    ],
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """The results of a version; of a repository, every metric across its versions."""
    repo, ref = parse_reference(reference, allow_ref=True)
    url = f"{_repo_url(repo)}/evals"
    if ref is not None:
        url = f"{_repo_url(repo)}/versions/{quote(ref, safe='')}/evals"
    with registry_client(registry) as client:
        page = client.request("GET", url).json()
    if json_out:
        echo_json(page)
        return
    stdout.print(_results_table(page) if ref is not None else _history_table(page))


@eval_app.command("compare")
def eval_compare(
    base: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME@BASE")],
    candidate: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME@CANDIDATE")],
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Metric by metric: both values, the difference, and whether it is significant
    (|Δ| > 1.96·sqrt(se₁² + se₂²), where both have a standard error)."""
    base_repo, base_ref = _versioned(base)
    candidate_repo, candidate_ref = _versioned(candidate)
    if base_repo != candidate_repo:
        raise typer.BadParameter(
            f"compare two versions of one repository ({base_repo} and {candidate_repo} differ)"
        )
    with registry_client(registry) as client:
        comparison = client.request(
            "GET",
            f"{_repo_url(base_repo)}/evals/compare",
            params={"base": base_ref, "candidate": candidate_ref},
        ).json()
    if json_out:
        echo_json(comparison)
        return
    stdout.print(_compare_table(comparison))


def register(app: typer.Typer) -> None:
    eval_app.command("run")(eval_run)
    app.add_typer(eval_app, name="eval")
