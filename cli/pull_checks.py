"""What ``lorry pull`` checks in DIR before it writes: files of another model.

Pulling into a directory that holds files the version does not have would mix two
models silently (a tokenizer or a shard of the one before, beside the new adapter).
Such a pull is refused unless ``--overwrite``, which removes those files so that DIR
holds exactly the version. Files of the version already there are kept when their
sha256 matches and replaced otherwise; partial downloads a crash left are ours.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cli.client import LorryClientError

__all__ = ["check_pull_target"]

PARTIAL_SUFFIX = ".lorry-partial"
_NAMED = 5
"""Foreign files named in the refusal; the rest are counted."""


def _foreign_files(directory: Path, paths: Iterable[str]) -> list[Path]:
    if not directory.is_dir():
        return []
    wanted = {directory / path for path in paths}
    return sorted(
        path
        for path in directory.rglob("*")
        if (path.is_file() or path.is_symlink())
        and path not in wanted
        and not path.name.endswith(PARTIAL_SUFFIX)
    )


def check_pull_target(
    directory: Path, paths: Iterable[str], ref: str, *, overwrite: bool
) -> list[str]:
    """Refuse a ``directory`` holding files that are not among ``paths`` (those of
    ``ref``), or with ``overwrite`` remove them; the removed paths, relative to it."""
    foreign = _foreign_files(directory, paths)
    names = [path.relative_to(directory).as_posix() for path in foreign]
    if foreign and not overwrite:
        shown = ", ".join(names[:_NAMED]) + (
            f" (+{len(names) - _NAMED} more)" if len(names) > _NAMED else ""
        )
        raise LorryClientError(
            "directory_not_empty",
            f"{directory} holds files that are not in {ref}: {shown}; pull into an empty "
            "directory, or pass --overwrite to remove them and pull",
        )
    for path in foreign:
        path.unlink()
    return names
