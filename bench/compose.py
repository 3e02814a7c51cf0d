"""Benchmark of the composer against PEFT on Llama-3-8B-shaped adapters and a ~1B base.

Not a test; run it by hand:

    python bench/compose.py                 # 2 layers of 8B shapes + a 1.1B-parameter base
    python bench/compose.py --quick         # smaller merged base (4 layers), same adapter part
    python bench/compose.py --layers 4 --ties-exact
    python bench/compose.py --sparse        # sparse slice: compose vs mergekit (issue 20)
    python bench/compose.py --full-8b       # whole 8B r=16 pair, TIES -> r16 (minutes)

Everything is generated locally (random weights) in a temporary directory.
Targets (issue 4):
  linear of two r=16 adapters to r=16 vs PEFT `svd`        >= 100x faster, error <= PEFT's
  ties to r=16 vs PEFT `ties_svd`                          >= 5x faster, error <= PEFT's
  merged ~1B bf16 model: wall time vs plain shard copy     <= 2x, peak RSS <= 3 GB
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.compose_sparse import bench_sparse, compose_child  # noqa: E402

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LLAMA3_8B = {"hidden": 4096, "intermediate": 14336, "kv": 1024}
BASE_1B = {
    "hidden": 2048,
    "intermediate": 8192,
    "kv": 512,
    "vocab": 32000,
    "heads": 32,
    "kv_heads": 8,
}
RANK = 16


def projection_shapes(hidden: int, intermediate: int, kv: int) -> dict[str, tuple[int, int]]:
    """(out, in) of each projection of a Llama layer."""
    return {
        "q_proj": (hidden, hidden),
        "k_proj": (kv, hidden),
        "v_proj": (kv, hidden),
        "o_proj": (hidden, hidden),
        "gate_proj": (intermediate, hidden),
        "up_proj": (intermediate, hidden),
        "down_proj": (hidden, intermediate),
    }


def module_name(layer: int, projection: str) -> str:
    group = "mlp" if projection in ("gate_proj", "up_proj", "down_proj") else "self_attn"
    return f"model.layers.{layer}.{group}.{projection}"


def write_adapter(out: Path, layers: int, shapes: dict[str, tuple[int, int]], seed: int) -> Path:
    """A PEFT LoRA adapter (r=16, alpha=32, all seven projections) with random A and B."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(layers):
        for projection, (rows, cols) in shapes.items():
            name = module_name(layer, projection)
            a = torch.randn(RANK, cols, generator=generator) / math.sqrt(cols)
            b = torch.randn(rows, RANK, generator=generator) * 0.02
            tensors[f"base_model.model.{name}.lora_A.weight"] = a
            tensors[f"base_model.model.{name}.lora_B.weight"] = b
    out.mkdir(parents=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "r": RANK,
        "lora_alpha": 2 * RANK,
        "target_modules": list(PROJECTIONS),
        "base_model_name_or_path": "bench/llama",
        "bias": "none",
        "lora_dropout": 0.0,
        "use_rslora": False,
        "use_dora": False,
        "task_type": None,
    }
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


