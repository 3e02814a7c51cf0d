"""SentencePiece-style Llama tokenizers (Llama 2, Mistral, TinyLlama) exported as
llama.cpp's ``llama`` tokenizer, read back, and run by llama.cpp itself.

The tokenizer is trained here (sentencepiece, nothing downloaded) and saved as Llama 2's
repositories ship theirs: ``tokenizer.model`` and a ``tokenizer.json``. Each source is
exported on its own too: ``tokenizer.model`` only (llama.cpp's converter reads this),
and ``tokenizer.json`` only (its scores are recovered from the merges). The llama.cpp
checks run the llama.cpp that .ci/llama_cpp.sh builds (tests/llama_cpp.py): skipped with
the reason printed where it is missing, required in CI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from gguf import TokenType

from composer.export import UnsupportedTokenizer, export_gguf
from tests.export.reading import metadata
from tests.support.factories import SENTENCEPIECE_VOCAB, TINY_LLAMA, build_sentencepiece_tokenizer
from tests.support.llama_cpp import load_llama_cpp

MODEL_VOCAB = SENTENCEPIECE_VOCAB + 28  # more embedding rows than tokens: [PAD{id}] tokens
SOURCES = {
    "both": (),
    "tokenizer.model": ("tokenizer.json",),
    "tokenizer.json": ("tokenizer.model",),
}
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "hello world",
    " one leading space",
    "   three leading spaces",
    "trailing spaces  ",
    "a  b   c    d",
    "line\nbreak\n\nand two",
    "\ttabs\tand spaces ",
    "Café déjà vu, naïve façade, Straße",
    "emoji 🦙🚀 and ☃ (no pieces: bytes)",
    "日本語のテキスト",
    "12345 67.89 2026",
    "SELECT name, total FROM orders WHERE total > 100;",
    "It's 2026, and we've got 3 registries!",
    "    def merge(self, other):\n        return self.total",
    "x</s> y",
    "<s>starts with a special token",
    "",
    " ",
    "\n",
]
PROMPT = "Lorry stores LoRA adapters"
NEW_TOKENS = 8


def _model_dir(out: Path, architecture: str) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    settings: dict[str, Any] = {
        **TINY_LLAMA,
        "vocab_size": MODEL_VOCAB,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    torch.manual_seed(0)
    if architecture == "llama":
        model: Any = LlamaForCausalLM(LlamaConfig(**settings))
    else:
        model = MistralForCausalLM(MistralConfig(**settings))
    model.save_pretrained(out, safe_serialization=True)
    return build_sentencepiece_tokenizer(out)


@pytest.fixture(scope="module")
def spm_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model_dir(tmp_path_factory.mktemp("spm-llama") / "model", "llama")


@pytest.fixture(scope="module")
def spm_mistral(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model_dir(tmp_path_factory.mktemp("spm-mistral") / "model", "mistral")


@pytest.fixture
def llama_cpp() -> ModuleType:
    return load_llama_cpp()


def _source(model_dir: Path, source: str, target: Path) -> Path:
    shutil.copytree(model_dir, target)
    for name in SOURCES[source]:
        (target / name).unlink()
    return target


def _sentencepiece(model_dir: Path) -> Any:
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))


def _converter_vocab(model_dir: Path, source: str) -> tuple[list[str], list[float], list[int]]:
    """The tokens, scores and types llama.cpp's ``_create_vocab_sentencepiece`` writes,
    with the special tokens of tokenizer.json as CONTROL (score -1000)."""
    sp = _sentencepiece(model_dir)
    tokens = [f"[PAD{i}]" for i in range(MODEL_VOCAB)]
    scores = [-10000.0] * MODEL_VOCAB
    types = [int(TokenType.UNUSED)] * MODEL_VOCAB
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
    if source != "tokenizer.model":
        for entry in json.loads((model_dir / "tokenizer.json").read_text())["added_tokens"]:
            assert entry["special"]
            tokens[entry["id"]], scores[entry["id"]] = entry["content"], -1000.0
            types[entry["id"]] = int(TokenType.CONTROL)
    return tokens, scores, types


@pytest.mark.parametrize("source", list(SOURCES))
def test_sentencepiece_vocab_is_written_as_llama_cpp_converter_writes_it(
    spm_llama: Path, source: str, tmp_path: Path
) -> None:
    model_dir = _source(spm_llama, source, tmp_path / "model")
    out = tmp_path / "model.gguf"
    export_gguf(model_dir, out, outtype="f32")
    fields = metadata(out)
    tokens, scores, types = _converter_vocab(spm_llama, source)

    assert fields["tokenizer.ggml.model"] == "llama"
    assert fields["tokenizer.ggml.pre"] == "default"
    assert fields["llama.vocab_size"] == MODEL_VOCAB
    assert fields["tokenizer.ggml.tokens"] == tokens
    assert tokens[SENTENCEPIECE_VOCAB:] == [
        f"[PAD{i}]" for i in range(SENTENCEPIECE_VOCAB, MODEL_VOCAB)
    ]
    assert fields["tokenizer.ggml.token_type"] == types
    assert types.count(int(TokenType.BYTE)) == 256
    assert fields["tokenizer.ggml.add_space_prefix"] is True
    assert fields["tokenizer.ggml.bos_token_id"] == 1
    assert fields["tokenizer.ggml.eos_token_id"] == 2
    written = fields["tokenizer.ggml.scores"]
    if source == "tokenizer.json":
        # scores recovered from the merges: the same order as SentencePiece's scores
        merged = [i for i, score in enumerate(written) if score > -1000.0]
        assert len(merged) > 50
        assert sorted(merged, key=lambda i: -written[i]) == sorted(merged, key=lambda i: -scores[i])
        # the other tokens get LlamaHfVocab's -1000 (padding the converter's -10000)
        assert {written[i] for i in range(SENTENCEPIECE_VOCAB) if i not in merged} == {-1000.0}
        assert set(written[SENTENCEPIECE_VOCAB:]) == {-10000.0}
    else:
        np.testing.assert_array_equal(np.float32(written), np.float32(scores))
    if source != "tokenizer.model":
        # tokenizer.json's TemplateProcessing adds <s>; tokenizer.model alone leaves
        # llama.cpp's default for llama (add BOS) in force
        assert fields["tokenizer.ggml.add_bos_token"] is True
        assert fields["tokenizer.ggml.unknown_token_id"] == 0


def _refused(model_dir: Path, out: Path, match: str) -> None:
    with pytest.raises(UnsupportedTokenizer, match=match):
        export_gguf(model_dir, out, outtype="f32")
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"model_type": "unigram", "hard_vocab_limit": False}, "unigram"),
        ({"normalization_rule_name": "nmt_nfkc"}, "nmt_nfkc rule"),
        ({"remove_extra_whitespaces": True}, "removes extra whitespace"),
        ({"byte_fallback": False, "vocab_size": 200}, "no byte fallback"),
        ({"user_defined_symbols": ["<tool>"]}, "user_defined piece '<tool>'"),
    ],
    ids=["unigram", "nfkc", "collapsed-spaces", "no-byte-fallback", "user-defined"],
)
def test_sentencepiece_models_llama_cpp_cannot_reproduce_are_refused(
    spm_llama: Path, options: dict[str, Any], match: str, tmp_path: Path
) -> None:
    model_dir = _source(spm_llama, "tokenizer.model", tmp_path / "model")
    build_sentencepiece_tokenizer(model_dir, tokenizer_json=False, **options)
    _refused(model_dir, tmp_path / "model.gguf", match)


def _edit_tokenizer_json(model_dir: Path, edit: Any) -> None:
    path = model_dir / "tokenizer.json"
    tokenizer = json.loads(path.read_text())
    edit(tokenizer)
    path.write_text(json.dumps(tokenizer))


def _metaspace(tokenizer: dict[str, Any]) -> None:
    # what transformers 5 saves for a LlamaTokenizer (legacy=False)
    tokenizer["normalizer"] = None
    tokenizer["pre_tokenizer"] = {
        "type": "Metaspace",
        "replacement": "\u2581",
        "prepend_scheme": "first",
        "split": False,
    }


def _drop_a_merge(tokenizer: dict[str, Any]) -> None:
    tokenizer["model"]["merges"] = [
        merge for merge in tokenizer["model"]["merges"] if merge != ["\u2581", "a"]
    ]


def _normalized_specials(tokenizer: dict[str, Any]) -> None:
    for entry in tokenizer["added_tokens"]:
        entry["normalized"] = True


def _nfkc(tokenizer: dict[str, Any]) -> None:
    tokenizer["normalizer"]["normalizers"].insert(0, {"type": "NFKC"})


@pytest.mark.parametrize("source", ["both", "tokenizer.json"])
@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_metaspace, "Metaspace.*no ▁ to text that starts with a space"),
        (_drop_a_merge, "merge '▁' \\+ 'a' into '▁a'.*no merge"),
        (_normalized_specials, "normalized: true"),
        (_nfkc, "normalizes with .*NFKC"),
    ],
    ids=["metaspace", "missing-merge", "normalized-specials", "nfkc"],
)
def test_tokenizer_json_llama_cpp_cannot_reproduce_is_refused(
    spm_llama: Path, source: str, edit: Any, match: str, tmp_path: Path
) -> None:
    model_dir = _source(spm_llama, source, tmp_path / "model")
    _edit_tokenizer_json(model_dir, edit)
    _refused(model_dir, tmp_path / "model.gguf", match)


def test_tokenizer_json_that_disagrees_with_tokenizer_model_is_refused(
    spm_llama: Path, tmp_path: Path
) -> None:
    model_dir = _source(spm_llama, "both", tmp_path / "model")

    def swap_two_pieces(tokenizer: dict[str, Any]) -> None:
        vocab = tokenizer["model"]["vocab"]
        first, second = sorted(vocab, key=vocab.get)[300:302]
        vocab[first], vocab[second] = vocab[second], vocab[first]

    _edit_tokenizer_json(model_dir, swap_two_pieces)
    _refused(model_dir, tmp_path / "model.gguf", "number the pieces differently")


def test_tokenizer_larger_than_the_embedding_is_refused(spm_llama: Path, tmp_path: Path) -> None:
    model_dir = _source(spm_llama, "both", tmp_path / "model")
    config = json.loads((model_dir / "config.json").read_text())
    config["vocab_size"] = 400
    (model_dir / "config.json").write_text(json.dumps(config))
    _refused(model_dir, tmp_path / "model.gguf", "420 tokens, more than the model's vocab_size 400")


@pytest.mark.parametrize("source", list(SOURCES))
def test_llama_cpp_tokenizes_like_transformers_and_sentencepiece(
    spm_llama: Path, source: str, llama_cpp: ModuleType, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    model_dir = _source(spm_llama, source, tmp_path / "model")
    out = tmp_path / "model.gguf"
    export_gguf(model_dir, out, outtype="f32")
    sp = _sentencepiece(spm_llama)
    hf = AutoTokenizer.from_pretrained(spm_llama)
    llm = llama_cpp.Llama(model_path=str(out), vocab_only=True, verbose=False)
    try:
        for text in TEXTS:
            got = llm.tokenize(text.encode(), add_bos=True, special=True)
            print(f"\n{source} {text!r}: llama.cpp {got}")
            if "<s>" not in text and "</s>" not in text:  # SentencePiece reads them as text
                assert got == [1, *sp.encode(text)], text
            if source != "tokenizer.model":
                assert got == hf(text)["input_ids"], text
    finally:
        llm.close()


def _greedy_llama_cpp(llama_cpp: ModuleType, model: Path, ids: list[int]) -> tuple[list[int], Any]:
    llm = llama_cpp.Llama(
        model_path=str(model), n_ctx=128, n_threads=1, logits_all=True, verbose=False, seed=0
    )
    try:
        llm.eval(ids)
        first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        generated: list[int] = []
        for _ in range(NEW_TOKENS):
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            generated.append(token)
            llm.eval([token])
        return generated, first
    finally:
        llm.close()


@pytest.mark.parametrize("fixture", ["spm_llama", "spm_mistral"])
def test_llama_cpp_greedy_generation_matches_transformers(
    fixture: str, llama_cpp: ModuleType, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir: Path = request.getfixturevalue(fixture)
    out = tmp_path / "model.gguf"
    export_gguf(model_dir, out, outtype="f32")
    ids = AutoTokenizer.from_pretrained(model_dir)(PROMPT)["input_ids"]
    probe = llama_cpp.Llama(model_path=str(out), vocab_only=True, verbose=False)
    assert probe.tokenize(PROMPT.encode(), add_bos=True, special=True) == ids
    probe.close()

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        expected_logits = model(torch.tensor([ids])).logits[0, -1].numpy()
        output = model.generate(
            torch.tensor([ids]),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=2,
        )
    expected = output[0, len(ids) :].tolist()
    got, logits = _greedy_llama_cpp(llama_cpp, out, ids)
    print(f"\n{fixture}: prompt ids {ids}\ntransformers {expected}\nllama.cpp    {got}")
    assert got == expected
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-3, atol=1e-3)
