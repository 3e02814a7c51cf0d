"""Phi-3's chat tokens (added tokens with ``rstrip``) exported for llama.cpp's Phi-3 rule.

llama.cpp strips the whitespace after special tokens only in files whose ``general.name``
contains "phi3" / "phi-3", for exactly one set of tokens (composer/export/_phi3_rule.py).
A tiny Phi3ForCausalLM gets a SentencePiece tokenizer shaped like Phi-3-mini-instruct's
(tests/export/builders.py ``build_phi3_chat_tokenizer``); the exports are read back,
compared with what llama.cpp's converter (``Phi3MiniModel.set_vocab``) writes, and
tokenized by llama.cpp itself against transformers (skipped without llama.cpp, required
in CI).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from gguf import TokenType

from composer.export import UnsupportedTokenizer, export_gguf
from tests.export.builders import SPM_MODEL_VOCAB, build_phi3_chat_tokenizer
from tests.export.reading import metadata
from tests.support.llama_cpp import load_llama_cpp

CHAT_PROMPTS = [
    "<|user|>\n  Hello<|end|>\n<|assistant|>\n",
    "<|system|>\nYou write SQL.<|end|>\n<|user|>\nlist orders<|end|>\n<|assistant|>\nSELECT *"
    "<|end|>\n<|endoftext|>",
    "<|system|> \t\r\n\v\fx</s>\n y<s>  z<|endoftext|>  w",
    "<|user|>\n\n\n<|placeholder3|>   <|end|>  ",
    "no special tokens  at all\n",
]

ASCII_SPACES = " \t\n\v\f\r"  # C isspace: what llama.cpp strips after a token
# the other Unicode White_Space characters, which transformers also strips
UNICODE_SPACES = "\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
UNICODE_SPACES += "\u2028\u2029\u202f\u205f\u3000"


@pytest.fixture(scope="module")
def phi3_chat(tmp_path_factory: pytest.TempPathFactory, phi3_model: Path) -> Path:
    """The tiny Phi-3 model with Phi-3-mini-instruct's chat tokens, in a directory whose
    name does not say Phi-3."""
    model_dir = tmp_path_factory.mktemp("phi3-chat") / "chat-model"
    shutil.copytree(phi3_model, model_dir)
    return build_phi3_chat_tokenizer(model_dir)


@pytest.fixture
def llama_cpp() -> ModuleType:
    return load_llama_cpp()


def _converter_vocab(model_dir: Path) -> tuple[list[str], list[float], list[int]]:
    """What llama.cpp's ``Phi3MiniModel.set_vocab`` writes: the pieces of tokenizer.model,
    ``[PAD{id}]`` up to vocab_size, then every added token of tokenizer_config.json and
    tokenizer.json over its id, score -1000, CONTROL if special, else USER_DEFINED."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))
    tokens = [f"[PAD{i}]" for i in range(SPM_MODEL_VOCAB)]
    scores = [-10000.0] * SPM_MODEL_VOCAB
    types = [int(TokenType.UNUSED)] * SPM_MODEL_VOCAB
    for i in range(sp.vocab_size()):
        tokens[i], scores[i] = sp.id_to_piece(i), sp.get_score(i)
        kind = TokenType.NORMAL
        if sp.is_unknown(i):
            kind = TokenType.UNKNOWN
        elif sp.is_control(i):
            kind = TokenType.CONTROL
        elif sp.is_byte(i):
            kind = TokenType.BYTE
        types[i] = int(kind)
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    entries = [
        {"id": int(token_id), **entry} for token_id, entry in config["added_tokens_decoder"].items()
    ]
    entries += json.loads((model_dir / "tokenizer.json").read_text())["added_tokens"]
    for entry in entries:
        tokens[entry["id"]], scores[entry["id"]] = entry["content"], -1000.0
        special = entry.get("special")
        types[entry["id"]] = int(TokenType.CONTROL if special else TokenType.USER_DEFINED)
    return tokens, scores, types


