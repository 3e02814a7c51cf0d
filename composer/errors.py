"""Errors of the composer.

Every error a recipe or its inputs can cause is a ``ComposerError`` with a
stable ``code`` and a message that says what was wrong and how to fix it. The
service maps them to HTTP in one place; the CLI prints the message.

    ComposerError                   composer_error
    ├── RecipeError                 invalid_recipe
    ├── InputError                  invalid_input
    │   ├── AdapterNotFound         adapter_not_found
    │   ├── InvalidAdapter          invalid_adapter
    │   ├── UnsupportedAdapter      unsupported_adapter
    │   ├── IncompatibleInputs      incompatible_inputs
    │   └── InvalidBaseModel        invalid_base_model
    ├── OutputExists                output_exists
    └── DeviceUnavailable           device_unavailable
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AdapterNotFound",
    "ComposerError",
    "DeviceUnavailable",
    "IncompatibleInputs",
    "InputError",
    "InvalidAdapter",
    "InvalidBaseModel",
    "OutputExists",
    "RecipeError",
    "UnsupportedAdapter",
]


class ComposerError(Exception):
    """Root of the composer's errors; ``code`` is stable, ``message`` is for people."""

    code = "composer_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class RecipeError(ComposerError):
    code = "invalid_recipe"


class InputError(ComposerError):
    code = "invalid_input"


class AdapterNotFound(InputError):
    code = "adapter_not_found"


class InvalidAdapter(InputError):
    code = "invalid_adapter"


class UnsupportedAdapter(InputError):
    code = "unsupported_adapter"


class IncompatibleInputs(InputError):
    code = "incompatible_inputs"


class InvalidBaseModel(InputError):
    code = "invalid_base_model"


class OutputExists(ComposerError):
    code = "output_exists"


class DeviceUnavailable(ComposerError):
    code = "device_unavailable"
