"""SentencePiece-style Llama tokenizers -> llama.cpp's ``tokenizer.ggml.model = llama``.

llama.cpp's ``llama`` (SPM) tokenizer is SentencePiece's BPE encoder: it puts a space
before the text and before the text after every special token (``add_space_prefix``),
turns spaces into ``▁``, merges the adjacent pair whose concatenation is the token with
the highest score (the leftmost on ties) until none is left, and spells what is not a
token as ``<0xNN>`` byte tokens. The keys are those of llama.cpp's convert_hf_to_gguf.py
(``_create_vocab_sentencepiece``): pieces, scores and types of ``tokenizer.model``, the
added tokens of ``added_tokens.json`` and ``tokenizer_config.json``, ``[PAD{id}]`` up to
the model's vocab_size, and SpecialVocab's ids and add_bos/add_eos flags.

With only ``tokenizer.json`` (a byte-fallback BPE converted from SentencePiece), the
converter's LlamaHfVocab writes every score as -1000, which makes llama.cpp merge the
leftmost pair first, not by rank. The scores are recovered from the merges instead: a
SentencePiece conversion lists every pair that concatenates to a token, grouped by token
in score order, so the order of the groups is the order of the scores; that is checked.

Refused, because llama.cpp would tokenize differently from the tokenizer the files
define: unigram models, normalization other than SentencePiece's identity rule,
collapsed whitespace, no byte fallback, user-defined or unused pieces, Metaspace
pre-tokenizers (no ``▁`` for text that starts with a space or follows a special token),
added tokens matched after normalization or stripping spaces (lstrip, single_word;
rstrip except in the pattern llama.cpp's Phi-3 rule gives, ``_phi3_rule``), and merges
that are not a SentencePiece conversion's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGUFWriter, SpecialVocab, TokenType

from composer.export._added_tokens import AddedToken, read_added_tokens
from composer.export._added_tokens import refuse as _refuse
from composer.export._phi3_rule import uses_phi3_rule

__all__ = ["SentencePieceTokenizer", "is_sentencepiece_style", "read_sentencepiece_tokenizer"]

_SPACE = "\u2581"
_BYTE_TOKENS = frozenset(f"<0x{value:02X}>" for value in range(256))
_PAD_SCORE = -10000.0  # what the converter gives [PAD{id}]
_ADDED_SCORE = -1000.0  # what the converter gives added tokens
_SP_BPE = 2  # sentencepiece_model.proto TrainerSpec.ModelType
_SP_MODEL_TYPES = {1: "unigram", 2: "BPE", 3: "word", 4: "char"}
_PREPEND = {"type": "Prepend", "prepend": _SPACE}
_ESCAPE = {"type": "Replace", "pattern": {"String": " "}, "content": _SPACE}


@dataclass
class _Vocab:
    tokens: list[str]
    scores: list[float]
    types: list[TokenType]
    add_space_prefix: bool


def is_sentencepiece_style(tokenizer: dict[str, Any]) -> bool:
    """Whether ``tokenizer.json`` is a byte-fallback BPE, SentencePiece's kind of BPE."""
    model = tokenizer.get("model") or {}
    return model.get("type") == "BPE" and bool(model.get("byte_fallback", False))


def _model_proto(path: Path, model_dir: Path) -> Any:
    """The parsed ``sentencepiece_model.proto`` message of ``path`` (untyped protobuf)."""
    try:
        from google.protobuf.message import DecodeError
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as error:
        raise _refuse(
            model_dir, f"reading tokenizer.model needs sentencepiece and protobuf ({error})"
        ) from None
    # protoc-generated: the message classes are made at import time, unseen by mypy
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    try:
        proto.ParseFromString(path.read_bytes())
    except (OSError, DecodeError) as error:
        raise _refuse(model_dir, f"unreadable tokenizer.model ({error})") from None
    if not proto.pieces:
        raise _refuse(model_dir, "tokenizer.model is not a SentencePiece model (no pieces)")
    return proto


