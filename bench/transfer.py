"""Push and pull of a large adapter through a real ``lorry serve``, beside a plain file copy.

    python bench/transfer.py [--size-mib 1024]

One run, one machine, the local backend (SQLite + blob directory in a temporary
``LORRY_HOME``). It writes a valid LoRA adapter (adapter_config.json and an
adapter_model.safetensors of about ``--size-mib`` MiB: r=256 lora_A/lora_B pairs on
q/k/v/o of 4096-wide layers, float32), flushes dirty pages and reads it
before each contender, so that each starts from a warm page cache and no pending
writeback (dropping the cache needs root), then times:

- copy: ``shutil.copyfile`` of the safetensors file to another path on the same disk
  (an in-kernel copy on Linux);
- two references that bound any verified transfer: one sha256 pass over the file, and
  a copy that computes sha256 on the way (``cli.digests.HashingWriter``);
- push: ``lorry push`` through the CLI's client API (hash, HEAD, streamed PUT, commit);
- pull: ``lorry pull`` of that version into an empty directory (streamed, verified).

The writers (copy, copy + sha256, push then pull) take turns going first in a round:
on a VM that hands freed memory back to its host, the first GiB written in a round is
much cheaper than the next ones (bench/README-transfer.md).

It prints each throughput, the ratios push/copy and pull/copy (target >= 0.7), the
same against copy + sha256, the bound that sha256 alone puts on a verified transfer
(push hashes every byte twice in sequence, pull once) and how close each gets to it,
the CPU seconds per GiB that client and server spent, and the server process's peak
resident memory while moving the data (target < 300 MB). bench/README-transfer.md
has results and what bounds them.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cli.client import LorryClient  # noqa: E402
from cli.digests import HashingWriter  # noqa: E402
from cli.transfer import pull_version, push_directory  # noqa: E402
from composer.fileio import READ_BUFFER, sha256_file  # noqa: E402

MiB = 1024 * 1024
HIDDEN = 4096
RANK = 256
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
TARGET_RATIO = 0.7
TARGET_RSS_MB = 300.0
SHA256_PASSES = {
    "push": "the client hashes the file to name the blob before sending it, then the "
    "server hashes what it receives: two passes in sequence",
    "pull": "the client hashes what it receives: one pass",
}


def write_adapter(directory: Path, size_mib: int, seed: int = 0) -> Path:
    """A PEFT-shaped LoRA adapter of about ``size_mib`` MiB, written tensor by tensor."""
    directory.mkdir(parents=True)
    pair_bytes = 2 * RANK * HIDDEN * 4
    layers = max(1, round(size_mib * MiB / (pair_bytes * len(MODULES))))
    names: list[tuple[str, list[int]]] = []
    for layer in range(layers):
        for module in MODULES:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            names.append((f"{prefix}.lora_A.weight", [RANK, HIDDEN]))
            names.append((f"{prefix}.lora_B.weight", [HIDDEN, RANK]))
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in names:
        nbytes = shape[0] * shape[1] * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    rng = np.random.default_rng(seed)
    weights = directory / "adapter_model.safetensors"
    with open(weights, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for _, shape in names:
            tensor = rng.standard_normal(size=tuple(shape), dtype=np.float32) * 0.01
            handle.write(tensor.tobytes())
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": RANK,
        "lora_alpha": 2 * RANK,
        "lora_dropout": 0.0,
        "target_modules": list(MODULES),
        "base_model_name_or_path": "bench/llama-like-4096",
        "bias": "none",
        "use_rslora": False,
    }
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return weights


def _lorry_command() -> list[str]:
    executable = Path(sys.executable).with_name("lorry")
    return [str(executable)] if executable.exists() else [sys.executable, "-m", "cli.main"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"lorry serve exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("lorry serve did not become healthy in 60 s")


@contextmanager
def running_server(
    home: Path, settings: dict[str, str] | None = None
) -> Iterator[tuple[str, psutil.Process]]:
    """``lorry serve`` on its embedded defaults under ``home`` (it migrates SQLite itself),
    with the ``LORRY_*`` variables of ``settings`` only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORRY_")}
    env.update(settings or {})
    env["LORRY_HOME"] = str(home)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*_lorry_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with open(home / "server.log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(url, process, home / "server.log")
        yield url, psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


class ServerMonitor:
    """Samples the resident memory of a process and its children in a thread, and
    counts the CPU seconds they use while the block runs."""

    def __init__(self, process: psutil.Process, interval_s: float = 0.02) -> None:
        self.process = process
        self.processes = [process, *process.children(recursive=True)]
        self.interval_s = interval_s
        self.peak = 0
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = 0
        for proc in self.processes:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _cpu(self) -> float:
        total = 0.0
        for proc in self.processes:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval_s)

    def __enter__(self) -> ServerMonitor:
        self.peak = self.rss()
        self._cpu_start = self._cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
        self.cpu_s = self._cpu() - self._cpu_start


