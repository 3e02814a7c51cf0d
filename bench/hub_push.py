"""Push of a 1 GiB adapter through the Hub write API (``HfApi.upload_folder``), each path
Lorry serves, beside ``lorry push`` and a plain copy, in one run.

    python bench/hub_push.py [--size-mib 1024] [--rounds 1] [--only NAME,...] [--json]
        [--py-spy DIR]

It writes a valid LoRA adapter (``bench/transfer.py``'s ``write_adapter``: an
adapter_model.safetensors of about ``--size-mib`` MiB), then, per round, times:

- copy: ``shutil.copyfile`` of the safetensors file (an in-kernel copy on Linux);
- lorry push: ``lorry push``'s client code (hash, HEAD, streamed PUT, commit);
- hub xet: ``upload_folder`` with hf_xet installed and active, the default client: the
  file goes through Lorry's Xet routes (xorbs, a shard, then the commit names it);
- hub regular (xet): the same client against a server with ``LORRY_HUB_XET=false``: Lorry
  answers ``"regular"``, the file travels base64 in the NDJSON commit;
- hub regular (no xet): the same with ``HF_HUB_DISABLE_XET=1`` (``create_commit``'s path);
- hub lfs multipart: ``HF_HUB_DISABLE_XET=1``: the file goes through the Git LFS batch
  API in 64 MiB parts (the server's default);
- hub lfs basic: the same against a server whose ``LORRY_LFS_PART_BYTES`` exceeds the
  file, so that it is one streamed ``PUT``.

Every contender pushes to a fresh ``lorry serve`` (SQLite + blob directory in its own
``LORRY_HOME``, so nothing is deduplicated) started before its clock starts; each
client runs in its own process (huggingface_hub reads its switches at import) and
times only the push itself. After each push the bench checks that the version holds
the file under its sha256. It prints throughputs, the ratio of each Hub path to
``lorry push`` (target >= 0.8), the server's peak resident memory while receiving
(target < 300 MB) and the client's peak resident memory, and the CPU seconds per GiB
that the server (user + system, from the client's start to its end) and the client (the
push alone) spent: on a shared machine the wall-clock figures move with the load, the
CPU seconds much less. ``--only`` runs some contenders (``lorry push`` always, the
base of the ratios); ``--py-spy DIR`` records the server of each Hub contender with
py-spy (when it is on PATH) into ``DIR/<contender>.txt`` (collapsed stacks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
for entry in (str(ROOT), str(ROOT / "bench")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from transfer import ServerMonitor, _settle, running_server, write_adapter  # noqa: E402

MiB = 1024 * 1024
TARGET_RATIO = 0.8
TARGET_RSS_MB = 300.0
REPO = "bench/hub-push"

CONTENDERS: dict[str, dict[str, str]] = {
    "lorry push": {},
    "hub xet": {},
    "hub regular (xet)": {},
    "hub regular (no xet)": {"HF_HUB_DISABLE_XET": "1"},
    "hub lfs multipart": {"HF_HUB_DISABLE_XET": "1"},
    "hub lfs basic": {"HF_HUB_DISABLE_XET": "1"},
}
SERVER_ENV: dict[str, dict[str, str]] = {
    "hub regular (xet)": {"LORRY_HUB_XET": "false"},
    "hub regular (no xet)": {"LORRY_HUB_XET": "false"},
    "hub lfs basic": {"LORRY_LFS_PART_BYTES": str(64 * 1024 * MiB)},
}


def _client(mode: str, url: str, directory: Path) -> dict[str, float]:
    """One push, in this (fresh) process: seconds, CPU seconds and peak RSS."""
    if mode == "lorry push":
        from cli.client import LorryClient
        from cli.transfer import push_directory

        with LorryClient(url) as client:
            started, cpu = time.perf_counter(), _cpu_s()
            push_directory(client, directory, REPO)
            seconds, cpu = time.perf_counter() - started, _cpu_s() - cpu
    else:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=url, token=False)
        api.create_repo(REPO, exist_ok=True)
        started, cpu = time.perf_counter(), _cpu_s()
        api.upload_folder(repo_id=REPO, folder_path=directory, commit_message="bench")
        seconds, cpu = time.perf_counter() - started, _cpu_s() - cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "client_cpu_s": cpu, "client_peak_rss": peak_kib * 1024}


def _cpu_s() -> float:
    """User + system seconds of this process (every thread) and its waited-for children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@dataclass