def _read_sentencepiece(path: Path, model_dir: Path) -> _Vocab:
    """Pieces, scores and types of ``tokenizer.model``, after checking llama.cpp matches it."""
    proto = _model_proto(path, model_dir)
    trainer, normalizer = proto.trainer_spec, proto.normalizer_spec
    model_type = int(trainer.model_type)
    if model_type != _SP_BPE:
        kind = _SP_MODEL_TYPES.get(model_type, str(model_type))
        raise _refuse(
            model_dir,
            f"tokenizer.model is a SentencePiece {kind} model; llama.cpp's llama tokenizer "
            "reproduces only BPE models (it merges pieces by score, it does not search "
            "the best segmentation)",
        )
    rule = str(normalizer.name)
    if bytes(normalizer.precompiled_charsmap) or rule not in ("", "identity"):
        raise _refuse(
            model_dir,
            f"tokenizer.model normalizes text with the {rule or 'precompiled'} rule; "
            "llama.cpp applies no normalization (only the identity rule is supported)",
        )
    if bool(normalizer.remove_extra_whitespaces):
        raise _refuse(
            model_dir,
            "tokenizer.model removes extra whitespace (remove_extra_whitespaces); "
            "llama.cpp keeps every space",
        )
    if not bool(normalizer.escape_whitespaces) or bool(trainer.treat_whitespace_as_suffix):
        raise _refuse(
            model_dir, "tokenizer.model does not mark spaces with a leading ▁ as llama.cpp does"
        )
    if not bool(trainer.byte_fallback):
        raise _refuse(
            model_dir,
            "tokenizer.model has no byte fallback; llama.cpp spells unknown text as "
            "<0xNN> byte tokens, SentencePiece without them as <unk>",
        )
    vocab = _Vocab([], [], [], add_space_prefix=bool(normalizer.add_dummy_prefix))
    for piece in proto.pieces:
        piece_type = TokenType(int(piece.type))
        if piece_type in (TokenType.USER_DEFINED, TokenType.UNUSED):
            raise _refuse(
                model_dir,
                f"tokenizer.model has the {piece_type.name.lower()} piece {piece.piece!r}; "
                "llama.cpp's converter writes it as a normal token, which merges differently",
            )
        vocab.tokens.append(str(piece.piece))
        vocab.scores.append(float(piece.score))
        vocab.types.append(piece_type)
    held = {
        token
        for token, kind in zip(vocab.tokens, vocab.types, strict=True)
        if kind == TokenType.BYTE
    }
    if not _BYTE_TOKENS <= held:
        raise _refuse(model_dir, "tokenizer.model lacks some of the 256 <0xNN> byte pieces")
    return vocab


def _whitespace(tokenizer: dict[str, Any], model_dir: Path) -> bool:
    """Whether ``tokenizer.json`` prefixes ``▁`` as SentencePiece does (its add_dummy_prefix).

    The legacy Llama form, a ``Prepend(▁)`` + ``Replace(' ', ▁)`` normalizer with no
    pre-tokenizer, prefixes every stretch of text between added tokens, as llama.cpp
    does. Metaspace does not prefix text that already starts with a space, and with
    ``prepend_scheme: first`` not the text after a special token either.
    """
    pre_tokenizer = tokenizer.get("pre_tokenizer")
    if pre_tokenizer is not None:
        described = json.dumps(pre_tokenizer, ensure_ascii=False)
        if pre_tokenizer.get("type") == "Metaspace":
            raise _refuse(
                model_dir,
                f"byte-fallback BPE tokenizer.json pre-tokenizes with {described}, which "
                "adds no ▁ to text that starts with a space or follows a special token; "
                "llama.cpp, like SentencePiece, always adds it (the legacy Llama form, a "
                'normalizer Sequence [Prepend "▁", Replace " " -> "▁"] with '
                '"pre_tokenizer": null, is supported)',
            )
        raise _refuse(
            model_dir,
            f"byte-fallback BPE tokenizer.json has the pre-tokenizer {described}; "
            "llama.cpp's llama tokenizer splits nothing before merging",
        )
    normalizer = tokenizer.get("normalizer")
    steps = (
        normalizer.get("normalizers", [])
        if isinstance(normalizer, dict) and normalizer.get("type") == "Sequence"
        else [normalizer]
    )
    if steps == [_PREPEND, _ESCAPE]:
        return True
    if steps == [_ESCAPE]:
        return False
    raise _refuse(
        model_dir,
        f"byte-fallback BPE tokenizer.json normalizes with "
        f"{json.dumps(normalizer, ensure_ascii=False)}; llama.cpp only turns spaces into ▁ "
        "(and prefixes one)",
    )


def _merge_pairs(model: dict[str, Any], model_dir: Path) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for merge in model.get("merges") or []:
        parts = merge.split(" ") if isinstance(merge, str) else merge
        if not isinstance(parts, list) or len(parts) != 2:
            raise _refuse(model_dir, f"tokenizer.json has the malformed merge {merge!r}")
        pairs.append((str(parts[0]), str(parts[1])))
    return pairs


