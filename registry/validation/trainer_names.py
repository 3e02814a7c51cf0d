"""The names of the pickles that transformers' Trainer writes (see ``trainer_state``); defined
in ``composer.file_rules``, which ``lorry push`` shares."""

from __future__ import annotations

from composer.file_rules import TRAINER_STATE_NAMES, is_trainer_state

__all__ = ["TRAINER_STATE_NAMES", "is_trainer_state"]
