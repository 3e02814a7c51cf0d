"""The manifest of a version: file paths, digests, sizes, pickles and size limits.

Paths are relative POSIX paths that are safe to create under any directory on
Linux, macOS and Windows, by the rule of ``composer.paths`` (shared with the
CLI, which checks a directory before uploading it): no ``..``, ``.`` or empty
segment, no leading ``/``, no backslash, no drive letter, no control
character, none of ``< > : " | ? *``, no name ending in a dot or a space, no
Windows device name (``CON``, ``NUL``, ``COM1`` ..., with any extension), at
most 255 UTF-8 bytes per segment and 1024 in all. No two paths of a version
may name one file on a case- and normalisation-insensitive file system
(``README.md`` and ``readme.md``, NFC and NFD spellings), and a path that is a
file cannot also be a directory of another path.

Pickled weights are refused by extension: ``.bin .pt .pth .pkl .pickle .ckpt
.joblib .dill`` (case-insensitive). ``.npy`` / ``.npz`` are accepted: numpy
refuses to unpickle object arrays unless the reader asks for it. The files that
transformers' Trainer writes (``training_args.bin``, ``optimizer.pt`` ...) are the
exception: ``registry.validation.trainer_state`` scans them instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from composer.file_rules import PICKLE_EXTENSIONS
from composer.paths import colliding_paths, path_problem
from registry.config import Settings
from registry.errors import InvalidInput, InvalidPath, PickleNotAllowed, TooLarge
from registry.validation.trainer_names import is_trainer_state

__all__ = [
    "PICKLE_EXTENSIONS",
    "BlobReader",
    "ManifestEntry",
    "check_manifest",
    "check_path",
]

BlobReader = Callable[[str, int, int], bytes]
"""``read(sha256, start, length)``: at most ``length`` bytes of a stored blob from ``start``."""


_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a version: its path, the sha256 (64 lowercase hex) and size of its blob."""

    path: str
    sha256: str
    size: int


def check_path(path: object) -> str:
    """Return ``path`` if it is a safe relative POSIX path, else raise ``InvalidPath``."""
    problem = path_problem(path)
    if problem is not None:
        raise InvalidPath(problem, path=path)
    assert isinstance(path, str)
    return path


def _check_entry_fields(entry: ManifestEntry) -> None:
    check_path(entry.path)
    if not isinstance(entry.sha256, str) or not _SHA256.fullmatch(entry.sha256):
        raise InvalidInput(
            f"file {entry.path!r}: sha256 {entry.sha256!r} is not 64 lowercase hex digits; "
            f"send the hex sha256 of the file's bytes",
            path=entry.path,
        )
    if isinstance(entry.size, bool) or not isinstance(entry.size, int) or entry.size < 0:
        raise InvalidInput(
            f"file {entry.path!r}: size {entry.size!r} must be a non-negative integer "
            f"(the file's length in bytes)",
            path=entry.path,
        )


def _check_pickle(path: str) -> None:
    # Trainer state files are scanned, not refused (registry.validation.trainer_state).
    if is_trainer_state(path):
        return
    lowered = path.lower()
    for extension in PICKLE_EXTENSIONS:
        if lowered.endswith(extension):
            raise PickleNotAllowed(
                f"file {path!r} looks like pickled weights ({extension}); pickles can run "
                f"arbitrary code when loaded, so Lorry refuses them. Save the weights with "
                f"safetensors instead: PEFT's `model.save_pretrained(dir)` writes "
                f"adapter_model.safetensors by default, or call "
                f"`safetensors.torch.save_file(state_dict, 'adapter_model.safetensors')`; "
                f"then push without the {extension} file",
                path=path,
            )


def _check_duplicates(entries: Sequence[ManifestEntry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.path in seen:
            raise InvalidPath(
                f"file path {entry.path!r} appears more than once in the manifest; "
                f"list each file once",
                path=entry.path,
            )
        seen.add(entry.path)
    for entry in entries:
        segments = entry.path.split("/")
        for depth in range(1, len(segments)):
            parent = "/".join(segments[:depth])
            if parent in seen:
                raise InvalidPath(
                    f"{parent!r} is both a file and the folder of {entry.path!r}; "
                    f"rename one of them",
                    path=entry.path,
                )
    collision = colliding_paths(entry.path for entry in entries)
    if collision is not None:
        first, second = collision
        raise InvalidPath(
            f"file paths {first!r} and {second!r} differ only in letter case or Unicode "
            "normalisation, so they name the same file (or a file and its folder) on macOS "
            "and Windows; rename one of them",
            path=second,
        )


def _check_limits(entries: Sequence[ManifestEntry], settings: Settings) -> None:
    if len(entries) > settings.max_files_per_version:
        raise TooLarge(
            f"a version holds at most {settings.max_files_per_version} files, this one has "
            f"{len(entries)}; leave out files that loading the adapter does not need",
            files=len(entries),
        )
    for entry in entries:
        if entry.size > settings.max_file_bytes:
            raise TooLarge(
                f"file {entry.path!r} is {entry.size} bytes, over the limit of "
                f"{settings.max_file_bytes} bytes per file (LORRY_MAX_FILE_BYTES)",
                path=entry.path,
            )
    total = sum(entry.size for entry in entries)
    if total > settings.max_version_bytes:
        raise TooLarge(
            f"the files of this version add up to {total} bytes, over the limit of "
            f"{settings.max_version_bytes} bytes per version (LORRY_MAX_VERSION_BYTES)",
            size=total,
        )


def check_manifest(entries: Sequence[ManifestEntry], settings: Settings) -> None:
    """Refuse a manifest with an unsafe path, a bad digest or size, a pickle, a duplicate
    or a size over the limits of ``settings``.

    Order: each entry's path, digest and size (``InvalidPath`` / ``InvalidInput``), then
    pickles (``PickleNotAllowed``), duplicates and file/folder clashes (``InvalidPath``),
    then limits (``TooLarge``): the first error raised is the most specific one.
    """
    if not entries:
        raise InvalidInput(
            "the version has no files; push a directory with adapter_config.json and "
            "adapter_model.safetensors"
        )
    for entry in entries:
        _check_entry_fields(entry)
    for entry in entries:
        _check_pickle(entry.path)
    _check_duplicates(entries)
    _check_limits(entries, settings)
