"""Read load on a real ``lorry serve``: alias resolution, HF revision lookups and downloads
at 50 concurrent clients, side by side with ``/healthz`` in the same run.

    python bench/load.py [--clients 50] [--duration 6] [--baseline-code DIR] [--workers N]
                         [--database-url postgresql+psycopg://...]

One run, loopback only, bounded: each scenario runs ``--duration`` seconds (after a one
second warm-up) and at most ``--max-requests`` requests. The server is ``python -m
cli.main serve`` of ``--code`` (default: this checkout) on a fresh ``LORRY_HOME``
(SQLite + blob directory, unless ``--database-url`` names a PostgreSQL database, which
is migrated and must be empty), with tokens on: the clients send a read token limited to
the benchmark's namespace, so every request pays the auth check.

The clients are ``--processes`` separate processes (default 2), each an asyncio loop
with its share of the keep-alive connections, speaking HTTP/1.1 through a small client
of their own (no httpx per request), so that the load generator spends little of the
CPU that it shares with the server.

Scenarios (each request is one of):

- ``healthz``: ``GET /healthz``, the floor: no database, no auth;
- ``alias``: ``GET /api/v1/repos/bench/lora/aliases/production``;
- ``version``: ``GET /api/v1/repos/bench/lora/versions/production`` (the version an
  alias points to, with its files and metadata);
- ``hf-revision``: ``GET /api/models/bench/lora/revision/production``, what
  huggingface_hub asks first;
- ``download``: ``GET /bench/lora/resolve/production/adapter_model.safetensors``, the
  file itself through the Hub route (a small adapter, so the request cost dominates).

It prints, per scenario, requests per second, p50 and p99 latency, the ratio of its
throughput to ``/healthz`` and errors; with ``--baseline-code DIR`` it first runs the
same scenarios against the server of that checkout (e.g. the previous release) and
prints after/before ratios. Targets (issue 14): alias resolution and HF revision
lookup at 50 clients >= 4x the baseline's throughput with p99 < 250 ms; downloads >= 5x.
bench/README-load.md has results.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE, NAME = "bench", "lora"
REPO = f"{NAMESPACE}/{NAME}"
SCENARIOS: dict[str, str] = {
    "healthz": "/healthz",
    "alias": f"/api/v1/repos/{REPO}/aliases/production",
    "version": f"/api/v1/repos/{REPO}/versions/production",
    "hf-revision": f"/api/models/{REPO}/revision/production",
    "download": f"/{REPO}/resolve/production/adapter_model.safetensors",
}
TARGETS = {"alias": 4.0, "hf-revision": 4.0, "download": 5.0}
TARGET_P99_MS = {"alias": 250.0, "hf-revision": 250.0}


# --- the adapter ----------------------------------------------------------------------


def adapter_files(hidden: int = 64, rank: int = 8, layers: int = 2) -> dict[str, bytes]:
    """A small valid PEFT LoRA adapter (q/v projections of a 2-layer, 64-wide model)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    tensors: list[bytes] = []
    for layer in range(layers):
        for module in ("q_proj", "v_proj"):
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            for part, shape in (("lora_A", [rank, hidden]), ("lora_B", [hidden, rank])):
                count = shape[0] * shape[1]
                data = struct.pack(f"<{count}f", *((i % 7) * 0.01 for i in range(count)))
                header[f"{prefix}.{part}.weight"] = {
                    "dtype": "F32",
                    "shape": shape,
                    "data_offsets": [offset, offset + len(data)],
                }
                offset += len(data)
                tensors.append(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    weights = struct.pack("<Q", len(encoded)) + encoded + b"".join(tensors)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": 2 * rank,
        "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": "bench/tiny-llama",
        "bias": "none",
    }
    return {
        "adapter_config.json": json.dumps(config).encode(),
        "adapter_model.safetensors": weights,
    }


# --- the server -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    token: str
    log: Path

    def cpu_seconds(self) -> float:
        """CPU time of the server and its worker processes so far."""
        try:
            parent = psutil.Process(self.process.pid)
            total = 0.0
            for proc in [parent, *parent.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
            return total
        except psutil.NoSuchProcess:
            return 0.0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)


def _env(code: Path, home: Path, database_url: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(code), "LORRY_HOME": str(home)}
    env.pop("LORRY_TOKEN", None)
    if database_url:
        env["LORRY_DATABASE_URL"] = database_url
    else:
        env.pop("LORRY_DATABASE_URL", None)
    return env


def start_server(code: Path, home: Path, database_url: str | None, workers: int | None) -> Server:
    env = _env(code, home, database_url)
    cli = [sys.executable, "-m", "cli.main"]
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True, cwd=code)
    created = subprocess.run(
        [*cli, "token", "create", "--admin", "--principal", "bench", "--json"],
        env=env,
        capture_output=True,
        cwd=code,
    )
    if created.returncode != 0:
        raise RuntimeError(f"lorry token create failed: {created.stderr.decode()[-2000:]}")
    admin = json.loads(created.stdout)["token"]
    port = _free_port()
    log = home / "server.log"
    command = [*cli, "serve", "--port", str(port)]
    if workers:
        command += ["--workers", str(workers)]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=code)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("the server did not become ready within 60 s")
    return Server(process, url, port, admin, log)


