"""Builders of tiny real models and real PEFT adapters; nothing is downloaded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

TINY_LLAMA: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 128,
    "max_position_embeddings": 128,
}

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def build_tiny_llama(out: Path, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """Save a random-weight Llama (transformers' own class) as a HF model directory."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(**TINY_LLAMA, dtype=dtype)
    model = LlamaForCausalLM(config)
    torch.nn.Module.to(model, dtype)
    model.save_pretrained(out, safe_serialization=True)
    return out


def load_tiny_llama(path: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model


def build_lora_adapter(
    base_dir: Path,
    out: Path,
    *,
    r: int = 8,
    lora_alpha: int = 16,
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
    use_rslora: bool = False,
    seed: int = 1,
    rank_pattern: dict[str, int] | None = None,
) -> Path:
    """A real PEFT LoRA adapter with non-zero A and B, saved with ``save_pretrained``."""
    from peft import LoraConfig, get_peft_model

    base = load_tiny_llama(base_dir)
    torch.manual_seed(seed)
    config = LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        target_modules=list(target_modules),
        use_rslora=use_rslora,
        rank_pattern=rank_pattern or {},
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    model.peft_config["default"].base_model_name_or_path = str(base_dir)
    model.save_pretrained(str(out))
    return out


SENTENCEPIECE_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Lorry stores LoRA adapters and composes them into new adapters.",
    "SELECT name, total FROM orders WHERE total > 100 ORDER BY total DESC;",
    "llama.cpp loads GGUF models and LoRA adapters on laptops and phones.",
    "It's 2026, and we've got 3 registries, 12 aliases and 1234 versions!",
    "    def merge(self, other):\n        return self.total + other.total\n",
    "Café déjà vu: naïve façade, Straße, señor, über.",
]
SENTENCEPIECE_VOCAB = 420  # 3 specials + 256 <0xNN> bytes + characters + merges


def build_sentencepiece_tokenizer(
    out: Path,
    *,
    vocab_size: int = SENTENCEPIECE_VOCAB,
    tokenizer_json: bool = True,
    **trainer_options: Any,
) -> Path:
    """Train a Llama-2-style SentencePiece BPE (byte fallback, identity normalization, a
    dummy ``▁`` prefix, digits split) and save it as Llama 2's repositories ship it:
    ``tokenizer.model`` plus a ``tokenizer.json`` in the legacy Llama form (a
    ``Prepend(▁)`` + ``Replace(' ', ▁)`` normalizer, special tokens matched on the raw
    text), which transformers runs as written (``tokenizer_class`` is not LlamaTokenizer,
    whose transformers 5 version replaces the normalizer with a Metaspace pre-tokenizer).
    ``trainer_options`` override SentencePiece's (``add_dummy_prefix=False``, as Gemma's,
    also drops the ``Prepend``); ``tokenizer_json=False`` writes only
    ``tokenizer.model``.
    """
    import io
    import json

    import sentencepiece
    from transformers import LlamaTokenizer, PreTrainedTokenizerFast

    model = io.BytesIO()
    options: dict[str, Any] = {
        "model_type": "bpe",
        "vocab_size": vocab_size,
        "byte_fallback": True,
        "split_digits": True,
        "normalization_rule_name": "identity",
        "add_dummy_prefix": True,
        "remove_extra_whitespaces": False,
        "allow_whitespace_only_pieces": True,
        "character_coverage": 1.0,
        "unk_id": 0,
        "bos_id": 1,
        "eos_id": 2,
        "pad_id": -1,
        "num_threads": 1,
        "minloglevel": 2,
    }
    options.update(trainer_options)
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCEPIECE_TEXT * 20), model_writer=model, **options
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.model").write_bytes(model.getvalue())
    if not tokenizer_json:
        return out
    converted = LlamaTokenizer.from_pretrained(str(out), legacy=True)
    spec = json.loads(converted.backend_tokenizer.to_str())
    prefix = [{"type": "Prepend", "prepend": "\u2581"}]
    spec["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            *(prefix if options.get("add_dummy_prefix", True) else []),
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ],
    }
    spec["pre_tokenizer"] = None
    from tokenizers import Tokenizer

    fast = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        add_bos_token=True,
        add_eos_token=False,
    )
    fast.save_pretrained(str(out))
    return out
