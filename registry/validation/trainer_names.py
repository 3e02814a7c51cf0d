"""The names of the pickles that transformers' Trainer writes (see ``trainer_state``)."""

from __future__ import annotations

import re

__all__ = ["TRAINER_STATE_NAMES", "is_trainer_state"]

TRAINER_STATE_NAMES = (
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state.pth",
    "rng_state_<N>.pth",
)
_NAMES = re.compile(
    r"(?:.*/)?(?:training_args\.bin|optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state(?:_\d+)?\.pth)"
)


def is_trainer_state(path: str) -> bool:
    """Whether ``path`` is named like a file that transformers' Trainer writes as a pickle."""
    return _NAMES.fullmatch(path) is not None
