"""Checks ``lorry push`` makes before it hashes or uploads anything.

- ``--include``/``--exclude``: shell globs (``fnmatch``, ``*`` also crosses ``/``) on
  the POSIX path relative to the directory; a pattern ending in ``/`` names a folder
  and everything below it. A file is pushed when it matches an include (or none are
  given) and no exclude.
- Kind: an adapter needs ``adapter_config.json`` and ``adapter_model.safetensors``, a
  model ``config.json`` and ``*.safetensors`` weights, at the top of the directory; a
  directory with the other kind's files is named as such, with the flag that pushes
  it. A repository that exists with another kind is refused too: a repository keeps
  its kind.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cli.client import LorryClient, LorryClientError

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
MODEL_CONFIG = "config.json"


def _matches(path: str, pattern: str) -> bool:
    if pattern.endswith("/"):
        return path.startswith(pattern) or fnmatch.fnmatchcase(path, pattern + "*")
    return fnmatch.fnmatchcase(path, pattern)


@dataclass(frozen=True)
class PathFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def keeps(self, path: str) -> bool:
        if self.include and not any(_matches(path, pattern) for pattern in self.include):
            return False
        return not any(_matches(path, pattern) for pattern in self.exclude)


def path_filter(include: Sequence[str] | None, exclude: Sequence[str] | None) -> PathFilter | None:
    if not include and not exclude:
        return None
    return PathFilter(tuple(include or ()), tuple(exclude or ()))


def _looks_like_model(paths: set[str]) -> bool:
    return MODEL_CONFIG in paths and any(
        "/" not in path and path.endswith(".safetensors") for path in paths
    )


def _missing_for_kind(kind: str, paths: set[str]) -> list[str]:
    if kind == "adapter":
        return [name for name in ADAPTER_FILES if name not in paths]
    missing = [] if MODEL_CONFIG in paths else [MODEL_CONFIG]
    if not any("/" not in path and path.endswith(".safetensors") for path in paths):
        missing.append("*.safetensors weights")
    return missing


def check_directory_kind(root: Path, kind: str, files: Sequence[str]) -> None:
    """Refuse a directory that lacks what ``kind`` needs, naming the kind it looks like."""
    paths = set(files)
    missing = _missing_for_kind(kind, paths)
    if not missing:
        return
    if kind == "adapter" and _looks_like_model(paths):
        raise LorryClientError(
            "invalid_adapter",
            f"{root} looks like a model directory ({MODEL_CONFIG} and safetensors weights, "
            f"no {' or '.join(missing)}), not a LoRA adapter; push it with --kind model",
        )
    if kind == "model" and ADAPTER_FILES[0] in paths:
        raise LorryClientError(
            "invalid_model",
            f"{root} looks like a LoRA adapter ({ADAPTER_FILES[0]}), not a model directory; "
            "push it with --kind adapter (the default)",
        )
    hint = (
        "push the directory written by PEFT's `save_pretrained`"
        if kind == "adapter"
        else "push the directory written by transformers' `save_pretrained`"
    )
    raise LorryClientError(
        "invalid_adapter" if kind == "adapter" else "invalid_model",
        f"{root} has no {', '.join(missing)} at its top, which a {kind} needs; {hint}",
    )


def check_repository_kind(client: LorryClient, repository: str, kind: str) -> None:
    """Refuse pushing ``kind`` into a repository that exists with another kind."""
    try:
        existing = client.get_repo(repository)
    except LorryClientError as exc:
        if exc.code == "repository_not_found":
            return
        raise
    if existing.get("kind") not in (None, kind):
        raise LorryClientError(
            "invalid_input",
            f"{repository} is a repository of kind {existing['kind']}, and a repository "
            f"keeps its kind; push with --kind {existing['kind']} or to another repository",
        )


def check_kind(
    client: LorryClient, root: Path, repository: str, kind: str, files: Sequence[str]
) -> None:
    check_directory_kind(root, kind, files)
    check_repository_kind(client, repository, kind)