@pytest.mark.parametrize(
    ("name", "written"),
    [(None, "chat-model (phi3)"), ("Phi-3.5-mini-sql", "Phi-3.5-mini-sql"), ("x", "x (phi3)")],
)
def test_phi3_chat_tokenizer_is_exported_with_a_name_llama_cpp_reads_as_phi3(
    phi3_chat: Path, name: str | None, written: str, tmp_path: Path
) -> None:
    out = tmp_path / "model.gguf"
    export_gguf(phi3_chat, out, outtype="f32", name=name)
    fields = metadata(out)
    tokens, scores, types = _converter_vocab(phi3_chat)

    assert fields["general.name"] == written
    assert fields["general.architecture"] == "phi3"
    assert fields["tokenizer.ggml.tokens"] == tokens
    assert fields["tokenizer.ggml.token_type"] == types
    np.testing.assert_array_equal(np.float32(fields["tokenizer.ggml.scores"]), np.float32(scores))
    assert tokens[420:431] == ["<|endoftext|>", "<|assistant|>"] + [
        f"<|placeholder{i}|>" for i in range(1, 5)
    ] + ["<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>"]
    assert types[2] == int(TokenType.USER_DEFINED)  # </s>: special false, as Phi-3's
    assert types[421] == int(TokenType.CONTROL)


