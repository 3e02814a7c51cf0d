"""llama.cpp's Phi-3 rule: the spaces after special tokens, and the ``general.name`` it keys on.

GGUF carries no per-token ``lstrip`` / ``rstrip`` flags. llama.cpp sets them when it loads
a vocabulary (``llama_vocab::impl::load``, "Handle per token attributes"), by name: when
``general.name``, lowercased, contains ``phi-3`` or ``phi3``, every token of its special
cache (types CONTROL, USER_DEFINED and UNKNOWN) gets RSTRIP, then ``</s>`` gets it, then
``<unk>``, ``<s>`` and ``<|endoftext|>`` lose it; the four tokens must exist, or loading
fails. That is exactly the rstrip pattern of Phi-3 / Phi-3.5-mini-instruct's added tokens
(``<|assistant|>``, ``<|end|>``, ``<|user|>``, ``<|system|>``, ``<|placeholderN|>`` and
``</s>``), so:

- a tokenizer whose rstrip tokens are that set is exported with a ``general.name`` that
  contains ``phi3``: the given name when it already contains ``phi-3`` / ``phi3`` (any
  case), else the name followed by `` (phi3)``. Any architecture: what llama.cpp applies
  depends on the name and the tokens only, and a vocabulary that matches tokenizes the
  same whichever model uses it;
- any other tokenizer (no rstrip token, or a SentencePiece one refused before) must not
  get the rule: a name that contains ``phi-3`` / ``phi3`` is written with a space in
  place of the hyphen or between ``phi`` and ``3`` (``Phi-3.5-mini-sql`` ->
  ``Phi 3.5-mini-sql``), which llama.cpp does not match, and a warning is logged.

llama.cpp strips ASCII whitespace (C ``isspace``: space, ``\\t \\n \\v \\f \\r``) after such a
token; transformers (``tokenizers``) strips Unicode whitespace. Text whose first
characters after one of these tokens are other whitespace (U+0085, U+00A0, U+1680,
U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000) tokenizes differently: llama.cpp
keeps them. This is accepted (and documented in docs/gguf.md), as refusing it would
refuse every Phi-3.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence

from gguf import TokenType

from composer.export.errors import UnsupportedTokenizer

__all__ = ["PHI3_REQUIRED", "phi3_rstrip_set", "uses_phi3_rule", "llama_cpp_name"]

logger = logging.getLogger(__name__)

PHI3_REQUIRED = ("<unk>", "<s>", "</s>", "<|endoftext|>")
_NOT_STRIPPED = frozenset(("<unk>", "<s>", "<|endoftext|>"))
_SPECIAL_CACHE = frozenset((TokenType.CONTROL, TokenType.USER_DEFINED, TokenType.UNKNOWN))
# what llama.cpp's _contains_any(lowercased name, {"phi-3", "phi3"}) matches (std::tolower:
# ASCII letters only)
_PHI3_NAME = re.compile(r"(phi)-?(3)", re.IGNORECASE | re.ASCII)


def phi3_rstrip_set(tokens: Sequence[str], types: Sequence[TokenType]) -> frozenset[str] | None:
    """The tokens llama.cpp strips after in a file named Phi-3, or None where it would
    fail to load (one of ``PHI3_REQUIRED`` missing)."""
    if not set(PHI3_REQUIRED) <= set(tokens):
        return None
    cached = {token for token, kind in zip(tokens, types, strict=True) if kind in _SPECIAL_CACHE}
    return frozenset((cached | {"</s>"}) - _NOT_STRIPPED)


def uses_phi3_rule(
    rstrip: Iterable[str],
    tokens: Sequence[str],
    types: Sequence[TokenType],
    refuse: Callable[[str], UnsupportedTokenizer],
) -> bool:
    """Whether the added tokens stripping whitespace after them (``rstrip``) are exactly
    what llama.cpp's Phi-3 rule gives the vocabulary; False when there are none; a
    refusal (``refuse(why)``) for any other set."""
    wanted = frozenset(rstrip)
    if not wanted:
        return False
    rule = phi3_rstrip_set(tokens, types)
    named = sorted(wanted - rule) if rule is not None else []
    head = (
        f"added token {(named or sorted(wanted))[0]!r} has rstrip, which llama.cpp does not apply"
    )
    if rule is None:
        missing = [token for token in PHI3_REQUIRED if token not in tokens]
        raise refuse(
            f"{head} (only by its Phi-3 rule, which needs the tokens "
            f"{', '.join(PHI3_REQUIRED)}: {', '.join(missing)} missing)"
        )
    if wanted != rule:
        raise refuse(
            f"{head} (only by its Phi-3 rule, to every special token but <unk>, <s>, "
            f"<|endoftext|>: {sorted(rule)}; the tokens with rstrip are {sorted(wanted)})"
        )
    return True


def llama_cpp_name(name: str, phi3_rule: bool) -> str:
    """``general.name`` for a model whose tokenizer needs (or must not get) the Phi-3 rule."""
    if phi3_rule:
        return name if _PHI3_NAME.search(name) else f"{name} (phi3)"
    if not _PHI3_NAME.search(name):
        return name
    written = _PHI3_NAME.sub(r"\1 \2", name)
    logger.warning(
        "general.name %r written as %r: llama.cpp strips the spaces after every special "
        "token of a model named Phi-3, and this tokenizer strips none",
        name,
        written,
    )
    return written
