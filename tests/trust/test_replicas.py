"""Real `lorry serve` processes: replicas on one PostgreSQL + S3, `--workers`, a server killed
with SIGKILL, and PostgreSQL restarted under load."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from registry import db
from registry.config import Settings
from tests.support.outages import Call, restart_under_load
from tests.support.postgres import RestartablePostgresCluster
from tests.support.processes import LorryProcess, free_port, lorry_process, settings_env
from tests.support.rest import API, push, push_ok, with_extra

REPO = "acme/sql-lora"
_NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


def _downloads(http: httpx.Client, repository: str) -> int:
    count: int = http.get(f"{API}/repos/{repository}").json()["downloads"]
    return count


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.slow
def test_two_replicas_on_one_postgres_and_s3_stay_consistent(
    tmp_path: Path,
    postgres_s3_settings: Settings,
    adapter_files: dict[str, bytes],
) -> None:
    settings = postgres_s3_settings
    db.upgrade(settings)
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    with (
        lorry_process(["serve"], settings_env(settings, port=ports[0]), tmp_path / "a.log") as a,
        lorry_process(["serve"], settings_env(settings, port=ports[1]), tmp_path / "b.log") as b,
        # No keep-alive: a pooled connection that the server closes after its idle timeout
        # while a thread picks it up would fail the request on the client's side.
        httpx.Client(base_url=urls[0], timeout=120, limits=_NO_KEEPALIVE) as first,
        httpx.Client(base_url=urls[1], timeout=120, limits=_NO_KEEPALIVE) as second,
    ):
        a.wait_until_serving(urls[0])
        b.wait_until_serving(urls[1])
        replicas = [first, second]

        # Concurrent pushes of distinct contents, alternating replicas.
        contents = [with_extra(adapter_files, "notes.txt", f"v{i}".encode()) for i in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(
                pool.map(lambda i: push(replicas[i % 2], REPO, contents[i]), range(len(contents)))
            )
        assert [r.status_code for r in results] == [201] * len(contents), [
            r.text for r in results if r.status_code != 201
        ]
        numbers = sorted(r.json()["version"] for r in results)
        assert numbers == list(range(1, len(contents) + 1)), "no duplicate, no gap"
        # The same contents again, through both replicas at once: one version, one 409.
        with ThreadPoolExecutor(max_workers=2) as pool:
            again = list(pool.map(lambda http: push(http, REPO, contents[0]), replicas))
        assert sorted(r.status_code for r in again) == [409, 409]

        # Concurrent alias moves through both replicas.
        def move(i: int) -> int:
            response = replicas[i % 2].put(
                f"{API}/repos/{REPO}/aliases/production",
                json={"version": 1 + i % len(contents), "reason": f"move {i}"},
            )
            return response.status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(move, range(24))) == {200}
        seen = [
            http.get(f"{API}/repos/{REPO}/aliases/production").json()["version"]
            for http in replicas
        ]
        assert seen[0] == seen[1]
        history = first.get(f"{API}/repos/{REPO}/aliases/production/history").json()["items"]
        assert history[-1]["to_version"] == seen[0], "the newest move is where it points"
        for older, newer in zip(history, history[1:], strict=False):  # oldest first
            assert newer["from_version"] == older["to_version"], "moves chain without a gap"

        # Downloads through both replicas add up in one count.
        path = f"{API}/repos/{REPO}/versions/1/files/adapter_config.json"
        for i in range(10):
            assert replicas[i % 2].get(path).status_code == 200
        deadline = time.monotonic() + 15
        while _downloads(first, REPO) < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _downloads(first, REPO) == _downloads(second, REPO) == 10

        for http in replicas:
            verified = http.get(f"{API}/audit/verify").json()
            assert verified["ok"] is True, verified
        listed = first.get(f"{API}/repos/{REPO}/versions", params={"limit": 100}).json()
        assert listed["total"] == len(contents)
        assert len({item["digest"] for item in listed["items"]}) == len(contents)
        actions = Counter(
            event["action"]
            for event in first.get(f"{API}/audit", params={"limit": 1000}).json()["items"]
        )
        assert actions["version.publish"] == len(contents)
        assert actions["version.pull"] == 0


@pytest.mark.postgres
@pytest.mark.slow
def test_serve_workers_runs_several_processes_on_postgres_and_refuses_sqlite(
    tmp_path: Path, fresh_postgres_url: str, adapter_files: dict[str, bytes]
) -> None:
    sqlite = Settings(home=tmp_path / "sqlite-home", database_url=None, blob_url=None)
    refused = LorryProcess(
        ["serve", "--workers", "2"], settings_env(sqlite, port=free_port()), tmp_path / "s.log"
    )
    assert refused.process.wait(timeout=60) == 1
    assert "needs PostgreSQL" in refused.output()

    settings = Settings(home=tmp_path / "home", database_url=fresh_postgres_url)
    db.upgrade(settings)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = settings_env(settings, port=port)
    with (
        lorry_process(["serve", "--workers", "2"], env, tmp_path / "w.log") as server,
        httpx.Client(base_url=url, timeout=120) as http,
    ):
        server.wait_until_serving(url)
        deadline = time.monotonic() + 60
        while len(psutil.Process(server.process.pid).children()) < 2:
            assert time.monotonic() < deadline, server.output()[-3000:]
            time.sleep(0.2)
        version = push_ok(http, REPO, adapter_files, alias="production")
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(
                    lambda _: http.get(f"{API}/repos/{REPO}/aliases/production").status_code,
                    range(40),
                )
            )
        assert set(answers) == {200}
        assert version["version"] == 1


def test_a_killed_server_loses_no_mutation_and_at_most_the_last_second_of_downloads(
    tmp_path: Path, adapter_files: dict[str, bytes]
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=None, blob_url=None)
    db.upgrade(settings)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = settings_env(settings, port=port)
    path = f"{API}/repos/{REPO}/versions/1/files/adapter_config.json"
    server = LorryProcess(["serve"], env, tmp_path / "1.log")
    try:
        server.wait_until_serving(url)
        with httpx.Client(base_url=url, timeout=60) as http:
            push_ok(http, REPO, adapter_files)
            for _ in range(5):
                assert http.get(path).status_code == 200
            time.sleep(2.5)  # more than one flush interval: these five are written
            acknowledged = []
            served_at = []
            for i in range(6):
                pushed = push_ok(http, REPO, with_extra(adapter_files, "n.txt", str(i).encode()))
                acknowledged.append(pushed["version"])
                moved = http.put(
                    f"{API}/repos/{REPO}/aliases/production", json={"version": pushed["version"]}
                )
                assert moved.status_code == 200
                assert http.get(path).status_code == 200
                served_at.append(time.monotonic())
        server.kill()
        killed_at = time.monotonic()
    finally:
        server.stop()

    with lorry_process(["serve"], env, tmp_path / "2.log") as restarted:
        restarted.wait_until_serving(url)
        with httpx.Client(base_url=url, timeout=60) as http:
            versions = http.get(f"{API}/repos/{REPO}/versions", params={"limit": 100}).json()
            assert sorted(item["version"] for item in versions["items"]) == [1, *acknowledged]
            production = http.get(f"{API}/repos/{REPO}/aliases/production").json()
            assert production["version"] == acknowledged[-1]
            moves = http.get(f"{API}/repos/{REPO}/aliases/production/history").json()["items"]
            assert len(moves) == len(acknowledged)
            assert http.get(f"{API}/audit/verify").json()["ok"] is True
            downloads = http.get(f"{API}/repos/{REPO}/versions/1").json()["downloads"]
            # Only the records of the last flush interval (1 s) may die with the process;
            # 2 s of margin for a busy machine.
            older = sum(1 for at in served_at if at < killed_at - 2.0)
            assert 5 + older <= downloads <= 5 + len(served_at)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_server_process_answers_503_while_postgres_restarts_and_recovers_by_itself(
    tmp_path: Path,
    restartable_postgres: RestartablePostgresCluster,
    adapter_files: dict[str, bytes],
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=restartable_postgres.url)
    db.upgrade(settings)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (
        lorry_process(["serve"], settings_env(settings, port=port), tmp_path / "s.log") as server,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        server.wait_until_serving(url)
        push_ok(http, REPO, adapter_files, alias="production")
        push_ok(http, REPO, with_extra(adapter_files, "notes.txt", b"v2"))

        @contextmanager
        def caller() -> Iterator[Call]:
            with httpx.Client(base_url=url, timeout=30) as own:

                def call(kind: str, round_: int) -> tuple[int, str]:
                    if kind == "alias":
                        response = own.get(f"{API}/repos/{REPO}/aliases/production")
                    elif kind == "hub":
                        response = own.get(f"/api/models/{REPO}/revision/production")
                    elif kind == "download":
                        response = own.get(f"/{REPO}/resolve/1/adapter_config.json")
                    else:
                        response = own.put(
                            f"{API}/repos/{REPO}/aliases/staging",
                            json={"version": 1 + round_ % 2},
                        )
                    return response.status_code, response.text

                yield call

        kinds = ["alias", "hub", "download", "write"]
        outage = restart_under_load(
            restartable_postgres,
            kinds,
            caller,
            warm_up_s=1.0,
            down_s=1.5,
            recover_s=4.0,
            pause_s=0.01,
        )
        statuses, bodies = outage.statuses, outage.bodies

        codes = outage.codes()
        assert codes <= {200, 503}, (codes, bodies[:3])
        assert 503 in codes, "the outage was seen"
        assert all("database" in body for body in bodies), bodies[:3]
        late = [(kind, code) for at, kind, code in statuses if at > outage.resumed + 1.5]
        assert {kind for kind, _ in late} == set(kinds), "every kind of request was tried"
        assert {code for _, code in late} == {200}, late[-10:]
        assert http.get("/readyz").status_code == 200
        assert http.get(f"{API}/audit/verify").json()["ok"] is True
        served = sum(1 for _, kind, code in statuses if kind == "download" and code == 200)
        deadline = time.monotonic() + 15
        while _downloads(http, REPO) < served and time.monotonic() < deadline:
            time.sleep(0.2)
        # Downloads served before and after the outage are all counted: the records that
        # waited while the database was away were written once it answered again.
        assert _downloads(http, REPO) == served
    assert server.process.returncode is not None
