"""The added tokens of a SentencePiece-style tokenizer, as the converter and transformers
read them, with the flags transformers matches them with checked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.export.errors import UnsupportedTokenizer

__all__ = ["AddedToken", "read_added_tokens", "read_json", "refuse"]

_HINT = (
    "; Lorry refuses to write a GGUF that would tokenize differently (llama.cpp's "
    "convert_hf_to_gguf.py converts it anyway, with that difference)"
)


@dataclass(frozen=True)
class AddedToken:
    token_id: int
    content: str
    special: bool


def refuse(model_dir: Path, why: str) -> UnsupportedTokenizer:
    return UnsupportedTokenizer(f"tokenizer of {model_dir}: {why}{_HINT}")


def _check_added_entry(entry: dict[str, Any], model_dir: Path) -> None:
    """Refuse the flags llama.cpp never applies; rstrip is checked with the vocabulary
    (``_phi3_rule``)."""
    content = entry.get("content")
    for flag in ("lstrip", "single_word"):
        if entry.get(flag):
            raise refuse(
                model_dir, f"added token {content!r} has {flag}, which llama.cpp does not apply"
            )
    if entry.get("normalized"):
        raise refuse(
            model_dir,
            f"added token {content!r} is matched after normalization (normalized: true), so "
            "the text after it gets no ▁ prefix of its own; llama.cpp gives it one "
            '(set "normalized": false)',
        )


def read_added_tokens(
    model_dir: Path, tokenizer: dict[str, Any] | None
) -> tuple[list[AddedToken], set[str]]:
    """Added tokens of ``added_tokens.json`` and ``tokenizer_config.json`` (what the
    converter reads) and of ``tokenizer.json`` (what transformers reads, and what
    transformers 5 alone writes), with the flags transformers matches them with checked;
    and the tokens with rstrip."""
    config = read_json(model_dir / "tokenizer_config.json", model_dir)
    decoder = config.get("added_tokens_decoder") or {}
    json_entries = (tokenizer or {}).get("added_tokens") or []
    rstrip: dict[str, bool] = {}
    for entry in [*decoder.values(), *json_entries]:
        _check_added_entry(entry, model_dir)
        content = str(entry.get("content"))
        if rstrip.setdefault(content, bool(entry.get("rstrip"))) != bool(entry.get("rstrip")):
            raise refuse(
                model_dir, f"added token {content!r} has rstrip in one file and not in another"
            )
    added = [
        AddedToken(int(token_id), str(content), False)
        for content, token_id in read_json(model_dir / "added_tokens.json", model_dir).items()
    ]
    added += [
        AddedToken(int(token_id), str(entry["content"]), bool(entry.get("special")))
        for token_id, entry in decoder.items()
    ]
    added += [
        AddedToken(int(entry["id"]), str(entry["content"]), bool(entry.get("special")))
        for entry in json_entries
    ]
    contents: dict[int, str] = {}
    for token in added:
        if contents.setdefault(token.token_id, token.content) != token.content:
            raise refuse(
                model_dir,
                f"id {token.token_id} is the added token {contents[token.token_id]!r} in one "
                f"file and {token.content!r} in another",
            )
    return added, {content for content, strips in rstrip.items() if strips}


def read_json(path: Path, model_dir: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise refuse(model_dir, f"unreadable {path.name} ({error})") from None
    if not isinstance(data, dict):
        raise refuse(model_dir, f"{path.name} is not a JSON object")
    return data