def test_llama_cpp_tokenizes_phi3_chat_prompts_like_transformers(
    phi3_chat: Path, llama_cpp: ModuleType, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    out = tmp_path / "model.gguf"
    export_gguf(phi3_chat, out, outtype="f32")
    hf = AutoTokenizer.from_pretrained(phi3_chat)
    llm = llama_cpp.Llama(model_path=str(out), vocab_only=True, verbose=False)
    try:
        for text in CHAT_PROMPTS:
            got = llm.tokenize(text.encode(), add_bos=True, special=True)
            print(f"\n{text!r}: llama.cpp {got}")
            assert got == hf(text)["input_ids"], text
        # the spaces after the chat tokens are stripped, not merely tokenized alike
        assert hf("<|user|>\n  Hello")["input_ids"] == hf("<|user|>Hello")["input_ids"]
        # documented difference: transformers strips Unicode whitespace after a chat token,
        # llama.cpp only ASCII (isspace), so it keeps U+00A0 (as its two byte tokens)
        text = "<|user|>\u00a0Hello"
        expected = hf(text)["input_ids"]
        nbsp = hf.convert_tokens_to_ids(["<0xC2>", "<0xA0>"])
        got = llm.tokenize(text.encode(), add_bos=True, special=True)
        assert got == [*expected[:3], *nbsp, *expected[3:]]
        # the whole difference, as docs/gguf.md states it
        for space in [*ASCII_SPACES, *UNICODE_SPACES]:
            text = f"<|user|>{space}x"
            got = llm.tokenize(text.encode(), add_bos=True, special=True)
            assert hf(text)["input_ids"] == hf("<|user|>x")["input_ids"], repr(space)
            assert (got == hf(text)["input_ids"]) is (space in ASCII_SPACES), repr(space)
    finally:
        llm.close()


def _edit(model_dir: Path, edit: Any, files: tuple[str, ...] = ("json", "config")) -> None:
    if "json" in files:
        path = model_dir / "tokenizer.json"
        tokenizer = json.loads(path.read_text())
        for entry in tokenizer["added_tokens"]:
            edit(entry)
        path.write_text(json.dumps(tokenizer))
    if "config" in files:
        path = model_dir / "tokenizer_config.json"
        config = json.loads(path.read_text())
        for entry in config["added_tokens_decoder"].values():
            edit(entry)
        path.write_text(json.dumps(config))


def _set(content: str, **flags: bool) -> Any:
    def edit(entry: dict[str, Any]) -> None:
        if entry["content"] == content:
            entry.update(flags)

    return edit


@pytest.mark.parametrize(
    ("edit", "files", "match"),
    [
        (
            _set("<|placeholder3|>", rstrip=False),
            ("json", "config"),
            r"added token '</s>' has rstrip, which llama.cpp does not apply \(only by its "
            r"Phi-3 rule.*'<\|placeholder3\|>'",
        ),
        (
            _set("<|endoftext|>", rstrip=True),
            ("json", "config"),
            r"added token '<\|endoftext\|>' has rstrip, which llama.cpp does not apply",
        ),
        (
            _set("<|user|>", lstrip=True),
            ("json", "config"),
            r"added token '<\|user\|>' has lstrip, which llama.cpp does not apply",
        ),
        (
            _set("<|end|>", rstrip=False),
            ("config",),
            r"added token '<\|end\|>' has rstrip in one file and not in another",
        ),
    ],
    ids=["one-chat-token-without-rstrip", "endoftext-with-rstrip", "lstrip", "files-disagree"],
)
def test_other_strip_patterns_are_refused(
    phi3_chat: Path, edit: Any, files: tuple[str, ...], match: str, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(phi3_chat, model_dir)
    _edit(model_dir, edit, files)
    out = tmp_path / "model.gguf"
    with pytest.raises(UnsupportedTokenizer, match=match):
        export_gguf(model_dir, out, outtype="f32")
    assert not out.exists()


def test_rstrip_without_the_tokens_llama_cpp_needs_is_refused(
    phi3_model: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(phi3_model, model_dir)
    path = model_dir / "tokenizer.json"
    tokenizer = json.loads(path.read_text())
    tokenizer["added_tokens"] = [
        {**entry, "rstrip": entry["content"] == "</s>"}
        for entry in tokenizer["added_tokens"]
        if entry["content"] != "<|endoftext|>"
    ]
    path.write_text(json.dumps(tokenizer))
    out = tmp_path / "model.gguf"
    with pytest.raises(
        UnsupportedTokenizer,
        match=r"added token '</s>' has rstrip, which llama.cpp does not apply \(only by its "
        r"Phi-3 rule, which needs the tokens .*: <\|endoftext\|> missing\)",
    ):
        export_gguf(model_dir, out, outtype="f32")
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "written"),
    [
        (None, "phi 3"),
        ("Phi-3.5-mini-sql", "Phi 3.5-mini-sql"),
        ("my-PHI3-phi-3", "my-PHI 3-phi 3"),
    ],
)
def test_a_phi3_name_is_not_written_for_a_tokenizer_without_the_rule(
    phi3_model: Path, name: str | None, written: str, tmp_path: Path
) -> None:
    # the tiny Phi-3's directory is named "phi3"; its tokenizer strips after no token
    out = tmp_path / "model.gguf"
    export_gguf(phi3_model, out, outtype="f32", name=name)
    assert metadata(out)["general.name"] == written


def test_a_phi3_name_is_not_written_for_a_byte_level_bpe_model(
    llama_with_tokenizer: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.gguf"
    export_gguf(llama_with_tokenizer, out, outtype="f32", name="phi3-distilled-llama")
    fields = metadata(out)
    assert fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["general.name"] == "phi 3-distilled-llama"


def test_llama_cpp_keeps_the_spaces_after_special_tokens_of_a_model_named_phi3(
    phi3_model: Path, llama_cpp: ModuleType, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    out = tmp_path / "model.gguf"
    export_gguf(phi3_model, out, outtype="f32", name="Phi-3-mini-sql")
    hf = AutoTokenizer.from_pretrained(phi3_model)
    llm = llama_cpp.Llama(model_path=str(out), vocab_only=True, verbose=False)
    try:
        for text in ["x</s>  y", "<|endoftext|>\n z</s>\n"]:
            expected = hf(text)["input_ids"]
            assert expected != hf(text.replace(" ", "").replace("\n", ""))["input_ids"]
            assert llm.tokenize(text.encode(), add_bos=True, special=True) == expected, text
    finally:
        llm.close()
