"""Tiny models with a real (trained here, never downloaded) byte-level BPE tokenizer."""

from __future__ import annotations

import json
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


SPM_MODEL_VOCAB = 448  # the SentencePiece tokenizer's 420 pieces, padded with [PAD{id}]


def phi3_longrope(head_dim: int) -> dict[str, Any]:
    """Phi-3.5's kind of LongRoPE factors (head_dim / 2 of each), the short ones used
    below the original 4096 tokens."""
    half = head_dim // 2
    return {
        "rope_type": "longrope",
        "short_factor": [1.0 + 0.8 * i / half for i in range(half)],
        "long_factor": [1.0 + 19.0 * (i / half) ** 2 for i in range(half)],
    }


def build_sentencepiece_model(
    out: Path, architecture: str, *, seed: int = 0, partial_rotary: float = 1.0, **sizes: int
) -> Path:
    """A tiny ``phi3`` (Phi-3.5-style LongRoPE, fused qkv_proj / gate_up_proj),
    ``gemma`` or ``gemma2`` model from its transformers config, with a SentencePiece
    tokenizer trained here (Gemma's: no dummy ▁ prefix); ``sizes`` override the config,
    ``partial_rotary`` is Phi-3's partial_rotary_factor (Phi-4-mini's 0.75: rope on part
    of each head)."""
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        GemmaConfig,
        GemmaForCausalLM,
        Phi3Config,
        Phi3ForCausalLM,
    )

    from tests.support.factories import build_sentencepiece_tokenizer

    settings: dict[str, Any] = {
        **TINY_LLAMA,
        "vocab_size": SPM_MODEL_VOCAB,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": None,
        **sizes,
    }
    torch.manual_seed(seed)
    if architecture == "phi3":
        head_dim = settings["hidden_size"] // settings["num_attention_heads"]
        config: Any = Phi3Config(
            **{**settings, "max_position_embeddings": 16384},
            original_max_position_embeddings=4096,
            rope_parameters={
                **phi3_longrope(int(head_dim * partial_rotary)),
                "partial_rotary_factor": partial_rotary,
            },
            tie_word_embeddings=False,
        )
        model: Any = Phi3ForCausalLM(config)
    elif architecture == "gemma":
        model = GemmaForCausalLM(GemmaConfig(**settings, head_dim=16))
    else:
        config = Gemma2Config(**settings, head_dim=16, query_pre_attn_scalar=16)
        model = Gemma2ForCausalLM(config)
    # transformers initialises Gemma's norm weights to 0 (a scale of 1): make them count
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.uniform_(-0.5, 0.5)
    model.save_pretrained(out, safe_serialization=True)
    gemma = architecture.startswith("gemma")
    build_sentencepiece_tokenizer(out, add_dummy_prefix=not gemma)
    if architecture == "phi3":
        # Phi-3's own added token: llama.cpp looks it up by its text in a model named Phi-3
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(out)
        tokenizer.add_special_tokens({"additional_special_tokens": ["<|endoftext|>"]})
        tokenizer.save_pretrained(out)
    return out


PHI3_CHAT_TOKENS = [
    "<|assistant|>",
    "<|placeholder1|>",
    "<|placeholder2|>",
    "<|placeholder3|>",
    "<|placeholder4|>",
    "<|system|>",
    "<|end|>",
    "<|placeholder5|>",
    "<|placeholder6|>",
    "<|user|>",
]


def build_phi3_chat_tokenizer(model_dir: Path) -> Path:
    """Give the tokenizer of ``build_sentencepiece_model(..., "phi3")`` Phi-3 /
    Phi-3.5-mini-instruct's added tokens as its files list them: ``<|endoftext|>`` right
    after the pieces, then the chat tokens, special and ``rstrip: true``; ``</s>`` with
    ``rstrip: true`` and ``special: false``; ``<unk>``, ``<s>``, ``<|endoftext|>`` without
    rstrip. In ``tokenizer.json``'s ``added_tokens`` and ``tokenizer_config.json``'s
    ``added_tokens_decoder`` (Phi-3 ships both)."""
    path = model_dir / "tokenizer.json"
    tokenizer = json.loads(path.read_text(encoding="utf-8"))
    entries = {entry["content"]: entry for entry in tokenizer["added_tokens"]}
    entries["</s>"].update(rstrip=True, special=False)
    first = entries["<|endoftext|>"]["id"] + 1
    for offset, content in enumerate(PHI3_CHAT_TOKENS):
        entries[content] = {
            "id": first + offset,
            "content": content,
            "single_word": False,
            "lstrip": False,
            "rstrip": True,
            "normalized": False,
            "special": True,
        }
    tokenizer["added_tokens"] = sorted(entries.values(), key=lambda entry: entry["id"])
    path.write_text(json.dumps(tokenizer), encoding="utf-8")
    config_path = model_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["added_tokens_decoder"] = {
        str(entry["id"]): {key: value for key, value in entry.items() if key != "id"}
        for entry in tokenizer["added_tokens"]
    }
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return model_dir
