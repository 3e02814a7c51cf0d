"""What hostile inputs at the limits cost a real ``lorry serve``, beside a normal push.

    python bench/hostile.py

One ``lorry serve`` on the embedded defaults (SQLite + blob directory in a temporary
``LORRY_HOME``, no embedded worker), the default limits. For each case the blobs are
uploaded first (not measured); then the server's peak resident memory is reset
(``/proc/<pid>/clear_refs``) and the one request that validates them (the commit of a
push, or a composition submission) is sent. It prints the status, the wall time, the
server's CPU seconds and its peak RSS during that request, and the ratio of each to the
normal push. The worst case of any input under the limits is the largest row.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

API = "/api/v1"
KiB, MiB = 1024, 1024**2
FRONT_MATTER_LIMIT = 64 * KiB  # the defaults of registry.config.Settings
HEADER_LIMIT = 1 * MiB
METADATA_LIMIT = 16 * MiB
CONFIG_LIMIT = 1 * MiB
PREFIX = "base_model.model."


def _safetensors(tensors: dict[str, tuple[list[int], bytes]]) -> bytes:
    header: dict[str, Any] = {}
    offset = 0
    for name, (shape, data) in tensors.items():
        header[name] = {
            "dtype": "F32",
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(data for _, data in tensors.values())


def _adapter(modules: list[str], r: int = 8, width: int = 64, **config: Any) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    tensors: dict[str, tuple[list[int], bytes]] = {}
    for module in modules:
        for kind, shape in (("lora_A", [r, width]), ("lora_B", [width, r])):
            data = (rng.standard_normal(shape, dtype=np.float32) * 0.01).tobytes()
            tensors[f"{PREFIX}{module}.{kind}.weight"] = (shape, data)
    settings = {"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "task_type": "CAUSAL_LM"}
    settings["target_modules"] = sorted({m.rsplit(".", 1)[-1] for m in modules})
    settings.update(config)
    return {
        "adapter_config.json": json.dumps(settings).encode(),
        "adapter_model.safetensors": _safetensors(tensors),
    }


_LAYERS = [f"model.layers.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]
_CARD = (
    "---\nlibrary_name: peft\nlicense: apache-2.0\nbase_model: meta-llama/Llama-3.1-8B\n"
    "tags: [lora, sql]\nmodel-index:\n- name: sql-gen\n  results:\n"
    "  - task: {type: text-generation}\n    metrics: [{type: accuracy, value: 0.81}]\n"
    "---\n# sql-gen\n\nA LoRA adapter.\n"
)


def _card(front_matter: str, body: str = "# card\n") -> bytes:
    return f"---\n{front_matter}\n---\n{body}".encode()


def _header_at_limit() -> dict[str, bytes]:
    """The most tensors a valid 1 MiB header holds: rank-1, width-1 factors."""
    count = 1
    while True:
        files = _adapter([f"m.{i}.q" for i in range(count * 2)], r=1, width=1)
        size = struct.unpack("<Q", files["adapter_model.safetensors"][:8])[0]
        if size > HEADER_LIMIT:
            break
        count *= 2
    low, high = count, count * 2
    while high - low > 16:
        middle = (low + high) // 2
        files = _adapter([f"m.{i}.q" for i in range(middle)], r=1, width=1)
        size = struct.unpack("<Q", files["adapter_model.safetensors"][:8])[0]
        low, high = (middle, high) if size <= HEADER_LIMIT else (low, middle)
    return _adapter([f"m.{i}.q" for i in range(low)], r=1, width=1)


def _claimed_header(length: int) -> bytes:
    """A header of exactly ``length`` bytes (metadata padding), and no tensor data."""
    empty = len(json.dumps({"__metadata__": {"pad": ""}}).encode())
    raw = json.dumps({"__metadata__": {"pad": "x" * (length - empty)}}).encode()
    assert len(raw) == length
    return struct.pack("<Q", len(raw)) + raw


def _laughs() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines)


def cases() -> dict[str, tuple[dict[str, bytes], str]]:
    """name -> (files of the push, what it is)."""
    normal = {**_adapter(_LAYERS), "README.md": _CARD.encode()}
    flow = "a: [" + ",".join(["1"] * ((FRONT_MATTER_LIMIT - 8) // 2)) + "]"
    keys = "".join(f"k{i:06d}: 1\n" for i in range(FRONT_MATTER_LIMIT // 11))[:-1]
    modules = [f"model.layers.{i}.mlp.up_proj" for i in range(512)]
    return {
        "normal push": (normal, "a real-sized LoRA adapter (4 modules) and a 0.3 KB card"),
        "card: 64 KiB flow list": (
            {**normal, "README.md": _card(flow)},
            "front matter at the limit, one node per 2 bytes",
        ),
        "card: 64 KiB of keys": (
            {**normal, "README.md": _card(keys)},
            "front matter at the limit, 5958 keys",
        ),
        "card: front matter > limit": (
            {**normal, "README.md": _card("a: " + "x" * FRONT_MATTER_LIMIT)},
            "refused 413",
        ),
        "card: 16 MiB of newlines": (
            {**normal, "README.md": b"---\n" + b"\n" * (METADATA_LIMIT - 8)},
            "unclosed front matter, largest card",
        ),
        "card: 16 MiB body": (
            {**normal, "README.md": _card("license: mit", "x\n" * (METADATA_LIMIT // 2 - 64))},
            "accepted",
        ),
        "card: billion laughs": ({**normal, "README.md": _card(_laughs())}, "refused 422"),
        "header: 1 MiB, max tensors": (_header_at_limit(), "valid, at the limit"),
        "header: 1 MiB + 1": (
            {**normal, "adapter_model.safetensors": _claimed_header(HEADER_LIMIT + 1)},
            "refused after 8 bytes",
        ),
        "header: 84 MiB": (
            {**normal, "adapter_model.safetensors": _claimed_header(84 * MiB)},
            "the review's 49 s case",
        ),
        "config: 1 MiB target_modules": (
            _adapter(
                _LAYERS,
                target_modules=["q_proj", "v_proj"]
                + [f"t{i:07d}" for i in range(CONFIG_LIMIT // 13)],
            ),
            "config at the limit: one set, lookups per module",
        ),
        "config: rank_pattern x modules": (
            _adapter(
                modules, rank_pattern={f"layers\\.{i}\\.mlp\\.down": 4 for i in range(25_000)}
            ),
            "25,000 keys x 512 modules: the pattern budget",
        ),
        "paths: 1000 files, case clash": (
            {**normal, **{f"f{i}.txt": b"x" for i in range(997)}, "F0.TXT": b"y"},
            "refused 422",
        ),
    }


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_hwm(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@contextmanager
def running_server(home: Path) -> Iterator[tuple[str, psutil.Process]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORRY_")}
    env.update(LORRY_HOME=str(home), LORRY_EMBEDDED_WORKER="false")
    with socket_port() as port:
        url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with open(home / "server.log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log_text = (home / "server.log").read_text()
                    raise SystemExit(f"lorry serve failed:\n{log_text}") from None
                time.sleep(0.2)
        yield url, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def socket_port() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    yield port


def _upload(client: httpx.Client, files: dict[str, bytes]) -> list[dict[str, Any]]:
    manifest = []
    for path, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        if client.head(f"{API}/blobs/sha256/{sha}").status_code != 200:
            client.put(f"{API}/blobs/sha256/{sha}", content=data).raise_for_status()
        manifest.append({"path": path, "sha256": sha, "size": len(data)})
    return manifest


def measure(
    server: psutil.Process, post: Callable[..., httpx.Response], url: str, body: dict[str, Any]
) -> dict[str, Any]:
    content = json.dumps(body).encode()  # encoded before the clock starts
    headers = {"Content-Type": "application/json"}
    _reset_hwm(server.pid)
    cpu = server.cpu_times()
    start = time.perf_counter()
    response = post(url, content=content, headers=headers)
    wall = time.perf_counter() - start
    after = server.cpu_times()
    return {
        "status": response.status_code,
        "wall_s": wall,
        "cpu_s": (after.user + after.system) - (cpu.user + cpu.system),
        "peak_rss": _vm_hwm(server.pid),
        "code": response.json().get("code", "") if response.status_code >= 400 else "",
    }


def _recipe(count: int) -> dict[str, Any]:
    inputs = [{"adapter": "bench/normal@1", "weight": 1 / count}] * count
    return {"method": "linear", "inputs": inputs, "output": {"rank": 8}, "device": "cpu"}


def main() -> None:
    results: dict[str, tuple[dict[str, Any], str]] = {}
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as (url, server):
        with httpx.Client(base_url=url, timeout=600) as client:
            for number, (name, (files, note)) in enumerate(cases().items()):
                manifest = _upload(client, files)
                repo = "bench/normal" if number == 0 else f"bench/case-{number}"
                url = f"{API}/repos/{repo}/versions"
                results[name] = (measure(server, client.post, url, {"files": manifest}), note)
            # torch and mergekit load with the first composition: not part of what is measured
            warm = {"recipe": _recipe(1), "target": "bench/warm-up"}
            assert client.post(f"{API}/compositions", json=warm).status_code == 202
            for count, note in ((64, "at the limit: resolved, job queued"), (10_000, "refused")):
                recipe = {"recipe": _recipe(count), "target": f"bench/merged-{count}"}
                results[f"recipe: {count} inputs"] = (
                    measure(server, client.post, f"{API}/compositions", recipe),
                    note,
                )
    base = results["normal push"][0]
    print(f"{'case':32} {'status':>6} {'wall s':>8} {'cpu s':>7} {'x normal':>8} {'peak RSS':>9}")
    for name, (result, note) in results.items():
        ratio = result["cpu_s"] / base["cpu_s"] if base["cpu_s"] else float("nan")
        print(
            f"{name:32} {result['status']:>6} {result['wall_s']:>8.3f} {result['cpu_s']:>7.3f} "
            f"{ratio:>8.1f} {result['peak_rss'] / MiB:>6.0f} MB  {result['code'] or note}"
        )
    worst = max(results.items(), key=lambda item: item[1][0]["cpu_s"])
    print(
        f"worst case: {worst[0]}: {worst[1][0]['cpu_s']:.2f} s of server CPU, "
        f"peak RSS {max(r['peak_rss'] for r, _ in results.values()) / MiB:.0f} MB"
    )


if __name__ == "__main__":
    main()
