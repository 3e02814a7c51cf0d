"""Rich tables and panels for the registry commands' human output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from cli.tables import Column, FittedTable

__all__ = [
    "alias_history_table",
    "aliases_table",
    "audit_table",
    "human_bytes",
    "repo_panel",
    "repos_table",
    "version_panel",
    "versions_table",
]


def human_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _text(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, list | tuple):
        return escape(", ".join(str(item) for item in value))
    if isinstance(value, dict):
        return escape(json.dumps(value, sort_keys=True))
    return escape(str(value))


_LONGEST_VALUE = 20
"""Audit values longer than this (digests, user agents) are cut; ``--json`` has them whole."""


def _compact(value: Any) -> str:
    """An audit ``before``/``after`` dict as ``key=value`` pairs, long values shortened."""
    if not isinstance(value, dict):
        return _text(value)
    parts = []
    for key, item in value.items():
        if item is None:
            continue
        shown = str(item)
        if len(shown) > _LONGEST_VALUE:
            shown = shown[: _LONGEST_VALUE - 1] + "…"
        parts.append(f"{key}={shown}")
    return escape(" ".join(parts)) if parts else "-"


def count(number: int, noun: str) -> str:
    """``1 file``, ``3 files``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _short_time(value: str | None) -> str:
    if not value:
        return "-"
    return value.replace("T", " ")[:19]


def _aliases_text(aliases: dict[str, int] | None) -> str:
    if not aliases:
        return "-"
    return escape(", ".join(f"{name}→{number}" for name, number in sorted(aliases.items())))


def repos_table(items: Sequence[dict[str, Any]], total: int) -> FittedTable:
    table = FittedTable(
        f"{len(items)} of {total} repositories",
        [
            Column("repository", key=True, style="bold cyan"),
            Column("kind", drop=3),
            Column("latest", key=True, justify="right"),
            Column("aliases"),
            Column("base model", drop=4),
            Column("tags", drop=1),
            Column("description", drop=2),
        ],
    )
    for repo in items:
        latest = repo.get("latest_version")
        archived = " [dim](archived)[/]" if repo.get("archived") else ""
        table.add_row(
            escape(repo["id"]) + archived,
            _text(repo.get("kind")),
            "-" if latest is None else str(latest),
            _aliases_text(repo.get("aliases")),
            _text(repo.get("base_model")),
            _text(repo.get("tags")),
            _text(repo.get("description")),
        )
    return table


def versions_table(items: Sequence[dict[str, Any]], total: int) -> FittedTable:
    table = FittedTable(
        f"versions ({total})",
        [
            Column("version", key=True, justify="right", style="bold"),
            Column("digest", key=True),
            Column("aliases"),
            Column("size", key=True, justify="right"),
            Column("downloads", drop=2, justify="right"),
            Column("created", drop=4),
            Column("by", drop=3),
            Column("message", drop=1),
        ],
    )
    for version in items:
        table.add_row(
            str(version["version"]),
            escape(version["digest"][:19]),
            _text(version.get("aliases")),
            human_bytes(version.get("size")),
            str(version.get("downloads", 0)),
            _short_time(version.get("created_at")),
            _text(version.get("created_by")),
            _text(version.get("message")),
        )
    return table


