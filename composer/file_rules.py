"""File-name rules that the registry and the CLI share: which extensions are refused as
pickles. A pure module (no imports), so that ``lorry push`` checks a directory with the
registry's own list before it uploads anything, without importing the registry."""

from __future__ import annotations

__all__ = ["PICKLE_EXTENSIONS", "pickle_extension"]

PICKLE_EXTENSIONS = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill")
"""Files whose loading unpickles (torch, pickle, joblib, dill): refused by extension."""


def pickle_extension(path: str) -> str | None:
    """The refused extension that ``path`` ends with (case-insensitive), else ``None``."""
    lowered = path.lower()
    for extension in PICKLE_EXTENSIONS:
        if lowered.endswith(extension):
            return extension
    return None
