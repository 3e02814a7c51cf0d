"""Tiny models with a real (trained here, never downloaded) byte-level BPE tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests.support.factories import TINY_LLAMA

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Lorry stores LoRA adapters and composes them into new adapters.",
    "SELECT name, total FROM orders WHERE total > 100 ORDER BY total DESC;",
    "llama.cpp loads GGUF models and LoRA adapters on laptops and phones.",
    "Ollama reads a Modelfile: FROM a model, ADAPTER a LoRA adapter.",
    "It's 2026, and we've got 3 registries, 12 aliases and 1234 versions!",
]
TOKENIZER_VOCAB = 320
MODEL_VOCAB = 384  # larger than the tokenizer: the export pads with [PAD] tokens
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"


def build_bpe_tokenizer(out: Path, *, style: str = "llama3") -> Path:
    """Train a byte-level BPE on a few sentences and save it as a transformers tokenizer.

    ``llama3``: Llama 3's split regex with ignore_merges; ``qwen2``: Qwen2's regex and
    an NFC normalizer.
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    llama3 = style == "llama3"
    tokenizer = Tokenizer(models.BPE(ignore_merges=llama3))
    if not llama3:
        tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(LLAMA3_SPLIT if llama3 else QWEN2_SPLIT), behavior="isolated", invert=False
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(SENTENCES * 4, trainer)
    if llama3:
        bos_id = tokenizer.token_to_id(BOS)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", special_tokens=[(BOS, bos_id)]
        )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS)
    fast.save_pretrained(str(out))
    return out


def build_tiny_model(
    out: Path,
    *,
    architecture: str = "llama",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    **sizes: int,
) -> Path:
    """The tiny Llama of tests.support.factories (or a Qwen2 of the same size) with a tokenizer;
    ``sizes`` override its config (``hidden_size=256`` ...)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    settings: dict[str, Any] = {**TINY_LLAMA, "vocab_size": MODEL_VOCAB, **sizes}
    settings.update(bos_token_id=0, eos_token_id=1)
    torch.manual_seed(seed)
    if architecture == "llama":
        model: Any = LlamaForCausalLM(LlamaConfig(**settings))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**settings, tie_word_embeddings=False))
    torch.nn.Module.to(model, dtype)
    model.save_pretrained(out, safe_serialization=True)
    build_bpe_tokenizer(out, style="llama3" if architecture == "llama" else "qwen2")
    return out
