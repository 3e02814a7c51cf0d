"""Errors of the GGUF export, under the composer's own hierarchy.

    ComposerError (composer.errors)
    ├── InputError                      invalid_input
    │   ├── UnsupportedArchitecture     unsupported_architecture
    │   ├── UnsupportedTokenizer        unsupported_tokenizer
    │   └── UnsupportedModel            unsupported_model
    └── OutputExists                    output_exists

Adapters that are not plain LoRA raise the composer's ``UnsupportedAdapter``;
unreadable inputs raise ``InvalidAdapter`` or ``InvalidBaseModel``.
"""

from __future__ import annotations

from composer.errors import InputError

__all__ = ["UnsupportedArchitecture", "UnsupportedModel", "UnsupportedTokenizer"]


class UnsupportedArchitecture(InputError):
    code = "unsupported_architecture"


class UnsupportedTokenizer(InputError):
    code = "unsupported_tokenizer"


class UnsupportedModel(InputError):
    code = "unsupported_model"