def _fields_table(rows: Sequence[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def repo_panel(repo: dict[str, Any]) -> Panel:
    rows = [
        ("kind", _text(repo.get("kind"))),
        ("description", _text(repo.get("description"))),
        ("tags", _text(repo.get("tags"))),
        ("base model", _text(repo.get("base_model"))),
        ("latest", _text(repo.get("latest_version"))),
        ("aliases", _aliases_text(repo.get("aliases"))),
        ("downloads", str(repo.get("downloads", 0))),
        ("created", f"{_short_time(repo.get('created_at'))} by {_text(repo.get('created_by'))}"),
    ]
    archived = repo.get("archived")
    if archived:
        rows.append(
            (
                "archived",
                f"{_short_time(archived['at'])} by {_text(archived['by'])}: "
                f"{_text(archived['reason'])} (read only; `lorry repo unarchive` reverses it)",
            )
        )
    return Panel(_fields_table(rows), title=escape(repo["id"]), title_align="left")


def _files_table(files: Sequence[dict[str, Any]]) -> FittedTable:
    table = FittedTable(
        "files",
        [
            Column("path", key=True, style="cyan"),
            Column("size", key=True, justify="right"),
            Column("sha256", drop=1),
        ],
    )
    for entry in files:
        table.add_row(escape(entry["path"]), human_bytes(entry.get("size")), entry["sha256"][:16])
    return table


def _modules_table(modules: dict[str, dict[str, list[int]]]) -> FittedTable:
    table = FittedTable(
        f"modules ({len(modules)})",
        [
            Column("module", key=True),
            Column("lora_A", key=True, justify="right"),
            Column("lora_B", key=True, justify="right"),
        ],
    )
    for name, shapes in sorted(modules.items()):
        table.add_row(
            escape(name),
            "×".join(str(d) for d in shapes.get("lora_A", [])),
            "×".join(str(d) for d in shapes.get("lora_B", [])),
        )
    return table


_METADATA_KEYS = (
    "peft_type",
    "r",
    "lora_alpha",
    "use_rslora",
    "target_modules",
    "base_model_name_or_path",
    "rank_pattern",
    "alpha_pattern",
    "parameter_count",
    "dtypes",
)


def version_panel(version: dict[str, Any], *, show_modules: bool = False) -> Group:
    ref = f"{version['repository']}@{version['version']}"
    rows = [
        ("digest", escape(version["digest"])),
        ("commit", escape(version.get("commit", ""))),
        ("kind", _text(version.get("kind"))),
        ("aliases", _text(version.get("aliases"))),
        ("size", human_bytes(version.get("size"))),
        ("downloads", str(version.get("downloads", 0))),
        (
            "created",
            f"{_short_time(version.get('created_at'))} by {_text(version.get('created_by'))}",
        ),
        ("message", _text(version.get("message"))),
    ]
    metadata = version.get("metadata") or {}
    rows += [(key, _text(metadata.get(key))) for key in _METADATA_KEYS if key in metadata]
    card = version.get("card") or {}
    if card:
        rows.append(("card", _text(card)))
    if version.get("lineage"):
        rows.append(("lineage", _text(version["lineage"])))
    parts: list[Any] = [
        Panel(_fields_table(rows), title=escape(ref), title_align="left"),
        _files_table(version.get("files", [])),
    ]
    modules = metadata.get("modules") or {}
    if show_modules and modules:
        parts.append(_modules_table(modules))
    elif modules:
        parts.append(f"{len(modules)} LoRA modules (--modules lists their shapes)")
    return Group(*parts)


def aliases_table(items: Sequence[dict[str, Any]], repository: str) -> FittedTable:
    table = FittedTable(
        f"aliases of {escape(repository)}",
        [
            Column("alias", key=True, style="bold cyan"),
            Column("version", key=True, justify="right"),
            Column("digest", key=True),
            Column("updated", drop=3),
            Column("by", drop=2),
            Column("reason", drop=1),
        ],
    )
    for alias in items:
        table.add_row(
            escape(alias["name"]),
            str(alias["version"]),
            escape(str(alias.get("digest", ""))[:19]),
            _short_time(alias.get("updated_at")),
            _text(alias.get("updated_by")),
            _text(alias.get("reason")),
        )
    return table


def alias_history_table(items: Sequence[dict[str, Any]], title: str) -> FittedTable:
    table = FittedTable(
        escape(title),
        [
            Column("at", key=True),
            Column("from", key=True, justify="right"),
            Column("to", key=True, justify="right"),
            Column("actor", key=True),
            Column("reason", drop=2),
            Column("request id", drop=1),
        ],
    )
    for event in items:
        table.add_row(
            _short_time(event.get("at")),
            _text(event.get("from_version")),
            _text(event.get("to_version")),
            _text(event.get("actor")),
            _text(event.get("reason")),
            _text(event.get("request_id")),
        )
    return table


def audit_table(items: Sequence[dict[str, Any]], total: int) -> FittedTable:
    table = FittedTable(
        f"{len(items)} of {total} audit events",
        [
            Column("at", key=True),
            Column("actor", key=True),
            Column("action", key=True, style="bold"),
            Column("repository", key=True, style="cyan"),
            Column("target", drop=2),
            Column("before", drop=1),
            Column("after", drop=3),
        ],
    )
    for event in items:
        table.add_row(
            _short_time(event.get("at")),
            _text(event.get("actor")),
            _text(event.get("action")),
            _text(event.get("repository")),
            _text(event.get("target")),
            _compact(event.get("before")),
            _compact(event.get("after")),
        )
    return table
