"""File-name rules that the registry and the CLI share: which pickles are refused.

A pure module (no imports beyond ``re``), so that ``lorry push`` checks a directory with
the registry's own rules before it uploads anything, without importing the registry.
Pickles are refused by extension, except the files transformers' Trainer writes, which
the registry accepts after a static scan (``registry.validation.trainer_state``).
"""

from __future__ import annotations

import re

__all__ = [
    "PICKLE_EXTENSIONS",
    "TRAINER_STATE_NAMES",
    "is_trainer_state",
    "pickle_extension",
    "refused_pickle_extension",
]

PICKLE_EXTENSIONS = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill")
"""Files whose loading unpickles (torch, pickle, joblib, dill): refused by extension."""

TRAINER_STATE_NAMES = (
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state.pth",
    "rng_state_<N>.pth",
)
_TRAINER_NAMES = re.compile(
    r"(?:.*/)?(?:training_args\.bin|optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state(?:_\d+)?\.pth)"
)


def is_trainer_state(path: str) -> bool:
    """Whether ``path`` is named like a file that transformers' Trainer writes as a pickle."""
    return _TRAINER_NAMES.fullmatch(path) is not None


def pickle_extension(path: str) -> str | None:
    """The pickle extension that ``path`` ends with (case-insensitive), else ``None``."""
    lowered = path.lower()
    for extension in PICKLE_EXTENSIONS:
        if lowered.endswith(extension):
            return extension
    return None


def refused_pickle_extension(path: str) -> str | None:
    """The extension for which ``path`` is refused; ``None`` for other files and the
    Trainer's own state files."""
    return None if is_trainer_state(path) else pickle_extension(path)
