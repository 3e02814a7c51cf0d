"""Portable file paths: the rule for the relative paths a version may hold.

A path is safe when it can be created, as the one file it names, under any
directory on Linux, macOS and Windows:

- relative POSIX: no leading ``/``, no backslash, no drive letter, no ``..``,
  ``.`` or empty segment;
- no control character (U+0000-U+001F, U+007F-U+009F) and none of the
  characters Windows refuses in names (``< > : " | ? *``; ``a:b`` would also
  open an NTFS alternate data stream);
- no segment that ends in a dot or a space (Windows drops them, so ``a.`` and
  ``a`` are one file) and no device name of Windows (``CON``, ``PRN``, ``AUX``,
  ``NUL``, ``COM0-9``, ``LPT0-9`` and their superscript forms), with or
  without an extension, in any case (``nul.txt``, ``Com1.json``);
- at most 255 UTF-8 bytes per segment and 1024 in all.

A set of paths is safe together when no two of them name one file on a
case-insensitive, normalisation-insensitive file system (macOS, Windows):
``README.md`` and ``readme.md``, or the NFC and NFD spellings of ``café``.

Pure functions of strings, with no dependency: the registry refuses a
manifest that breaks the rule, and the CLI checks a directory before it
uploads anything. It lives in ``composer`` because both may import it
(``cli -> registry`` goes over HTTP only).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = [
    "MAX_PATH_BYTES",
    "MAX_SEGMENT_BYTES",
    "WINDOWS_DEVICE_NAMES",
    "collision_key",
    "colliding_paths",
    "path_problem",
]

MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 1024
WINDOWS_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{prefix}{digit}" for prefix in ("COM", "LPT") for digit in "0123456789¹²³"}
)
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
_DRIVE = re.compile(r"[A-Za-z]:")
_FIX = "use a relative path inside the adapter directory, with '/' between folders"


def _character_problem(shown: str, path: str) -> str | None:
    for char in path:
        if ord(char) < 32 or 127 <= ord(char) < 160:
            return f"file path {shown} contains the control character {char!r}; rename the file"
    if "\\" in path:
        return f"file path {shown} contains a backslash; {_FIX} (POSIX style, not Windows)"
    if path.startswith("/"):
        return f"file path {shown} is absolute; {_FIX}"
    if _DRIVE.match(path):
        return f"file path {shown} starts with a drive letter; {_FIX}"
    forbidden = sorted(set(path) & _WINDOWS_FORBIDDEN)
    if forbidden:
        return (
            f"file path {shown} contains {' '.join(forbidden)}, which Windows does not allow "
            "in file names; rename the file"
        )
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"file path {shown} is longer than {MAX_PATH_BYTES} bytes; use a shorter path"
    return None


def _segment_problem(shown: str, segment: str) -> str | None:
    if segment == "..":
        return (
            f"file path {shown} has a '..' segment, which would leave the version's "
            f"directory; {_FIX}"
        )
    if segment in ("", "."):
        return (
            f"file path {shown} has an empty or '.' segment (a doubled, leading or trailing "
            "'/' or a './'); write it as a plain relative path such as "
            "'adapter_config.json' or 'tokenizer/vocab.json'"
        )
    if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        return (
            f"file path {shown} has a name longer than {MAX_SEGMENT_BYTES} bytes; rename the file"
        )
    if segment.endswith((".", " ")):
        return (
            f"file path {shown} has the name {segment!r}, which ends in a dot or a space; "
            "Windows drops those, so it would not be the same file there: rename it"
        )
    device = segment.split(".", 1)[0].rstrip(" ").upper()
    if device in WINDOWS_DEVICE_NAMES:
        return (
            f"file path {shown} has the name {segment!r}; {device} is a device name on "
            "Windows (with any extension), where no file can have it: rename it"
        )
    return None


def path_problem(path: object) -> str | None:
    """Why ``path`` is not a safe relative path (a message naming it), or None if it is."""
    if not isinstance(path, str) or not path:
        return f"file path {path!r} must be a non-empty string; {_FIX}"
    shown = repr(path)
    problem = _character_problem(shown, path)
    if problem is not None:
        return problem
    for segment in path.split("/"):
        problem = _segment_problem(shown, segment)
        if problem is not None:
            return problem
    return None


def collision_key(path: str) -> str:
    """The name macOS and Windows see: Unicode NFC, case folded (``README.md`` ~ ``readme.md``)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def colliding_paths(paths: Iterable[str]) -> tuple[str, str] | None:
    """Two distinct paths that one case- and normalisation-insensitive file system would
    take as the same file, or as a file and a folder of the same name; None if there are none.

    ``paths`` are distinct and individually safe (``path_problem`` is None for each).
    """
    files: dict[str, str] = {}
    for path in paths:
        key = collision_key(path)
        other = files.setdefault(key, path)
        if other != path:
            return other, path
    folders: dict[str, str] = {}
    for key, path in files.items():
        segments = key.split("/")
        for depth in range(1, len(segments)):
            folders.setdefault("/".join(segments[:depth]), path)
    for key, path in files.items():
        if key in folders and folders[key] != path:
            return path, folders[key]
    return None