def _merge_scores(
    vocab: dict[str, int], pairs: list[tuple[str, str]], added: set[str], model_dir: Path
) -> dict[str, float]:
    """Scores whose order is the merges' order, or a refusal where no score order exists.

    llama.cpp merges the pair whose concatenation has the highest score; a BPE merges
    the pair of lowest rank. They agree when every pair of symbols that concatenates to
    a token is a merge and the merges of one token are consecutive, as in a conversion
    from SentencePiece (transformers' ``generate_merges``).
    """
    scores: dict[str, float] = {}
    previous: str | None = None
    for left, right in pairs:
        merged = left + right
        if merged not in vocab:
            raise _refuse(model_dir, f"merge {left!r} + {right!r} makes no token of the vocab")
        if merged != previous:
            if merged in scores:
                raise _refuse(
                    model_dir,
                    f"the merges making {merged!r} are not consecutive, so no token scores "
                    "give llama.cpp the merge order (not a conversion from SentencePiece)",
                )
            scores[merged] = -float(len(scores))
            previous = merged
    merges = set(pairs)

    def symbol(text: str) -> bool:
        return len(text) == 1 or (text in vocab and text not in added)

    for token in vocab:
        if token in added:
            continue
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if symbol(left) and symbol(right) and (left, right) not in merges:
                raise _refuse(
                    model_dir,
                    f"llama.cpp would merge {left!r} + {right!r} into {token!r}, which "
                    "tokenizer.json has no merge for (not a conversion from SentencePiece)",
                )
    return scores


def _looks_special(token: str) -> bool:
    """convert_hf_to_gguf.py's ``does_token_look_special``."""
    return (
        token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (token.startswith("<|") and token.endswith("|>"))
        or (token.startswith("<｜") and token.endswith("｜>"))
        or (token.startswith("<unused") and token.endswith(">"))
    )


def _read_tokenizer_json(tokenizer: dict[str, Any], model_dir: Path) -> tuple[_Vocab, set[str]]:
    """The vocab of a tokenizer.json-only model, scored from its merges; and the tokens
    that merges make."""
    model = tokenizer["model"]
    for option in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(option):
            raise _refuse(model_dir, f"byte-fallback BPE tokenizer.json sets {option}")
    if model.get("ignore_merges"):
        raise _refuse(
            model_dir, "byte-fallback BPE tokenizer.json sets ignore_merges, llama.cpp does not"
        )
    add_space_prefix = _whitespace(tokenizer, model_dir)
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise _refuse(model_dir, "tokenizer.json's vocab ids are not 0..n-1, one per token")
    if not _BYTE_TOKENS <= set(vocab):
        raise _refuse(model_dir, "tokenizer.json lacks some of the 256 <0xNN> byte tokens")
    added = {str(entry["content"]) for entry in tokenizer.get("added_tokens") or []}
    scores = _merge_scores(vocab, _merge_pairs(model, model_dir), added, model_dir)
    result = _Vocab([], [], [], add_space_prefix)
    for token, _ in sorted(vocab.items(), key=lambda item: item[1]):
        result.tokens.append(token)
        result.scores.append(scores.get(token, _ADDED_SCORE))
        result.types.append(TokenType.BYTE if token in _BYTE_TOKENS else TokenType.NORMAL)
    return result, set(scores)


def _check_same_tokenizer(
    sentencepiece: _Vocab, tokenizer: dict[str, Any], model_dir: Path
) -> None:
    """transformers reads tokenizer.json, llama.cpp's converter tokenizer.model: they must
    define the same tokenizer (ids, ▁ prefix, and merges in the order of the scores)."""
    from_json, merged = _read_tokenizer_json(tokenizer, model_dir)
    count = len(sentencepiece.tokens)
    if from_json.tokens[:count] != sentencepiece.tokens:
        raise _refuse(model_dir, "tokenizer.json and tokenizer.model number the pieces differently")
    extra = set(from_json.tokens[count:]) - {
        str(entry["content"]) for entry in tokenizer.get("added_tokens") or []
    }
    if extra:
        raise _refuse(
            model_dir, f"tokenizer.json has tokens not in tokenizer.model: {sorted(extra)}"
        )
    if from_json.add_space_prefix != sentencepiece.add_space_prefix:
        raise _refuse(
            model_dir, "tokenizer.json and tokenizer.model disagree on the leading ▁ (dummy prefix)"
        )
    by_rank = sorted(
        (score, token_id)
        for token_id, (token, score) in enumerate(
            zip(from_json.tokens, from_json.scores, strict=True)
        )
        if token in merged
        and token_id < count
        and sentencepiece.types[token_id] == TokenType.NORMAL
    )
    ranked = [sentencepiece.scores[token_id] for _, token_id in reversed(by_rank)]
    for higher, lower in zip(ranked, ranked[1:], strict=False):
        if not higher > lower:
            raise _refuse(
                model_dir,
                "tokenizer.json merges tokens in another order than tokenizer.model's scores",
            )


