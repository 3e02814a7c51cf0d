"""Convert a Hugging Face tokenizer to llama.cpp's ``tokenizer.ggml.*`` keys.

Only tokenizers that llama.cpp reproduces exactly are converted: byte-level BPE
(``tokenizer.ggml.model = gpt2``) whose pre-tokenizer is one llama.cpp implements
(Llama 3's ``llama-bpe``, Qwen2's ``qwen2``), with the merge rule that pre-tokenizer
implies; and SentencePiece-style Llama tokenizers (``tokenizer.model``, or a
byte-fallback BPE ``tokenizer.json``) as ``tokenizer.ggml.model = llama``, in
``_spm``. Anything else (other split patterns, unigram models, other normalizers) is
refused, rather than written into a file that loads and then tokenizes differently
from transformers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGUFWriter, SpecialVocab, TokenType

from composer.export._spm import is_sentencepiece_style, read_sentencepiece_tokenizer
from composer.export.errors import UnsupportedTokenizer

__all__ = ["ReadTokenizer", "TokenizerSummary", "read_tokenizer"]

_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT_INLINE = _QWEN2_SPLIT.replace(
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])", r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
)
# split pattern -> (llama.cpp pre-tokenizer, ignore_merges that llama.cpp applies with it,
# normalizers that llama.cpp's implementation agrees with)
_PRE_TOKENIZERS: dict[str, tuple[str, bool, tuple[str | None, ...]]] = {
    _LLAMA3_SPLIT: ("llama-bpe", True, (None,)),
    _QWEN2_SPLIT: ("qwen2", False, (None, "NFC")),
    _QWEN2_SPLIT_INLINE: ("qwen2", False, (None, "NFC")),
}
_HINT = "; Lorry refuses to write a GGUF that would tokenize differently (llama.cpp's own "
_HINT += "convert_hf_to_gguf.py may handle it)"


@dataclass(frozen=True)
class TokenizerSummary:
    model: str
    pre: str
    tokens: int
    merges: int


@dataclass(frozen=True)
class ReadTokenizer:
    """A checked tokenizer: what it is, whether its added tokens need llama.cpp's Phi-3
    rule (``_phi3_rule``, which the model's ``general.name`` decides), and its writer."""

    summary: TokenizerSummary
    phi3_rule: bool
    write: Callable[[GGUFWriter], None]


def _refuse(model_dir: Path, why: str) -> UnsupportedTokenizer:
    return UnsupportedTokenizer(f"tokenizer of {model_dir}: {why}{_HINT}")


def _split_pattern(pre_tokenizer: Any, model_dir: Path) -> str:
    """The regex of a ``Sequence[Split(regex), ByteLevel(use_regex=false)]`` pre-tokenizer."""
    if not isinstance(pre_tokenizer, dict):
        raise _refuse(model_dir, "it has no pre-tokenizer")
    steps = (
        pre_tokenizer.get("pretokenizers", [])
        if pre_tokenizer.get("type") == "Sequence"
        else [pre_tokenizer]
    )
    kinds = [step.get("type") for step in steps]
    if kinds != ["Split", "ByteLevel"]:
        raise _refuse(model_dir, f"pre-tokenizer {'+'.join(map(str, kinds))} is not supported")
    split, byte_level = steps
    if byte_level.get("use_regex", True) or byte_level.get("add_prefix_space", False):
        raise _refuse(model_dir, "its ByteLevel step splits or adds a prefix space")
    if split.get("behavior") != "Isolated" or split.get("invert", False):
        raise _refuse(model_dir, "its Split step is not an isolating regex split")
    pattern = split.get("pattern", {}).get("Regex")
    if not isinstance(pattern, str):
        raise _refuse(model_dir, "its Split step has no regex")
    return pattern


def _normalizer(tokenizer: dict[str, Any]) -> str | None:
    normalizer = tokenizer.get("normalizer")
    return None if normalizer is None else str(normalizer.get("type"))


def _looks_special(token: str) -> bool:
    return (token.startswith("<|") and token.endswith("|>")) or (
        token.startswith("<") and token.endswith(">") and " " not in token and len(token) > 2
    )


def read_tokenizer(model_dir: Path, vocab_size: int) -> ReadTokenizer:
    """Read and check the tokenizer of ``model_dir``, padded to ``vocab_size`` tokens."""
    tokenizer_file = model_dir / "tokenizer.json"
    has_sentencepiece = (model_dir / "tokenizer.model").is_file()
    if not tokenizer_file.is_file() and not has_sentencepiece:
        raise _refuse(model_dir, "the model directory has no tokenizer.json or tokenizer.model")
    tokenizer: dict[str, Any] | None = None
    if tokenizer_file.is_file():
        try:
            tokenizer = json.loads(tokenizer_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise _refuse(model_dir, f"unreadable tokenizer.json ({error})") from None
        if not isinstance(tokenizer, dict):
            raise _refuse(model_dir, "tokenizer.json is not a JSON object")
    model = (tokenizer or {}).get("model") or {}
    if (
        tokenizer is None
        or is_sentencepiece_style(tokenizer)
        or (has_sentencepiece and model.get("type") == "Unigram")
    ):
        spm = read_sentencepiece_tokenizer(model_dir, vocab_size, tokenizer)
        summary = TokenizerSummary(model="llama", pre="default", tokens=vocab_size, merges=0)
        return ReadTokenizer(summary, spm.phi3_rule, spm.write)
    if model.get("type") != "BPE":
        raise _refuse(model_dir, f"{model.get('type')} tokenizers are not supported")
    if (tokenizer.get("decoder") or {}).get("type") != "ByteLevel":
        raise _refuse(model_dir, "only byte-level BPE (ByteLevel decoder) is supported")
    pattern = _split_pattern(tokenizer.get("pre_tokenizer"), model_dir)
    if pattern not in _PRE_TOKENIZERS:
        raise _refuse(model_dir, f"pre-tokenizer regex {pattern!r} is not one llama.cpp knows")
    pre, ignore_merges, normalizers = _PRE_TOKENIZERS[pattern]
    if bool(model.get("ignore_merges", False)) != ignore_merges:
        raise _refuse(
            model_dir, f"llama.cpp's {pre} pre-tokenizer assumes ignore_merges={ignore_merges}"
        )
    if _normalizer(tokenizer) not in normalizers:
        raise _refuse(model_dir, f"normalizer {_normalizer(tokenizer)} is not supported")

    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = {int(entry["id"]): entry for entry in tokenizer.get("added_tokens") or []}
    for entry in added.values():
        for flag in ("lstrip", "rstrip", "single_word"):
            if entry.get(flag):
                raise _refuse(
                    model_dir,
                    f"added token {entry.get('content')!r} has {flag}, which llama.cpp does "
                    "not apply to a byte-level BPE tokenizer",
                )
    for token_id, entry in added.items():
        vocab[str(entry["content"])] = token_id
    by_id = {token_id: token for token, token_id in vocab.items()}
    if len(by_id) != len(vocab):
        raise _refuse(model_dir, "two tokens share an id")
    if by_id and max(by_id) >= vocab_size:
        raise _refuse(
            model_dir, f"token id {max(by_id)} does not fit the model's vocab_size {vocab_size}"
        )

    tokens: list[str] = []
    types: list[TokenType] = []
    for token_id in range(vocab_size):
        token = by_id.get(token_id)
        if token is None:
            tokens.append(f"[PAD{token_id}]")
            types.append(TokenType.UNUSED)
        elif token_id in added:
            tokens.append(token)
            special = bool(added[token_id].get("special")) or _looks_special(token)
            types.append(TokenType.CONTROL if special else TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(TokenType.NORMAL)

    special_vocab = SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    if not special_vocab.merges:
        raise _refuse(model_dir, "tokenizer.json has no merges")

    def write(writer: GGUFWriter) -> None:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        special_vocab.add_to_gguf(writer, quiet=True)

    summary = TokenizerSummary(
        model="gpt2", pre=pre, tokens=vocab_size, merges=len(special_vocab.merges)
    )
    return ReadTokenizer(summary, False, write)
