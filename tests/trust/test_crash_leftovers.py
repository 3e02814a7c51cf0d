"""Crashes leave nothing behind: the spool files of uploads and the work directories of jobs
that a ``kill -9`` interrupted are reclaimed (at start, by the job sweep, by ``lorry gc``),
never one that a live upload or job still uses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from registry import db
from registry.config import Settings
from registry.storage import scratch
from tests.support.files import sha256_of
from tests.support.processes import LORRY, REPO_ROOT, free_port, lorry_process, settings_env
from tests.support.rest import API, push_ok

_HOLDER = """
import sys, time
from pathlib import Path
from registry.storage.scratch import new_file, scratch_directory
fd, path, lock = new_file(Path(sys.argv[1]), "upload-", ".part")
with scratch_directory(Path(sys.argv[1]), "job-held-") as work:
    (work / "out.bin").write_bytes(b"x" * 4096)
    print(path.name, work.name, flush=True)
    time.sleep(600)
"""


@contextmanager
def scratch_holder(directory: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """Another process that owns an upload spool file and a job directory until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(directory)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert process.stdout is not None
        names = process.stdout.readline().split()
        assert len(names) == 2, names
        yield process, names
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=15)


def _names(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()} if directory.is_dir() else set()


def test_only_entries_whose_owner_died_are_reclaimed(tmp_path: Path) -> None:
    directory = tmp_path / "tmp"
    with scratch_holder(directory) as (holder, names):
        assert set(names) <= _names(directory)
        assert scratch.leftovers(directory) == []
        assert scratch.reclaim(directory) == [], "a live owner's entries are never removed"
        assert set(names) <= _names(directory)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=15)
        found = scratch.leftovers(directory)
        assert sorted(item.name for item in found) == sorted(names)
        assert sum(item.bytes for item in found) >= 4096
        removed = scratch.reclaim(directory)
        assert sorted(item.name for item in removed) == sorted(names)
        assert _names(directory) == set()


def _slow_upload(url: str, declared: int) -> socket.socket:
    """A blob upload that declares ``declared`` bytes, sends a few and stays open."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sha = sha256_of(b"never finished")
    sock.sendall(
        f"PUT {API}/blobs/sha256/{sha} HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Length: {declared}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + b"\0" * 65536
    )
    return sock


def _wait_for(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _scratch(directory: Path, prefix: str) -> set[str]:
    return {name for name in _names(directory) if name.startswith(prefix)}


def _backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if kind == "sqlite+local":
        settings = Settings(home=tmp_path / "home", database_url=None, blob_url=None)
    else:
        settings = request.getfixturevalue("postgres_s3_settings")
    db.upgrade(settings)
    return settings


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite+local", "postgres+s3"])
def test_kill_9_mid_push_and_mid_job_leaves_nothing_after_a_restart(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    kind: str,
    adapter_files: dict[str, bytes],
) -> None:
    settings = _backend(kind, tmp_path, request)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = settings_env(
        settings.model_copy(update={"port": port}),
        compose_module_delay_s=1.0,
        job_heartbeat_s=0.3,
        job_stale_after_s=2,
    )
    tmp = settings.tmp_dir
    declared = 64 * 1024 * 1024
    with lorry_process(["serve"], env, tmp_path / "serve-1.log") as server:
        server.wait_until_serving(url)
        with httpx.Client(base_url=url, timeout=30) as http:
            push_ok(http, "acme/sql-gen", adapter_files)
            upload = _slow_upload(url, declared)
            recipe = {
                "method": "linear",
                "inputs": [{"adapter": "acme/sql-gen@1", "weight": 0.5}],
                "output": {"type": "adapter", "rank": 8},
                "device": "cpu",
            }
            submitted = http.post(
                f"{API}/compositions", json={"recipe": recipe, "target": "acme/half"}
            )
            assert submitted.status_code == 202, submitted.text
            _wait_for(lambda: _scratch(tmp, "upload-") and _scratch(tmp, "job-"), "scratch")
            spool = _scratch(tmp, "upload-")
            work = _scratch(tmp, "job-")
            live = http.get(f"{API}/gc").json()
            assert live["scratch"] == [], "gc never lists what a live upload or job uses"
        server.kill()
        upload.close()

    assert spool <= _names(tmp) and work <= _names(tmp), "kill -9 left the spool and work dir"
    (spool_name,) = spool
    assert (tmp / spool_name).stat().st_blocks * 512 >= declared, "the spool is preallocated"

    dry = subprocess.run(
        [*LORRY, "gc", "--local", "--json"], env=env, cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert {entry["name"] for entry in report["scratch"]} == spool | work
    assert report["scratch_bytes"] >= declared
    assert spool | work <= _names(tmp), "a dry run removes nothing"

    with lorry_process(["serve"], env, tmp_path / "serve-2.log") as server:
        server.wait_until_serving(url)
        assert not (spool | work) & _names(tmp), "the start reclaimed the crash's leftovers"
        assert "removed 2 scratch entries" in server.output()
        with httpx.Client(base_url=url, timeout=30) as http:
            job_id = submitted.json()["id"]
            _wait_for(
                lambda: (
                    http.get(f"{API}/jobs/{job_id}").json()["state"]
                    in ("succeeded", "failed", "cancelled")
                ),
                "the interrupted job to run again",
                timeout=180,
            )
            job = http.get(f"{API}/jobs/{job_id}").json()
            assert job["state"] == "succeeded", (job, server.output()[-3000:])
    assert not _scratch(tmp, "upload-") | _scratch(tmp, "job-")


@pytest.mark.slow
def test_the_job_sweep_and_gc_reclaim_what_a_dead_process_left_while_the_server_runs(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=None, blob_url=None)
    db.upgrade(settings)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tmp = settings.tmp_dir
    slow_sweep = settings_env(settings.model_copy(update={"port": port}), job_heartbeat_s=3600)
    with lorry_process(["serve"], slow_sweep, tmp_path / "serve-1.log") as server:
        server.wait_until_serving(url)
        with scratch_holder(tmp) as (holder, names), httpx.Client(base_url=url) as http:
            assert http.get(f"{API}/gc").json()["scratch"] == []
            assert http.post(f"{API}/gc").json()["scratch"] == []
            assert set(names) <= _names(tmp)
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=15)
            listed = http.get(f"{API}/gc").json()
            assert sorted(entry["name"] for entry in listed["scratch"]) == sorted(names)
            assert set(names) <= _names(tmp)
            deleted = http.post(f"{API}/gc").json()
            assert sorted(entry["name"] for entry in deleted["scratch"]) == sorted(names)
            assert not set(names) & _names(tmp)

    fast_sweep = settings_env(settings.model_copy(update={"port": port}), job_heartbeat_s=0.2)
    with lorry_process(["serve"], fast_sweep, tmp_path / "serve-2.log") as server:
        server.wait_until_serving(url)
        with scratch_holder(tmp) as (holder, names):
            time.sleep(1.0)
            assert set(names) <= _names(tmp), "the sweep leaves a live owner's entries alone"
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=15)
            _wait_for(lambda: not set(names) & _names(tmp), "the job sweep to reclaim them")
