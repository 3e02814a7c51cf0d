"""Q4_K_M of a Llama-3.2-3B-shaped model: Lorry's export vs llama.cpp's llama-quantize.

Not a test; run it by hand, with llama.cpp built by .ci/llama_cpp.sh:

    export LORRY_LLAMA_CPP_DIR=$(bash .ci/llama_cpp.sh)
    python bench/quantize.py                  # 28 layers: the whole 3.2B model (~6.4 GB f16)
    python bench/quantize.py --layers 4       # the same shapes, 4 layers (0.8B with the embedding)

A random float16 model of Llama 3.2 3B's shapes (hidden 3072, intermediate 8192,
24 heads / 8 kv heads, vocabulary 128256, tied embeddings) is generated in a temporary
directory; nothing is downloaded. Contenders, each in its own process, the same round:
  llama-quantize  llama_model_quantize (what the llama-quantize tool runs, its default
                  threads) on the f16 GGUF that Lorry exports from that model
  Lorry           export_gguf(model directory, outtype="q4_k_m"): safetensors in,
                  Q4_K_M GGUF out, k-quants computed by composer.export._kquants
The two Q4_K_M files are compared tensor by tensor (the bytes must be equal).
Targets (issue 17): Lorry <= 2x llama-quantize's time, Lorry's peak RSS < 1.5 GB.

    python bench/quantize.py --kernels        # the k-quant kernels alone, one thread each

times each of Lorry's k-quant kernels (composer.export._kquants: Q4_K, Q5_K, Q6_K) against
ggml's reference quantizer (ggml_quantize_chunk, what llama-quantize runs per tensor) on
the same float32 rows (3072 wide, 1.5 M values), one thread each, the two alternating,
best of --repeat; the bytes must be equal. Less sensitive to a loaded machine than the
whole-model run, whose two contenders run minutes apart.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LLAMA_3_2_3B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_attention_heads": 24,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "bos_token_id": 0,
    "eos_token_id": 1,
}


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generate(model_dir: Path, layers: int) -> None:
    """Random float16 weights of the 3B shapes, one safetensors shard per layer."""
    import torch
    from safetensors.torch import save_file

    from tests.export.builders import build_bpe_tokenizer

    model_dir.mkdir(parents=True)
    config = {**LLAMA_3_2_3B, "num_hidden_layers": layers}
    (model_dir / "config.json").write_text(json.dumps(config))
    hidden, inter, kv = 3072, 8192, 1024
    generator = torch.Generator().manual_seed(0)

    def weight(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * 0.02).to(torch.float16)

    weight_map: dict[str, str] = {}
    shards = [("embed", {"model.embed_tokens.weight": weight(128256, hidden)})]
    shards[0][1]["model.norm.weight"] = torch.ones(hidden, dtype=torch.float16)
    for layer in range(layers):
        prefix = f"model.layers.{layer}"
        shards.append(
            (
                f"layer{layer}",
                {
                    f"{prefix}.self_attn.q_proj.weight": weight(hidden, hidden),
                    f"{prefix}.self_attn.k_proj.weight": weight(kv, hidden),
                    f"{prefix}.self_attn.v_proj.weight": weight(kv, hidden),
                    f"{prefix}.self_attn.o_proj.weight": weight(hidden, hidden),
                    f"{prefix}.mlp.gate_proj.weight": weight(inter, hidden),
                    f"{prefix}.mlp.up_proj.weight": weight(inter, hidden),
                    f"{prefix}.mlp.down_proj.weight": weight(hidden, inter),
                    f"{prefix}.input_layernorm.weight": torch.ones(hidden, dtype=torch.float16),
                    f"{prefix}.post_attention_layernorm.weight": torch.ones(
                        hidden, dtype=torch.float16
                    ),
                },
            )
        )
    for index, (_, tensors) in enumerate(shards):
        name = f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(tensors, str(model_dir / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, name))
    index_file = model_dir / "model.safetensors.index.json"
    index_file.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    build_bpe_tokenizer(model_dir)


def child(kind: str, source: Path, out: Path) -> None:
    if kind == "lorry":
        from composer.export import export_gguf

        started = time.perf_counter()
        export_gguf(source, out, outtype="q4_k_m")
    else:
        from gguf import LlamaFileType

        from tests.support.llama_cpp import llama_quantize, load_llama_cpp

        load_llama_cpp()
        started = time.perf_counter()
        llama_quantize(source, out, LlamaFileType.MOSTLY_Q4_K_M)
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": _peak_rss_mb()}))


def run_child(kind: str, source: Path, out: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(source), str(out)],
        check=True,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
    )
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def same_tensors(first: Path, second: Path) -> bool:
    from gguf import GGUFReader

    def by_name(path: Path) -> dict[str, tuple[int, bytes]]:
        # llama-quantize writes the tensors in its own order: compare them by name
        return {t.name: (int(t.tensor_type), bytes(t.data)) for t in GGUFReader(path).tensors}

    return by_name(first) == by_name(second)


def _time_kernel(name: str, rows: Any, repeat: int) -> tuple[float, float, bool]:
    """Best seconds of ggml's and Lorry's quantizer for ``name``, alternating; bytes equal?"""
    import numpy as np
    from gguf import GGMLQuantizationType

    from composer.export import _kquants
    from tests.support.llama_cpp import ggml_quantize

    ggml_type = GGMLQuantizationType[name]
    quantizer = {"Q4_K": _kquants.quantize_q4_k, "Q5_K": _kquants.quantize_q5_k}.get(
        name, _kquants.quantize_q6_k
    )
    values = rows.reshape(-1)
    piece = _kquants._PIECE  # as quantize_tensor cuts a tensor, without its threads

    def lorry() -> Any:
        return np.concatenate(
            [quantizer(values[at : at + piece]) for at in range(0, values.size, piece)]
        )

    def ggml() -> Any:
        return ggml_quantize(rows, ggml_type)

    times: dict[str, list[float]] = {"ggml": [], "lorry": []}
    outputs: dict[str, Any] = {}
    for _ in range(repeat):
        for contender, run in (("ggml", ggml), ("lorry", lorry)):
            started = time.perf_counter()
            outputs[contender] = run()
            times[contender].append(time.perf_counter() - started)
    same = bool(np.array_equal(outputs["ggml"], outputs["lorry"]))
    return min(times["ggml"]), min(times["lorry"]), same


def kernels(repeat: int) -> None:
    import numpy as np

    from tests.support.llama_cpp import load_llama_cpp

    load_llama_cpp()
    rows = (np.random.default_rng(0).standard_normal((512, 3072)) * 0.02).astype(np.float32)
    print(f"{'kernel':<8}{'ggml ms':>10}{'Lorry ms':>10}{'Lorry/ggml':>12}  identical")
    for name in ("Q4_K", "Q5_K", "Q6_K"):
        ggml_s, lorry_s, same = _time_kernel(name, rows, repeat)
        ratio = lorry_s / ggml_s
        print(f"{name:<8}{ggml_s * 1e3:>10.0f}{lorry_s * 1e3:>10.0f}{ratio:>11.2f}x  {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SOURCE", "OUT"))
    parser.add_argument("--kernels", action="store_true", help="time the k-quant kernels alone")
    parser.add_argument("--repeat", type=int, default=5, help="--kernels: runs of each")
    args = parser.parse_args()
    if args.kernels:
        kernels(args.repeat)
        return
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    from composer.export import export_gguf

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="lorry-bench-q-") as scratch:
        work = Path(scratch)
        started = time.perf_counter()
        generate(work / "model", args.layers)
        f16 = export_gguf(work / "model", work / "f16.gguf", outtype="f16").out
        print(f"generated {args.layers} layers + f16 GGUF in {time.perf_counter() - started:.0f} s")
        reference = run_child("llama-quantize", f16, work / "llama.gguf")
        ours = run_child("lorry", work / "model", work / "lorry.gguf")
        identical = same_tensors(work / "llama.gguf", work / "lorry.gguf")
    ratio = ours["seconds"] / reference["seconds"]
    print(f"{'contender':<16}{'seconds':>10}{'peak RSS MB':>14}")
    for name, measured in (("llama-quantize", reference), ("Lorry", ours)):
        print(f"{name:<16}{measured['seconds']:>10.1f}{measured['peak_rss_mb']:>14.0f}")
    print(f"Lorry / llama-quantize time: {ratio:.2f}x (target <= 2x)")
    print(f"Lorry peak RSS: {ours['peak_rss_mb']:.0f} MB (target < 1536 MB)")
    print(f"tensors byte-identical: {identical}")


if __name__ == "__main__":
    main()
