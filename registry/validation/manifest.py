"""The manifest of a version: file paths, digests, sizes, pickles and size limits.

Paths are relative POSIX paths that are safe to create under any directory on
Linux, macOS and Windows: no ``..``, ``.`` or empty segment, no leading ``/``,
no backslash, no drive letter, no control character, at most 255 UTF-8 bytes
per segment and 1024 in all. A path that is a file cannot also be a directory
of another path.

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


MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 1024

_SHA256 = re.compile(r"[0-9a-f]{64}")
_DRIVE = re.compile(r"[A-Za-z]:")
_FIX_PATH = "use a relative path inside the adapter directory, with '/' between folders"


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a version: its path, the sha256 (64 lowercase hex) and size of its blob."""

    path: str
    sha256: str
    size: int


def check_path(path: object) -> str:
    """Return ``path`` if it is a safe relative POSIX path, else raise ``InvalidPath``."""
    if not isinstance(path, str) or not path:
        raise InvalidPath(f"file path {path!r} must be a non-empty string; {_FIX_PATH}", path=path)
    shown = repr(path)
    for char in path:
        if ord(char) < 32 or 127 <= ord(char) < 160:
            raise InvalidPath(
                f"file path {shown} contains the control character {char!r}; rename the file",
                path=path,
            )
    if "\\" in path:
        raise InvalidPath(
            f"file path {shown} contains a backslash; {_FIX_PATH} (POSIX style, not Windows)",
            path=path,
        )
    if path.startswith("/"):
        raise InvalidPath(f"file path {shown} is absolute; {_FIX_PATH}", path=path)
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidPath(
            f"file path {shown} is longer than {MAX_PATH_BYTES} bytes; use a shorter path",
            path=path,
        )
    segments = path.split("/")
    if _DRIVE.match(segments[0]):
        raise InvalidPath(f"file path {shown} starts with a drive letter; {_FIX_PATH}", path=path)
    for segment in segments:
        if segment == "..":
            raise InvalidPath(
                f"file path {shown} has a '..' segment, which would leave the version's "
                f"directory; {_FIX_PATH}",
                path=path,
            )
        if segment in ("", "."):
            raise InvalidPath(
                f"file path {shown} has an empty or '.' segment (a doubled, leading or "
                f"trailing '/' or a './'); write it as a plain relative path such as "
                f"'adapter_config.json' or 'tokenizer/vocab.json'",
                path=path,
            )
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            raise InvalidPath(
                f"file path {shown} has a name longer than {MAX_SEGMENT_BYTES} bytes; "
                f"rename the file",
                path=path,
            )
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
