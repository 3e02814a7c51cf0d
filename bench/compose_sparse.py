"""The sparse part of bench/compose.py: Lorry's kernels against mergekit's, side by side.

Slice (issue 20): one Llama-3-8B-shaped slice (q_proj 4096x4096, up_proj 14336x4096,
down_proj 4096x14336), two random r=16 adapters, density 0.5, to rank 16.

  compose TIES -> r16 (whole run, SVD included)  vs  mergekit merge_tensors("ties")  <= 0.15x
  compose DARE-TIES -> r16                        vs  mergekit merge_tensors("dare_ties") <= 0.35x
  peak RSS of the TIES composition (VmHWM of its own process)                 < 1.5 GB

mergekit gets the dense deltas ready-made (their forming is not timed) and runs the
merge only, no SVD. Each `compose` runs in a child process (imports not timed), so
its peak RSS is its own. `--full-8b` (instead of the slice): the whole pair, 32 layers x 7
projections, TIES -> r16 (target <= 6 minutes on the 2-core machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

SLICE = {"q_proj": (4096, 4096), "up_proj": (14336, 4096), "down_proj": (4096, 14336)}


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f}"


def _recipe(method: str, adapters: list[Path]) -> dict[str, Any]:
    return {
        "method": method,
        "inputs": [{"adapter": str(item)} for item in adapters],
        "parameters": {"density": 0.5, "seed": 0},
        "output": {"rank": 16},
        "device": "cpu",
    }


def compose_child(recipe_file: Path, out: Path) -> None:
    """Run one composition in this process; print its seconds and peak RSS as JSON."""
    from composer import compose

    recipe = json.loads(recipe_file.read_text())
    start = time.perf_counter()
    result = compose(recipe, out, overwrite=True)
    seconds = time.perf_counter() - start
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
    errors = [module.error for module in result.modules]
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "max_error": max(errors)}))


def _compose(
    work: Path, method: str, adapters: list[Path], script: Path, threads: int
) -> dict[str, float]:
    recipe_file = work / f"{method}.json"
    recipe_file.write_text(json.dumps(_recipe(method, adapters)))
    command = [sys.executable, str(script), "--child-sparse", str(recipe_file)]
    command += ["--out", str(work / f"out-{method}"), "--torch-threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _mergekit_seconds(method: str, factors: list[dict[str, Any]]) -> float:
    from mergekit.merge_methods import merge_tensors

    total = 0.0
    for name in factors[0]:
        deltas = [scale * (b @ a) for a, b, scale in (item[name] for item in factors)]
        parameters = {"weight": [1.0] * len(deltas), "density": [0.5] * len(deltas)}
        torch.manual_seed(0)
        start = time.perf_counter()
        merge_tensors(
            [torch.zeros_like(deltas[0]), *deltas], method, parameters=parameters, base_index=0
        )
        total += time.perf_counter() - start
        del deltas
    return total


def bench_sparse(
    work: Path,
    write_adapter: Any,
    read_factors: Any,
    script: Path,
    full_shapes: dict[str, tuple[int, int]] | None,
    threads: int = 0,
) -> list[str]:
    """Print and return the lines of the sparse benchmark."""
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    if full_shapes is None:
        adapters = [write_adapter(work / f"slice-{i}", 1, SLICE, seed=100 + i) for i in range(2)]
        factors = [read_factors(item) for item in adapters]
        say(
            f"sparse slice (q/up/down of one 8B layer, r=16 pair, density 0.5), compose on "
            f"{threads or torch.get_num_threads()} torch threads; {_load()}"
        )
        for method, target in (("ties", 0.15), ("dare_ties", 0.35)):
            ours = _compose(work, method, adapters, script, threads)
            theirs = _mergekit_seconds(method, factors)
            ratio = ours["seconds"] / theirs
            verdict = "met" if ratio <= target else "MISSED"
            say(
                f"  {method:9s} compose -> r16 {ours['seconds']:6.2f} s "
                f"(peak RSS {ours['peak_rss_mb']:.0f} MB, max error {ours['max_error']:.3f}); "
                f"mergekit merge_tensors alone {theirs:6.2f} s; ratio {ratio:.3f} "
                f"(target <= {target}: {verdict}); {_load()}"
            )
    else:
        adapters = [
            write_adapter(work / f"full-{i}", 32, full_shapes, seed=200 + i) for i in range(2)
        ]
        ours = _compose(work, "ties", adapters, script, threads)
        verdict = "met" if ours["seconds"] <= 360 else "MISSED"
        say(
            f"full Llama-3-8B r=16 pair, TIES -> r16, 224 modules: {ours['seconds']:.0f} s "
            f"= {ours['seconds'] / 60:.1f} min (target <= 6 min: {verdict}), "
            f"peak RSS {ours['peak_rss_mb']:.0f} MB; {_load()}"
        )
    return lines