def _vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _settle(path: Path) -> None:
    """Flush dirty pages (so no contender pays for another's writeback), then read
    ``path`` once so that it is in the page cache."""
    os.sync()
    with open(path, "rb", buffering=0) as handle:
        while handle.read(8 * MiB):
            pass


OPERATIONS = {
    "copy": "copy (shutil.copyfile)",
    "sha256": "sha256 of the file (reference)",
    "hashed_copy": "copy + sha256 (reference)",
    "push": "lorry push",
    "pull": "lorry pull",
}


@dataclass
class Round:
    seconds: dict[str, float]
    cpu_s: dict[str, float]
    push_phases_s: dict[str, float]
    pull_phases_s: dict[str, float]
    server_peak_rss: dict[str, int]
    pulled_identical: bool


@dataclass
class BenchResult:
    file_bytes: int
    version_bytes: int
    rounds: list[Round]
    server_rss_idle: int
    server_vm_hwm: int | None

    def seconds(self, name: str) -> float:
        return statistics.median(r.seconds[name] for r in self.rounds)

    def mib_per_s(self, name: str) -> float:
        size = self.version_bytes if name in ("push", "pull") else self.file_bytes
        return size / MiB / self.seconds(name)

    def ratio(self, name: str, baseline: str = "copy") -> float:
        return self.mib_per_s(name) / self.mib_per_s(baseline)

    def cpu_per_gib(self, key: str) -> float:
        gib = self.version_bytes / (1024 * MiB)
        return statistics.median(r.cpu_s[key] for r in self.rounds) / gib

    def peak_rss(self, phase: str) -> int:
        return max(r.server_peak_rss[phase] for r in self.rounds)

    def bound_mib_per_s(self, name: str) -> float:
        """The most a verified transfer could reach here: sha256 over every byte as many
        times, one after the other, as ``SHA256_PASSES`` says, and nothing else."""
        return self.mib_per_s("sha256") / (2 if name == "push" else 1)

    def as_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "median_mib_per_s": {name: self.mib_per_s(name) for name in OPERATIONS},
            "push_over_copy": self.ratio("push"),
            "pull_over_copy": self.ratio("pull"),
            "push_over_hashed_copy": self.ratio("push", "hashed_copy"),
            "pull_over_hashed_copy": self.ratio("pull", "hashed_copy"),
            "bound_mib_per_s": {name: self.bound_mib_per_s(name) for name in ("push", "pull")},
        }


@contextmanager
def _timed(seconds: dict[str, float], name: str, weights: Path) -> Iterator[None]:
    _settle(weights)
    started = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - started


def _one_round(
    base: Path, size_mib: int, number: int, url: str, server: psutil.Process
) -> tuple[Round, int, int]:
    work = base / f"round-{number}"
    adapter = work / "adapter"
    # A new seed per round: every push uploads new bytes instead of hitting dedup.
    weights = write_adapter(adapter, size_mib, seed=number)
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    peaks: dict[str, int] = {}
    timings: dict[str, dict[str, float]] = {}
    with _timed(seconds, "sha256", weights):
        sha256_file(weights)

    def copy() -> None:
        with _timed(seconds, "copy", weights):
            shutil.copyfile(weights, work / "copy.safetensors")

    def hashed_copy() -> None:
        with _timed(seconds, "hashed_copy", weights):
            _hashed_copy(weights, work / "hashed-copy.safetensors")

    def transfer() -> None:
        repository = f"bench/adapter-{number}"
        with LorryClient(url) as client:
            _settle(weights)
            with ServerMonitor(server) as monitor:
                started, cpu_started = time.perf_counter(), time.process_time()
                pushed = push_directory(client, adapter, repository, message="bench")
                seconds["push"] = time.perf_counter() - started
                cpu["push_client"] = time.process_time() - cpu_started
            cpu["push_server"], peaks["push"] = monitor.cpu_s, monitor.peak
            _settle(weights)
            with ServerMonitor(server) as monitor:
                started, cpu_started = time.perf_counter(), time.process_time()
                pulled = pull_version(client, repository, "1", work / "pulled")
                seconds["pull"] = time.perf_counter() - started
                cpu["pull_client"] = time.process_time() - cpu_started
            cpu["pull_server"], peaks["pull"] = monitor.cpu_s, monitor.peak
        timings["push"], timings["pull"] = pushed.timings, pulled.timings

    # Each round starts with another writer. On a VM whose freed memory goes back to the
    # host (virtio-balloon free page reporting), the first GiB written after a round's
    # cleanup lands on warm pages and later ones on cold pages, several times slower to
    # fill; the writer that always went first (the copy) was always the fast one.
    steps = [copy, hashed_copy, transfer]
    for step in steps[number % 3 :] + steps[: number % 3]:
        step()
    identical = _same_bytes(weights, work / "pulled" / weights.name)
    file_bytes = weights.stat().st_size
    version_bytes = sum(path.stat().st_size for path in adapter.iterdir())
    shutil.rmtree(work)
    result = Round(seconds, cpu, timings["push"], timings["pull"], peaks, identical)
    return result, file_bytes, version_bytes


