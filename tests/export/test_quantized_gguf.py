"""Quantized GGUF models (Q4_K_M, Q4_K_S, Q5_K_M, Q6_K, Q4_0) checked against llama.cpp.

Lorry computes the k-quants itself; llama.cpp (built by .ci/llama_cpp.sh) is the
reference: ggml's own quantizer on the same rows, llama-quantize's work
(``llama_model_quantize``) on the same model, byte for byte, and llama.cpp's logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch
from gguf import GGMLQuantizationType, GGUFReader, LlamaFileType

from composer.errors import InputError
from composer.export import export_gguf
from composer.export._kquants import quantize_tensor
from composer.export._mixes import mix_types
from tests.export.builders import build_tiny_model
from tests.support.llama_cpp import ggml_quantize, llama_quantize, load_llama_cpp

T = GGMLQuantizationType
# wide enough for 256-value k-quant blocks; 8 layers so that the mixes' layer rules differ
WIDE = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
FTYPES = {
    "q4_k_m": LlamaFileType.MOSTLY_Q4_K_M,
    "q4_k_s": LlamaFileType.MOSTLY_Q4_K_S,
    "q5_k_m": LlamaFileType.MOSTLY_Q5_K_M,
    "q6_k": LlamaFileType.MOSTLY_Q6_K,
    "q4_0": LlamaFileType.MOSTLY_Q4_0,
}


@pytest.fixture(scope="module")
def wide_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("wide-llama") / "model", seed=5, **WIDE)


@pytest.fixture(scope="module")
def wide_llama_f16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wide-llama-f16") / "model"
    return build_tiny_model(out, seed=6, dtype=torch.float16, **WIDE)


def _rows(kind: str) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(11)
    if kind == "normal":
        return (rng.standard_normal((48, 1024)) * 0.02).astype(np.float32)
    if kind == "heavy-tailed":
        return rng.standard_t(2, (32, 768)).astype(np.float32)
    if kind == "float16-valued":
        return rng.standard_normal((32, 512)).astype(np.float16).astype(np.float32)
    if kind == "dwarfed":  # sub-blocks whose scale rounds to 0 next to an outlier's
        dwarfed = (rng.standard_normal((6, 512)) * 0.001).astype(np.float32)
        dwarfed[:, 100], dwarfed[1, 300], dwarfed[2, :16] = 1000.0, -3e4, 0.0
        return dwarfed
    # blocks of zeros, of one negative value, of positives only, and one outlier
    special = np.zeros((4, 512), np.float32)
    special[1] = -0.5
    special[2] = np.abs(rng.standard_normal(512)).astype(np.float32)
    special[3, 7] = 1000.0
    return special


@pytest.mark.parametrize("kind", ["normal", "heavy-tailed", "float16-valued", "dwarfed", "special"])
@pytest.mark.parametrize("ggml_type", [T.Q4_K, T.Q5_K, T.Q6_K, T.Q4_0, T.Q8_0, T.Q5_0, T.Q5_1])
def test_quantized_blocks_equal_ggml_reference_quantizer(kind: str, ggml_type: T) -> None:
    rows = _rows(kind)
    expected = ggml_quantize(rows, ggml_type)
    got = quantize_tensor(rows, ggml_type)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    assert np.array_equal(got, expected), f"{ggml_type.name} differs from ggml on {kind} rows"


def _raw_tensors(path: Path) -> dict[str, tuple[str, bytes]]:
    return {
        tensor.name: (tensor.tensor_type.name, bytes(tensor.data.tobytes()))
        for tensor in GGUFReader(path).tensors
    }


@pytest.mark.parametrize("outtype", list(FTYPES))
@pytest.mark.parametrize("source", ["f32", "f16"])
def test_quantized_export_equals_llama_quantize_tensor_by_tensor(
    outtype: str, source: str, wide_llama: Path, wide_llama_f16: Path, tmp_path: Path
) -> None:
    model_dir = wide_llama if source == "f32" else wide_llama_f16
    unquantized = tmp_path / f"model-{source}.gguf"
    export_gguf(model_dir, unquantized, outtype=source)
    reference = tmp_path / "llama-quantize.gguf"
    llama_quantize(unquantized, reference, FTYPES[outtype])
    ours = tmp_path / "lorry.gguf"
    export_gguf(model_dir, ours, outtype=outtype)

    expected, got = _raw_tensors(reference), _raw_tensors(ours)
    assert got.keys() == expected.keys()  # llama-quantize writes them in its own order
    types = {name: kind for name, (kind, _) in got.items()}
    for name, (kind, data) in expected.items():
        assert got[name][0] == kind, f"{name}: Lorry {got[name][0]}, llama-quantize {kind}"
        assert got[name][1] == data, f"{name} ({kind}): bytes differ from llama-quantize's"
    if outtype == "q4_k_m":  # the mix really mixes: Q6_K where llama.cpp gives more bits
        assert types["output.weight"] == "Q6_K" and types["blk.1.attn_q.weight"] == "Q4_K"
        assert types["blk.0.ffn_down.weight"] == "Q6_K"
        assert types["blk.1.ffn_down.weight"] == "Q4_K"
    metadata = GGUFReader(ours).fields["general.file_type"].contents()
    assert metadata == int(FTYPES[outtype])


def test_q4_k_m_falls_back_where_rows_are_not_whole_blocks(
    llama_with_tokenizer: Path, tmp_path: Path
) -> None:
    """The 64-wide tiny Llama: Q4_K -> Q5_0, Q6_K -> Q8_0, as llama-quantize decides."""
    unquantized, reference, ours = (tmp_path / name for name in ("f32.gguf", "ref.gguf", "q.gguf"))
    export_gguf(llama_with_tokenizer, unquantized, outtype="f32")
    llama_quantize(unquantized, reference, LlamaFileType.MOSTLY_Q4_K_M)
    export_gguf(llama_with_tokenizer, ours, outtype="q4_k_m")
    expected, got = _raw_tensors(reference), _raw_tensors(ours)
    assert got == expected
    assert {kind for kind, _ in got.values()} == {"F32", "Q5_0", "Q8_0"}


def test_mix_types_give_llama_3_2_3b_the_q6_k_layers_of_llama_cpp() -> None:
    layers = 28
    tensors = [("token_embd.weight", (128256, 3072))]
    for layer in range(layers):
        tensors += [
            (f"blk.{layer}.attn_norm.weight", (3072,)),
            (f"blk.{layer}.attn_q.weight", (3072, 3072)),
            (f"blk.{layer}.attn_v.weight", (1024, 3072)),
            (f"blk.{layer}.ffn_down.weight", (3072, 8192)),
        ]
    types = dict(
        zip((name for name, _ in tensors), mix_types("q4_k_m", tensors, layers), strict=True)
    )
    # use_more_bits(i, 28): i < 3, i >= 24, or (i - 3) % 3 == 2
    more_bits = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27}
    for layer in range(layers):
        wanted = T.Q6_K if layer in more_bits else T.Q4_K
        assert types[f"blk.{layer}.attn_v.weight"] == wanted
        assert types[f"blk.{layer}.ffn_down.weight"] == wanted
        assert types[f"blk.{layer}.attn_q.weight"] == T.Q4_K
        assert types[f"blk.{layer}.attn_norm.weight"] is None
    # tied embeddings (no output.weight): the token embedding is the output, so Q6_K
    assert types["token_embd.weight"] == T.Q6_K
    small = mix_types("q4_k_s", tensors, layers)
    attn_v = [t for (name, _), t in zip(tensors, small, strict=True) if "attn_v" in name]
    assert attn_v[:5] == [T.Q5_K, T.Q5_K, T.Q5_K, T.Q5_K, T.Q4_K]


def test_adapter_export_refuses_a_quantization_mix(lora_adapter_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="merge it into its base first"):
        export_gguf(lora_adapter_dir, tmp_path / "a.gguf", outtype="q4_k_m")
    assert not (tmp_path / "a.gguf").exists()


def _last_logits(model: Path, ids: list[int]) -> npt.NDArray[np.float32]:
    llama_cpp = load_llama_cpp()
    llm = llama_cpp.Llama(
        model_path=str(model), n_ctx=64, n_threads=1, verbose=False, logits_all=True
    )
    llm.eval(ids)
    logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    llm.close()
    return logits


def test_q4_k_m_logits_are_as_close_to_f16_as_llama_quantizes(
    wide_llama_f16: Path, tmp_path: Path
) -> None:
    f16, reference, ours = (tmp_path / name for name in ("f16.gguf", "ref.gguf", "q.gguf"))
    export_gguf(wide_llama_f16, f16, outtype="f16")
    llama_quantize(f16, reference, LlamaFileType.MOSTLY_Q4_K_M)
    export_gguf(wide_llama_f16, ours, outtype="q4_k_m")
    ids = [0, 17, 40, 99, 120, 201, 7, 55]
    exact = _last_logits(f16, ids)
    llama_error = np.abs(_last_logits(reference, ids) - exact).max()
    our_error = np.abs(_last_logits(ours, ids) - exact).max()
    print(f"\nmax |logit - f16|: llama-quantize {llama_error:.4f}, Lorry {our_error:.4f}")
    assert 0 < our_error <= llama_error