def read_factors(adapter: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    config = json.loads((adapter / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    out = {}
    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118
            if key.endswith(".lora_A.weight"):
                name = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
                b = handle.get_tensor(key.replace("lora_A", "lora_B"))
                out[name] = (handle.get_tensor(key), b, scale)
    return out


def relative_error(reference: torch.Tensor, approximation: torch.Tensor) -> float:
    reference = reference.double()
    residual = torch.linalg.matrix_norm(reference - approximation.double())
    return float(residual / torch.linalg.matrix_norm(reference))


class _Skeleton(torch.nn.Module):
    """Only the Linear layers of a Llama, uninitialised (untouched pages cost no memory)."""

    def __init__(self, layers: int, shapes: dict[str, tuple[int, int]]) -> None:
        super().__init__()
        self.model = torch.nn.Module()
        self.model.layers = torch.nn.ModuleList()
        for _ in range(layers):
            layer = torch.nn.Module()
            layer.self_attn = torch.nn.Module()
            layer.mlp = torch.nn.Module()
            for projection, (rows, cols) in shapes.items():
                group = (
                    layer.mlp
                    if projection in ("gate_proj", "up_proj", "down_proj")
                    else (layer.self_attn)
                )
                linear = torch.nn.Linear(cols, rows, bias=False, device="meta")
                setattr(group, projection, linear.to_empty(device="cpu"))
            self.model.layers.append(layer)


def peft_model(layers: int, shapes: dict[str, tuple[int, int]], adapters: list[Path]) -> Any:
    from peft import PeftModel

    model = PeftModel.from_pretrained(_Skeleton(layers, shapes), adapters[0], adapter_name="in0")
    for index, adapter in enumerate(adapters[1:], start=1):
        model.load_adapter(adapter, adapter_name=f"in{index}")
    return model


def peft_module_deltas(model: Any, adapter_name: str) -> dict[str, torch.Tensor]:
    from peft.tuners.lora import LoraLayer

    out = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and adapter_name in module.lora_A:
            key = name.removeprefix("base_model.model.")
            out[key] = module.get_delta_weight(adapter_name).detach()
    return out


def ours_products(out: Path) -> dict[str, torch.Tensor]:
    return {name: scale * (b @ a) for name, (a, b, scale) in read_factors(out).items()}


class _Printed(list[str]):
    """Lines printed as they are added, so a long run shows each result when it is ready."""

    def append(self, line: str) -> None:
        print(line, flush=True)
        super().append(line)


def bench_adapters(work: Path, layers: int, ties_exact: bool) -> list[str]:
    from composer import compose
    from composer.methods import get_method, module_seed
    from composer.methods.base import InputParameters, SharedParameters

    shapes = projection_shapes(LLAMA3_8B["hidden"], LLAMA3_8B["intermediate"], LLAMA3_8B["kv"])
    adapters = [write_adapter(work / f"in{i}", layers, shapes, seed=i) for i in range(2)]
    factors = [read_factors(adapter) for adapter in adapters]
    names = sorted(factors[0])
    lines = _Printed()
    lines.append(
        f"adapters: {layers} layers of Llama-3-8B shapes x 7 projections, r={RANK}, 2 inputs"
    )
    model = peft_model(layers, shapes, adapters)

    # linear 0.7 / -0.3 to rank 16
    weights = [0.7, -0.3]
    start = time.perf_counter()
    compose(
        {
            "method": "linear",
            "inputs": [
                {"adapter": str(a), "weight": w} for a, w in zip(adapters, weights, strict=True)
            ],
            "output": {"rank": RANK},
            "device": "cpu",
        },
        work / "ours-linear",
    )
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.add_weighted_adapter(
        ["in0", "in1"], weights, "svd", combination_type="svd", svd_rank=RANK
    )
    peft_seconds = time.perf_counter() - start
    ours, theirs = ours_products(work / "ours-linear"), peft_module_deltas(model, "svd")
    ours_errors, peft_errors = [], []
    for name in names:
        exact = sum(
            w * f[name][2] * (f[name][1] @ f[name][0])
            for w, f in zip(weights, factors, strict=True)
        )
        assert isinstance(exact, torch.Tensor)
        ours_errors.append(relative_error(exact, ours[name]))
        peft_errors.append(relative_error(exact, theirs[name]))
    model.delete_adapter("svd")
    lines.append(
        _report(
            "linear -> r16 vs PEFT svd", ours_seconds, peft_seconds, ours_errors, peft_errors, 100
        )
    )

    # TIES (density 0.5, weights 1) to rank 16
    recipe = {
        "method": "ties",
        "inputs": [{"adapter": str(a), "weight": 1.0} for a in adapters],
        "parameters": {"density": 0.5},
        "output": {"rank": RANK},
        "device": "cpu",
    }
    start = time.perf_counter()
    compose(recipe, work / "ours-ties")
    ours_seconds = time.perf_counter() - start
    exact_seconds = None
    if ties_exact:
        start = time.perf_counter()
        compose({**recipe, "output": {"rank": RANK, "svd": "exact"}}, work / "ours-ties-exact")
        exact_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.add_weighted_adapter(
        ["in0", "in1"], [1.0, 1.0], "ties", combination_type="ties_svd", svd_rank=RANK, density=0.5
    )
    peft_seconds = time.perf_counter() - start
    ours, theirs = ours_products(work / "ours-ties"), peft_module_deltas(model, "ties")
    exact_products = ours_products(work / "ours-ties-exact") if ties_exact else {}
    ties = get_method("ties")
    ours_errors, peft_errors, exact_errors = [], [], []
    for name in names:
        deltas = [f[name][2] * (f[name][1] @ f[name][0]) for f in factors]
        true_ties = ties.merge(  # type: ignore[attr-defined]
            deltas,
            [InputParameters(weight=1.0, density=0.5)] * 2,
            SharedParameters(),
            seed=module_seed(0, name),
        )
        ours_errors.append(relative_error(true_ties, ours[name]))
        peft_errors.append(relative_error(true_ties, theirs[name]))
        if ties_exact:
            exact_errors.append(relative_error(true_ties, exact_products[name]))
    lines.append(
        _report(
            "ties -> r16 vs PEFT ties_svd", ours_seconds, peft_seconds, ours_errors, peft_errors, 5
        )
    )
    if exact_seconds is not None:
        lines.append(
            _report(
                "ties -> r16 (exact SVD) vs PEFT",
                exact_seconds,
                peft_seconds,
                exact_errors,
                peft_errors,
                5,
            )
        )
    return lines


def _report(
    title: str,
    ours: float,
    peft: float,
    ours_errors: list[float],
    peft_errors: list[float],
    target: float,
) -> str:
    speedup = peft / ours
    mean_ours = sum(ours_errors) / len(ours_errors)
    mean_peft = sum(peft_errors) / len(peft_errors)
    worst = max(o / p if p else 1.0 for o, p in zip(ours_errors, peft_errors, strict=True))
    ok_speed = "OK" if speedup >= target else "MISSED"
    ok_error = "OK" if worst <= 1 + 1e-4 else "MISSED"
    return (
        f"{title}: lorry {ours:.2f} s, PEFT {peft:.2f} s -> {speedup:.1f}x "
        f"(target >= {target}x: {ok_speed}); mean relative error lorry {mean_ours:.6e} vs "
        f"PEFT {mean_peft:.6e}, worst module ratio lorry/PEFT {worst:.6f} "
        f"(target <= 1 within float32 round-off: {ok_error})"
    )


# ----------------------------------------------------------------------------- merged model


def write_base(out: Path, layers: int, shard_bytes: int = 1 << 30) -> int:
    """A Llama-shaped bf16 model directory with random weights; returns its parameter count."""
    from transformers import LlamaConfig

    spec = BASE_1B
    config = LlamaConfig(
        hidden_size=spec["hidden"],
        intermediate_size=spec["intermediate"],
        num_hidden_layers=layers,
        num_attention_heads=spec["heads"],
        num_key_value_heads=spec["kv_heads"],
        vocab_size=spec["vocab"],
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
    )
    out.mkdir(parents=True)
    config.save_pretrained(out)
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (spec["vocab"], spec["hidden"])
    }
    projection = projection_shapes(spec["hidden"], spec["intermediate"], spec["kv"])
    for layer in range(layers):
        shapes[f"model.layers.{layer}.input_layernorm.weight"] = (spec["hidden"],)
        for name, shape in projection.items():
            shapes[f"{module_name(layer, name)}.weight"] = shape
        shapes[f"model.layers.{layer}.post_attention_layernorm.weight"] = (spec["hidden"],)
    shapes["model.norm.weight"] = (spec["hidden"],)
    shapes["lm_head.weight"] = (spec["vocab"], spec["hidden"])
    groups: list[list[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        nbytes = 2 * math.prod(shape)
        if size + nbytes > shard_bytes and groups[-1]:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    generator = torch.Generator().manual_seed(0)
    weight_map = {}
    for number, names in enumerate(groups, start=1):
        shard = f"model-{number:05d}-of-{len(groups):05d}.safetensors"
        tensors = {}
        for name in names:
            shape = shapes[name]
            if len(shape) == 1:
                tensors[name] = torch.ones(shape, dtype=torch.bfloat16)
            else:
                tensors[name] = (torch.randn(shape, generator=generator) * 0.02).to(torch.bfloat16)
            weight_map[name] = shard
        save_file(tensors, str(out / shard), metadata={"format": "pt"})
        del tensors
    total = sum(2 * math.prod(shape) for shape in shapes.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (out / "tokenizer_config.json").write_text('{"model_max_length": 4096}')
    return sum(math.prod(shape) for shape in shapes.values())


def _task(kind: str, base: Path, out: Path, adapters: list[Path]) -> Callable[[], None]:
    """The work of one contender, its libraries already imported: the clock measures the
    work, not Python's imports (transformers alone takes seconds)."""
    if kind == "copy":

        def copy() -> None:
            shutil.copytree(base, out)

        return copy
    if kind == "stream":

        def stream() -> None:
            out.mkdir()
            block = bytearray(1 << 18)
            for item in sorted(base.iterdir()):
                with item.open("rb", buffering=0) as source, (out / item.name).open("wb") as to:
                    while size := source.readinto(block):
                        to.write(memoryview(block)[:size])

        return stream
    if kind == "compose":
        from composer import compose

        recipe = {
            "method": "linear",
            "inputs": [
                {"adapter": str(adapters[0]), "weight": 0.7},
                {"adapter": str(adapters[1]), "weight": -0.3},
            ],
            "output": {"type": "merged", "base": str(base)},
            "device": "cpu",
        }

        def merge() -> None:
            compose(recipe, out)

        return merge
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    def peft() -> None:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
        model = PeftModel.from_pretrained(model, adapters[0], adapter_name="in0")
        model.load_adapter(adapters[1], adapter_name="in1")
        model.add_weighted_adapter(["in0", "in1"], [0.7, -0.3], "mix", combination_type="cat")
        model.set_adapter("mix")
        merged = model.merge_and_unload(adapter_names=["mix"])
        merged.save_pretrained(out)

    return peft


def child(args: argparse.Namespace) -> None:
    """Run one measured task in this process and print its time and peak RSS as JSON."""
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    adapters = [Path(item) for item in args.adapters]
    task = _task(args.child, Path(args.base), Path(args.out), adapters)
    start = time.perf_counter()
    task()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    """This process's peak RSS since its exec (VmHWM; ru_maxrss also counts the parent's)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_child(
    kind: str, base: Path, out: Path, adapters: list[Path], threads: int = 0
) -> dict[str, float]:
    os.sync()  # start every contender without dirty pages of the previous one
    command = [sys.executable, __file__, "--child", kind, "--base", str(base), "--out", str(out)]
    command += ["--adapters", *map(str, adapters), "--torch-threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _read_weight(model_dir: Path, key: str) -> torch.Tensor:
    index_file = model_dir / "model.safetensors.index.json"
    shard = "model.safetensors"
    if index_file.is_file():
        shard = json.loads(index_file.read_text())["weight_map"][key]
    with safe_open(str(model_dir / shard), "pt") as handle:
        return handle.get_tensor(key).float()


def _shard_digests(model_dir: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(model_dir.glob("*.safetensors"))
    }


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def bench_merged(work: Path, layers: int, rounds: int, threads: int) -> list[str]:
    """Each round runs the copy, the user-space copy and compose back to back, so a
    round's ratios compare runs made under the same load, in an order that rotates from
    round to round; PEFT runs once (17 s, 2.7 GB)."""
    base = work / "base"
    params = write_base(base, layers)
    spec = BASE_1B
    shapes = projection_shapes(spec["hidden"], spec["intermediate"], spec["kv"])
    adapters = [write_adapter(work / f"merge-in{i}", layers, shapes, seed=10 + i) for i in range(2)]
    for shard in base.glob("*.safetensors"):  # warm the page cache for every contender alike
        shard.read_bytes()
    runs: dict[str, list[dict[str, float]]] = {"copy": [], "stream": [], "compose": []}
    digests = []
    kinds = list(runs)
    for number in range(rounds):
        # Each round starts with another contender: on a VM that hands freed memory back
        # to its host, the first GB written after a cleanup is cheaper than the next ones.
        for kind in kinds[number % 3 :] + kinds[: number % 3]:
            out = work / f"{kind}-out"
            runs[kind].append(_run_child(kind, base, out, adapters, threads))
            if kind == "compose":
                digests.append(_shard_digests(out))
                if number < rounds - 1:
                    shutil.rmtree(out)
            else:
                shutil.rmtree(out)
    peft = _run_child("peft", base, work / "peft-merged", adapters)
    key = "model.layers.0.mlp.gate_proj.weight"
    ours_weight = _read_weight(work / "compose-out", key)
    difference = float((ours_weight - _read_weight(work / "peft-merged", key)).abs().max())
    seconds = {kind: [run["seconds"] for run in results] for kind, results in runs.items()}
    to_copy = [o / c for o, c in zip(seconds["compose"], seconds["copy"], strict=True)]
    to_stream = [o / c for o, c in zip(seconds["compose"], seconds["stream"], strict=True)]
    ours_rss = max(run["peak_rss_mb"] for run in runs["compose"])
    ours_median = statistics.median(seconds["compose"])
    worst = max(to_copy)
    return [
        f"merged: {params / 1e9:.2f}B-parameter Llama-shaped bf16 base ({layers} layers), "
        "linear 0.7/-0.3 of two r=16 adapters on all projections; "
        f"{rounds} rounds, seconds as median (min-max); compose with "
        f"{threads or 'torch default'} torch threads",
        f"  plain copy of the shards (shutil.copytree): {_spread(seconds['copy'])} s",
        f"  byte copy through user space (256 KiB blocks): {_spread(seconds['stream'])} s",
        f"  lorry compose (merged): {_spread(seconds['compose'])} s, peak RSS {ours_rss:.0f} MB",
        f"  lorry / copy, per round: {_spread(to_copy)} (target <= 2x: "
        f"{'OK' if worst <= 2 else 'MISSED' if min(to_copy) > 2 else 'met in some rounds'}); "
        f"lorry / user-space copy: {_spread(to_stream)}; RSS target <= 3 GB: "
        f"{'OK' if ours_rss <= 3072 else 'MISSED'}",
        f"  PEFT merge_and_unload + save_pretrained: {peft['seconds']:.1f} s, peak RSS "
        f"{peft['peak_rss_mb']:.0f} MB -> lorry (median) is {peft['seconds'] / ours_median:.1f}x "
        f"faster, uses {peft['peak_rss_mb'] / ours_rss:.1f}x less memory",
        f"  max |lorry - PEFT| on {key} (bf16 outputs): {difference:.3e}; lorry output "
        f"byte-identical across rounds: {all(d == digests[0] for d in digests)}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=2, help="layers of 8B shapes (adapter part)")
    parser.add_argument("--quick", action="store_true", help="a 4-layer merged base instead of 16")
    parser.add_argument(
        "--merged-rounds", type=int, default=3, help="rounds of copy / compose (default 3)"
    )
    parser.add_argument(
        "--merged-threads",
        type=int,
        default=0,
        help="torch.set_num_threads for the merged compose (default: torch's own choice)",
    )
    parser.add_argument(
        "--ties-exact", action="store_true", help="also time TIES with the exact SVD"
    )
    parser.add_argument(
        "--sparse",
        action="store_true",
        help="only the sparse slice: compose vs mergekit (issue 20)",
    )
    parser.add_argument(
        "--full-8b", action="store_true", help="only the whole 8B r=16 pair, TIES -> r16 (minutes)"
    )
    parser.add_argument(
        "--sparse-threads", type=int, default=0, help="torch threads of the sparse compose runs"
    )
    parser.add_argument("--child-sparse", help=argparse.SUPPRESS)
    parser.add_argument("--skip-adapters", action="store_true")
    parser.add_argument("--skip-merged", action="store_true")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to generate (default: a temp dir)"
    )
    parser.add_argument(
        "--child", choices=("copy", "stream", "compose", "peft"), help=argparse.SUPPRESS
    )
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--adapters", nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--torch-threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.child_sparse:
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        compose_child(Path(args.child_sparse), Path(args.out))
        return
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    with tempfile.TemporaryDirectory(prefix="lorry-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        if args.sparse or args.full_8b:
            shapes = projection_shapes(**LLAMA3_8B) if args.full_8b else None
            bench_sparse(
                work, write_adapter, read_factors, Path(__file__), shapes, args.sparse_threads
            )
            return
        if not args.skip_adapters:
            bench_adapters(work, args.layers, args.ties_exact)
        if not args.skip_merged:
            merged = bench_merged(
                work, 4 if args.quick else 16, args.merged_rounds, args.merged_threads
            )
            for line in merged:
                print(line, flush=True)


if __name__ == "__main__":
    main()