def run(size_mib: int, rounds: int, workdir: Path | None) -> BenchResult:
    with tempfile.TemporaryDirectory(prefix="lorry-bench-", dir=workdir) as tmp:
        base = Path(tmp)
        (base / "home").mkdir()
        with running_server(base / "home") as (url, server):
            idle = ServerMonitor(server).rss()
            done = [_one_round(base, size_mib, number, url, server) for number in range(rounds)]
            hwm = _vm_hwm(server.pid)
    _, file_bytes, version_bytes = done[0]
    return BenchResult(file_bytes, version_bytes, [r for r, _, _ in done], idle, hwm)


def _hashed_copy(source: Path, target: Path) -> str:
    """Copy while computing sha256: the least work of any verified transfer."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    writer = HashingWriter(fd)
    try:
        with open(source, "rb", buffering=0) as handle:
            while chunk := handle.read(READ_BUFFER):
                writer.write(chunk)
        return writer.close()
    finally:
        os.close(fd)


def _same_bytes(left: Path, right: Path) -> bool:
    return left.stat().st_size == right.stat().st_size and filecmp.cmp(left, right, shallow=False)


def _phases(rounds: list[dict[str, float]]) -> str:
    keys = rounds[0].keys()
    medians = {key: statistics.median(r[key] for r in rounds) for key in keys}
    return ", ".join(f"{key.removesuffix('_s')} {value:.2f} s" for key, value in medians.items())


def report(result: BenchResult) -> None:
    count = len(result.rounds)
    print(
        f"file: {result.file_bytes / MiB:.0f} MiB safetensors; {count} rounds, medians "
        "(min-max MiB/s); warm page cache, dirty pages flushed before each operation; "
        "each round starts with another writer (copy, copy + sha256, push and pull)"
    )
    for name, label in OPERATIONS.items():
        size = result.version_bytes if name in ("push", "pull") else result.file_bytes
        speeds = sorted(size / MiB / r.seconds[name] for r in result.rounds)
        print(
            f"  {label:<31} {result.seconds(name):6.2f} s  {result.mib_per_s(name):7.1f} MiB/s"
            f"  ({speeds[0]:.0f}-{speeds[-1]:.0f})"
        )
    for name in ("push", "pull"):
        ratio = result.ratio(name)
        verdict = "ok" if ratio >= TARGET_RATIO else "below target"
        print(
            f"  {name}/copy = {ratio:.2f}  (target >= {TARGET_RATIO}: {verdict}); "
            f"{name}/(copy + sha256) = {result.ratio(name, 'hashed_copy'):.2f}"
        )
    copy = result.mib_per_s("copy")
    for name in ("push", "pull"):
        bound = result.bound_mib_per_s(name)
        print(
            f"  {name} bound from sha256 alone: {bound:.0f} MiB/s = {bound / copy:.2f} of copy "
            f"({SHA256_PASSES[name]}); {name} reaches {result.mib_per_s(name) / bound:.2f} of it"
        )
    for name in ("push", "pull"):
        print(
            f"  {name} CPU: client {result.cpu_per_gib(f'{name}_client'):.2f} s/GiB, "
            f"server {result.cpu_per_gib(f'{name}_server'):.2f} s/GiB"
        )
    print(f"  push phases: {_phases([r.push_phases_s for r in result.rounds])}")
    print(f"  pull phases: {_phases([r.pull_phases_s for r in result.rounds])}")
    push_peak, pull_peak = result.peak_rss("push") / 1e6, result.peak_rss("pull") / 1e6
    verdict = "ok" if max(push_peak, pull_peak) < TARGET_RSS_MB else "above target"
    hwm = "n/a" if result.server_vm_hwm is None else f"{result.server_vm_hwm / 1e6:.0f} MB"
    print(
        f"server RSS: idle {result.server_rss_idle / 1e6:.0f} MB, peak during push "
        f"{push_peak:.0f} MB, during pull {pull_peak:.0f} MB (target < {TARGET_RSS_MB:.0f} MB: "
        f"{verdict}); VmHWM over the server's life {hwm}"
    )
    identical = all(r.pulled_identical for r in result.rounds)
    print(f"pulled files byte-identical: {identical}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="adapter size (default 1024)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temp files go")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    result = run(args.size_mib, args.rounds, args.workdir)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        report(result)


if __name__ == "__main__":
    main()