def seed(server: Server) -> str:
    """Push the adapter, point ``production`` at it, and make a read token for the clients."""
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        manifest = []
        for path, data in adapter_files().items():
            sha = hashlib.sha256(data).hexdigest()
            http.put(f"/api/v1/blobs/sha256/{sha}", content=data).raise_for_status()
            manifest.append({"path": path, "sha256": sha, "size": len(data)})
        http.post(f"/api/v1/repos/{REPO}/versions", json={"files": manifest}).raise_for_status()
        http.put(
            f"/api/v1/repos/{REPO}/aliases/production", json={"version": 1, "reason": "bench"}
        ).raise_for_status()
        created = http.post(
            "/api/v1/tokens",
            json={"principal": "bench-reader", "scopes": ["read"], "namespaces": [NAMESPACE]},
        )
        created.raise_for_status()
        token: str = created.json()["token"]
        for path in SCENARIOS.values():
            response = http.get(path, headers={"Authorization": f"Bearer {token}"})
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text}")
    return token


# --- the clients ----------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _connection(
    port: int, request: bytes, start: float, stop: float, budget: list[int]
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop and budget[0] > 0:
            budget[0] -= 1
            sent = time.perf_counter()
            writer.write(request)
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            done = time.perf_counter()
            if sent >= start:
                if status == 200:
                    latencies.append(done - sent)
                else:
                    errors += 1
    finally:
        writer.close()
    return latencies, errors


def _client_process(
    port: int,
    path: str,
    token: str,
    connections: int,
    start: float,
    stop: float,
    max_requests: int,
    results: Any,
) -> None:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: lorry-bench-load\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()

    async def main() -> tuple[list[float], int]:
        budget = [max_requests]
        runs = await asyncio.gather(
            *(_connection(port, request, start, stop, budget) for _ in range(connections))
        )
        return [lat for lats, _ in runs for lat in lats], sum(errors for _, errors in runs)

    results.put(asyncio.run(main()))


@dataclass
class Result:
    scenario: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_scenario(server: Server, token: str, scenario: str, args: argparse.Namespace) -> Result:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    warmup = 1.0
    start = time.perf_counter() + 1.5 + warmup  # spawn time, then the warm-up
    stop = start + args.duration
    shares = [
        args.clients // args.processes + (1 if i < args.clients % args.processes else 0)
        for i in range(args.processes)
    ]
    procs = [
        context.Process(
            target=_client_process,
            args=(
                server.port,
                SCENARIOS[scenario],
                token,
                share,
                start,
                stop,
                args.max_requests // args.processes,
                results,
            ),
        )
        for share in shares
        if share
    ]
    for proc in procs:
        proc.start()
    while time.perf_counter() < start:
        time.sleep(0.01)
    cpu_before = server.cpu_seconds()
    latencies: list[float] = []
    errors = 0
    for _ in procs:
        lats, errs = results.get(timeout=args.duration + 120)
        latencies += lats
        errors += errs
    cpu_after = server.cpu_seconds()
    for proc in procs:
        proc.join(timeout=30)
    seconds = min(time.perf_counter(), stop) - start
    return Result(
        scenario=scenario,
        requests=len(latencies),
        errors=errors,
        seconds=seconds,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        server_cpu_ms=(cpu_after - cpu_before) * 1000 / max(len(latencies), 1),
    )


def bench(code: Path, args: argparse.Namespace, label: str) -> dict[str, Result]:
    with tempfile.TemporaryDirectory(prefix="lorry-bench-load-") as tmp:
        server = start_server(code, Path(tmp) / "home", args.database_url, args.workers)
        try:
            token = seed(server)
            results: dict[str, Result] = {}
            for scenario in args.scenarios:
                results[scenario] = run_scenario(server, token, scenario, args)
                print(_line(label, results[scenario], results.get("healthz")), flush=True)
            return results
        finally:
            server.stop()


def _line(label: str, result: Result, healthz: Result | None) -> str:
    ratio = f"{result.rate / healthz.rate:5.2f}" if healthz and healthz.rate else "    -"
    return (
        f"{label:<9} {result.scenario:<12} {result.rate:8.1f} req/s  p50 {result.p50_ms:7.1f} ms  "
        f"p99 {result.p99_ms:7.1f} ms  /healthz {ratio}  cpu/req {result.server_cpu_ms:5.1f} ms"
        f"  errors {result.errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per scenario")
    parser.add_argument("--max-requests", type=int, default=200_000, help="cap per scenario")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose server to run")
    parser.add_argument("--baseline-code", type=Path, default=None, help="run this one first")
    parser.add_argument("--workers", type=int, default=None, help="lorry serve --workers N")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    args = parser.parse_args()
    if "healthz" in args.scenarios:
        args.scenarios.remove("healthz")
    args.scenarios.insert(0, "healthz")
    if args.database_url and args.baseline_code:
        parser.error("--database-url takes one empty database: run the two checkouts apart")
    print(
        f"{args.clients} clients in {args.processes} processes, {args.duration:g} s per "
        f"scenario, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    before = bench(args.baseline_code, args, "baseline") if args.baseline_code else None
    after = bench(args.code, args, "this")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if before is None:
        return
    print("\nafter / before (throughput; target in brackets), p99 after:")
    for scenario, result in after.items():
        old = before[scenario]
        gain = result.rate / old.rate if old.rate else float("nan")
        target = TARGETS.get(scenario)
        p99_target = TARGET_P99_MS.get(scenario)
        verdict = ""
        if target is not None:
            met = gain >= target and (p99_target is None or result.p99_ms < p99_target)
            verdict = f"[>= {target:g}x" + (f", p99 < {p99_target:g} ms" if p99_target else "")
            verdict += f"] {'met' if met else 'NOT met'}"
        print(
            f"  {scenario:<12} {old.rate:8.1f} -> {result.rate:8.1f} req/s  {gain:5.2f}x  "
            f"p99 {old.p99_ms:7.1f} -> {result.p99_ms:7.1f} ms  {verdict}"
        )


if __name__ == "__main__":
    main()
