"""Shared pieces of the registry commands: options, argument parsing, client, output."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cli.client import LorryClient, LorryClientError
from cli.suggest import did_you_mean
from cli.transfer import TransferProgress

__all__ = [
    "ActorOption",
    "JsonOption",
    "Kind",
    "LimitOption",
    "OffsetOption",
    "ReasonOption",
    "RegistryOption",
    "SinceOption",
    "UntilOption",
    "echo_json",
    "fail",
    "is_reference",
    "parse_reference",
    "parse_time",
    "registry_client",
    "stderr",
    "stdout",
    "step_progress",
    "transfer_progress",
]

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
_REPO_RE = re.compile(rf"^({_NAME}/{_NAME})(?:@(.+))?$")
_DURATION_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Kind(StrEnum):
    adapter = "adapter"
    model = "model"


RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="LORRY_URL",
        metavar="URL",
        show_default=False,
        help="Registry address (default: $LORRY_URL, else http://127.0.0.1:8765).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why; recorded in the audit log.")
]
ActorOption = Annotated[str | None, typer.Option("--actor")]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="ISO time or a duration back: 30m, 1h, 7d.")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="ISO time or a duration back: 30m, 1h, 7d.")
]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=1000)]
OffsetOption = Annotated[int, typer.Option("--offset", min=0)]


# -- helpers ---------------------------------------------------------------------------------


def parse_reference(value: str, *, allow_ref: bool) -> tuple[str, str | None]:
    match = _REPO_RE.match(value)
    if match is None or (match.group(2) is not None and not allow_ref):
        shape = "NAMESPACE/NAME[@REF]" if allow_ref else "NAMESPACE/NAME"
        raise typer.BadParameter(
            f"{value!r} is not {shape}; namespace and name are letters, digits, '.', '_' "
            "and '-' (e.g. acme/sql-gen" + ("@production)" if allow_ref else ")"),
            param_hint=f"'{shape}'",
        )
    ref = match.group(2)
    if ref is not None and not ref.strip():
        raise typer.BadParameter(f"{value!r} has an empty reference after '@'")
    return match.group(1), ref


def is_reference(value: str) -> bool:
    """Whether ``value`` has the shape of a registry reference, NAMESPACE/NAME[@REF]."""
    try:
        parse_reference(value, allow_ref=True)
    except typer.BadParameter:
        return False
    return True


def parse_time(value: str | None, option: str) -> str | None:
    """An ISO 8601 time, or a duration back from now (``30m``, ``1h``, ``7d``, ``2w``)."""
    if value is None:
        return None
    match = _DURATION_RE.match(value.strip())
    if match:
        delta = timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})
        return (datetime.now(UTC) - delta).isoformat()
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither an ISO 8601 time (2026-03-03T12:00:00Z) nor a duration "
            "such as 30m, 1h, 7d",
            param_hint=f"'{option}'",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@contextmanager
def registry_client(registry: str | None) -> Iterator[LorryClient]:
    """A client for one command; registry and local file errors end it with exit status 1."""
    try:
        with LorryClient(registry) as client:
            try:
                yield client
            except LorryClientError as exc:
                hint = did_you_mean(client, exc) if exc.status == 404 else None
                fail(f"{exc.message}; {hint}" if hint else exc.message, exc.code)
    except LorryClientError as exc:
        fail(exc.message, exc.code)
    except OSError as exc:
        path = exc.filename2 or exc.filename
        where = f"{path}: " if path else ""
        fail(f"{where}{exc.strerror or exc}", "local_io")


def fail(message: str, code: str | None = None) -> NoReturn:
    """Print ``error: message [code]`` in red on stderr and exit with status 1."""
    suffix = f" [{code}]" if code else ""
    stderr.print(f"[bold red]error:[/] {escape(message)}{escape(suffix)}")
    raise typer.Exit(1)


class _RichProgress(TransferProgress):
    """Byte progress bars on stderr, one per transfer phase."""

    _LABELS = {"hash": "hashing", "upload": "uploading", "download": "downloading"}

    def __init__(self, enabled: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=stderr,
            disable=not enabled,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def start(self, phase: str, total: int) -> None:
        if total:
            label = self._LABELS.get(phase, phase)
            self._tasks[phase] = self._progress.add_task(label, total=total)

    def advance(self, phase: str, nbytes: int) -> None:
        task = self._tasks.get(phase)
        if task is not None:
            self._progress.advance(task, nbytes)


def transfer_progress(json_out: bool) -> _RichProgress:
    return _RichProgress(enabled=not json_out and stderr.is_terminal)


def step_progress(console: Console | None = None) -> Progress:
    """A transient bar of steps done / total (modules composed, tensors exported)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or stderr,
        transient=True,
    )