def _apply_added(vocab: _Vocab, added: list[AddedToken], model_dir: Path) -> None:
    """Write added tokens over their ids, as the converter does."""
    for token in added:
        if token.token_id >= len(vocab.tokens):
            raise _refuse(
                model_dir,
                f"added token {token.content!r} has id {token.token_id}, beyond the model's "
                f"vocab_size {len(vocab.tokens)}",
            )
        current = vocab.tokens[token.token_id]
        if vocab.types[token.token_id] == TokenType.NORMAL and current != token.content:
            raise _refuse(
                model_dir, f"added token {token.content!r} replaces the piece {current!r}"
            )
        if token.special or _looks_special(token.content):
            kind, text = TokenType.CONTROL, token.content
        elif _SPACE in token.content:
            raise _refuse(
                model_dir,
                f"added token {token.content!r} contains ▁, which llama.cpp's converter "
                "rewrites to a space",
            )
        else:
            kind, text = TokenType.USER_DEFINED, token.content
        vocab.tokens[token.token_id] = text
        vocab.scores[token.token_id] = _ADDED_SCORE
        vocab.types[token.token_id] = kind


def _check_llama_cpp_lookups(vocab: _Vocab, model_dir: Path) -> None:
    """llama.cpp merges into any token of the vocab; SentencePiece only into normal pieces.

    Byte and padding tokens must not be the concatenation of two pieces llama.cpp can
    hold (control and user-defined tokens are split off the text before merging).
    """
    held = {
        token
        for token, kind in zip(vocab.tokens, vocab.types, strict=True)
        if kind == TokenType.NORMAL
    }
    seen: set[str] = set()
    for token in vocab.tokens:
        if token in seen:
            raise _refuse(model_dir, f"two tokens are spelled {token!r}")
        seen.add(token)
    for token, kind in zip(vocab.tokens, vocab.types, strict=True):
        if kind not in (TokenType.BYTE, TokenType.UNUSED):
            continue
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if (len(left) == 1 or left in held) and (len(right) == 1 or right in held):
                raise _refuse(
                    model_dir, f"llama.cpp could merge {left!r} + {right!r} into {token!r}"
                )


@dataclass(frozen=True)
class SentencePieceTokenizer:
    """A checked SentencePiece-style tokenizer, ready to write; ``phi3_rule``: its added
    tokens strip whitespace as llama.cpp's Phi-3 rule does (``_phi3_rule``)."""

    model_dir: Path
    vocab: _Vocab
    phi3_rule: bool

    def write(self, writer: GGUFWriter) -> None:
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(self.vocab.tokens)
        writer.add_token_scores(self.vocab.scores)
        writer.add_token_types(self.vocab.types)
        writer.add_add_space_prefix(self.vocab.add_space_prefix)
        special = SpecialVocab(self.model_dir, n_vocab=len(self.vocab.tokens))
        special.add_to_gguf(writer, quiet=True)


def read_sentencepiece_tokenizer(
    model_dir: Path, vocab_size: int, tokenizer: dict[str, Any] | None
) -> SentencePieceTokenizer:
    """The SentencePiece-style tokenizer of ``model_dir`` (``tokenizer`` is its parsed
    ``tokenizer.json``, if any), padded to ``vocab_size`` tokens."""
    model_file = model_dir / "tokenizer.model"
    if model_file.is_file():
        source = "tokenizer.model"
        vocab = _read_sentencepiece(model_file, model_dir)
        if tokenizer is not None:
            if not is_sentencepiece_style(tokenizer):
                raise _refuse(
                    model_dir, "tokenizer.json is no byte-fallback BPE (tokenizer.model is)"
                )
            _check_same_tokenizer(vocab, tokenizer, model_dir)
    elif tokenizer is not None:
        source = "tokenizer.json"
        vocab, _ = _read_tokenizer_json(tokenizer, model_dir)
    else:
        raise _refuse(model_dir, "the model directory has no tokenizer.json or tokenizer.model")
    if len(vocab.tokens) > vocab_size:
        raise _refuse(
            model_dir,
            f"{source} has {len(vocab.tokens)} tokens, more than the model's vocab_size "
            f"{vocab_size}",
        )
    for token_id in range(len(vocab.tokens), vocab_size):
        vocab.tokens.append(f"[PAD{token_id}]")
        vocab.scores.append(_PAD_SCORE)
        vocab.types.append(TokenType.UNUSED)
    added, rstrip = read_added_tokens(model_dir, tokenizer)
    _apply_added(vocab, added, model_dir)
    _check_llama_cpp_lookups(vocab, model_dir)
    phi3_rule = uses_phi3_rule(
        rstrip, vocab.tokens, vocab.types, lambda why: _refuse(model_dir, why)
    )
    return SentencePieceTokenizer(model_dir, vocab, phi3_rule)