class Result:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    server_peak_rss: dict[str, int] = field(default_factory=dict)
    client_peak_rss: dict[str, int] = field(default_factory=dict)
    server_cpu_s: dict[str, list[float]] = field(default_factory=dict)
    client_cpu_s: dict[str, list[float]] = field(default_factory=dict)
    server_rss_idle: int = 0

    def add(
        self,
        name: str,
        seconds: float,
        server_rss: int,
        client_rss: int,
        cpu_s: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        """One push: wall seconds, peak RSS of server and client, and their CPU seconds."""
        self.seconds.setdefault(name, []).append(seconds)
        self.server_peak_rss[name] = max(self.server_peak_rss.get(name, 0), server_rss)
        self.client_peak_rss[name] = max(self.client_peak_rss.get(name, 0), client_rss)
        self.server_cpu_s.setdefault(name, []).append(cpu_s[0])
        self.client_cpu_s.setdefault(name, []).append(cpu_s[1])

    def mib_per_s(self, name: str, size: int) -> float:
        return size / MiB / statistics.median(self.seconds[name])

    def cpu_s_per_gib(self, name: str, size: int) -> tuple[float, float]:
        """Median CPU seconds per GiB pushed: the server's, the client's."""
        per_gib = 1024 * MiB / size
        return (
            statistics.median(self.server_cpu_s[name]) * per_gib,
            statistics.median(self.client_cpu_s[name]) * per_gib,
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _push(
    name: str, adapter: Path, weights_sha: str, work: Path, result: Result, py_spy: Path | None
) -> None:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    try:
        with running_server(home, SERVER_ENV.get(name)) as (url, process):
            env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
            env.update({"HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
            env.update({"HF_HOME": str(home / "hf"), "PYTHONPATH": str(ROOT)})
            env.update(CONTENDERS[name])
            command = [sys.executable, __file__, "--client", name, "--url", url, str(adapter)]
            _settle(adapter / "adapter_model.safetensors")
            idle = process.memory_info().rss
            with _profiled(process.pid, name, py_spy), ServerMonitor(process) as monitor:
                done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stdout}\n{done.stderr}")
            client = json.loads(done.stdout.strip().splitlines()[-1])
            files = httpx.get(f"{url}/api/v1/repos/{REPO}/versions/latest", timeout=60).json()
            stored = {entry["path"]: entry["sha256"] for entry in files["files"]}
            if stored.get("adapter_model.safetensors") != weights_sha:
                raise SystemExit(f"{name}: the version does not hold the pushed weights")
            result.server_rss_idle = max(result.server_rss_idle, idle)
            cpu = (monitor.cpu_s, client["client_cpu_s"])
            result.add(name, client["seconds"], monitor.peak, int(client["client_peak_rss"]), cpu)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def _profiled(pid: int, name: str, directory: Path | None) -> Iterator[None]:
    """py-spy recording process ``pid`` while the block runs, for a Hub contender."""
    spy = shutil.which("py-spy")
    if directory is None or spy is None or not name.startswith("hub"):
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{name.replace(' ', '-').replace('(', '').replace(')', '')}.txt"
    command = [spy, "record", "--pid", str(pid), "--threads", "--idle", "--nonblocking"]
    command += ["--format", "raw", "--rate", "50", "--output", str(out)]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the clock starts
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)


def run(
    size_mib: int,
    rounds: int,
    workdir: Path | None,
    only: list[str] | None = None,
    py_spy: Path | None = None,
) -> tuple[Result, int]:
    work = Path(tempfile.mkdtemp(prefix="lorry-hub-bench-", dir=workdir))
    try:
        adapter = work / "adapter"
        weights = write_adapter(adapter, size_mib)
        size = weights.stat().st_size
        weights_sha = _sha256(weights)
        result = Result()
        for _ in range(rounds):
            target = work / "copy.safetensors"
            _settle(weights)
            started = time.perf_counter()
            shutil.copyfile(weights, target)
            result.add("copy", time.perf_counter() - started, 0, 0)
            target.unlink()
            for name in CONTENDERS:
                if only is None or name in only or name == "lorry push":
                    _push(name, adapter, weights_sha, work, result, py_spy)
        return result, size
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(result: Result, size: int) -> None:
    base = result.mib_per_s("lorry push", size)
    copy = result.mib_per_s("copy", size)
    print(f"file: {size / MiB:.0f} MiB, rounds: {len(result.seconds['copy'])}")
    columns = ("MiB/s", 8), ("/copy", 6), ("/push", 6), ("server RSS", 11), ("client RSS", 11)
    columns += ("server CPU s/GiB", 17), ("client CPU s/GiB", 17)
    print(f"{'contender':<22} " + " ".join(f"{title:>{width}}" for title, width in columns))
    for name in result.seconds:
        speed = result.mib_per_s(name, size)
        server = result.server_peak_rss[name] / 1e6
        client = result.client_peak_rss[name] / 1e6
        line = (
            f"{name:<22} {speed:8.0f} {speed / copy:6.2f} {speed / base:6.2f} "
            f"{server:9.0f}MB {client:9.0f}MB"
        )
        if name != "copy":
            server_cpu, client_cpu = result.cpu_s_per_gib(name, size)
            line += f" {server_cpu:17.2f} {client_cpu:17.2f}"
        print(line)
    print(f"server idle RSS: {result.server_rss_idle / 1e6:.0f} MB")
    for name in CONTENDERS:
        if not name.startswith("hub") or name not in result.seconds:
            continue
        ratio = result.mib_per_s(name, size) / base
        rss = result.server_peak_rss[name] / 1e6
        verdict = "ok" if ratio >= TARGET_RATIO and rss < TARGET_RSS_MB else "MISSES TARGET"
        print(
            f"{name}: {ratio:.2f} of lorry push (target >= {TARGET_RATIO}), server peak "
            f"{rss:.0f} MB (target < {TARGET_RSS_MB:.0f}): {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", help="comma-separated contenders (lorry push always runs)")
    parser.add_argument("--py-spy", type=Path, help="record each Hub server with py-spy here")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("directory", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(_client(args.client, args.url, args.directory)))
        return
    only = None if args.only is None else [name.strip() for name in args.only.split(",")]
    unknown = sorted(set(only or []) - set(CONTENDERS))
    if unknown:
        parser.error(f"unknown contender(s) {unknown}; choose from {sorted(CONTENDERS)}")
    result, size = run(args.size_mib, args.rounds, args.workdir, only, args.py_spy)
    if args.json:
        speeds = {name: result.mib_per_s(name, size) for name in result.seconds}
        print(json.dumps({"file_bytes": size, "mib_per_s": speeds, **result.__dict__}))
        return
    report(result, size)


if __name__ == "__main__":
    main()
