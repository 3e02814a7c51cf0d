"""Jobs survive the death of the process running them, and workers share them exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from registry import db
from registry.app import create_app
from registry.config import Settings
from tests.support.compositions import publish_skills, sql_formal_recipe, submit
from tests.support.processes import free_port, lorry_process, settings_env
from tests.support.rest import API, version_files, wait_for_job


def _wait_for_progress(http: httpx.Client, job_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"{API}/jobs/{job_id}").json()
        if job["state"] == "running" and job["progress"]["done"] >= 1:
            return
        assert job["state"] in ("queued", "running"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(("max_attempts", "outcome"), [(2, "succeeded"), (1, "failed")])
def test_a_job_whose_server_is_killed_mid_run_ends_after_a_restart(
    tmp_path: Path,
    skill_adapters: dict[str, dict[str, bytes]],
    max_attempts: int,
    outcome: str,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = settings_env(
        Settings(home=tmp_path / "home", port=port),
        compose_module_delay_s=0.8,
        job_heartbeat_s=0.3,
        job_stale_after_s=2,
        job_max_attempts=max_attempts,
    )
    with lorry_process(["serve"], env, tmp_path / "serve-1.log") as server:
        server.wait_until_serving(url)
        with httpx.Client(base_url=url, timeout=30) as http:
            publish_skills(http, skill_adapters)
            job = submit(http, sql_formal_recipe(), "acme/sql-formal").json()
            _wait_for_progress(http, job["id"])
        server.kill()

    with lorry_process(["serve"], env, tmp_path / "serve-2.log") as server:
        server.wait_until_serving(url)
        with httpx.Client(base_url=url, timeout=30) as http:
            done = wait_for_job(http, job["id"], timeout=60)
            assert done["state"] == outcome, done["log"]
            assert any("no heartbeat since" in entry["message"] for entry in done["log"])
            if outcome == "succeeded":
                assert done["attempts"] == 2
                assert set(version_files(http, "acme/sql-formal", str(done["result"]["version"])))
            else:
                assert done["attempts"] == 1
                assert done["error"]["code"] == "worker_lost"
                assert "LORRY_JOB_MAX_ATTEMPTS" in done["error"]["message"]
                assert http.get(f"{API}/repos/acme/sql-formal").status_code == 404


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.s3
def test_two_workers_share_six_queued_jobs_and_run_each_once(
    tmp_path: Path,
    skill_adapters: dict[str, dict[str, bytes]],
    postgres_s3_settings: Settings,
) -> None:
    settings = postgres_s3_settings.model_copy(update={"embedded_worker": False})
    db.upgrade(settings)
    env = settings_env(settings, compose_module_delay_s=0.15, job_heartbeat_s=0.5)
    with (
        lorry_process(["worker"], env, tmp_path / "worker-1.log") as first,
        lorry_process(["worker", "--cpu"], env, tmp_path / "worker-2.log") as second,
    ):
        first.wait_for_output("worker taking queues")
        second.wait_for_output("worker taking queues")
        with TestClient(create_app(settings)) as client:
            publish_skills(client, skill_adapters)
            ids = []
            for index in range(6):
                recipe = sql_formal_recipe()
                recipe["inputs"][1]["weight"] = 0.1 * (index + 1)
                response = submit(client, recipe, "acme/sql-formal")
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
            jobs = [wait_for_job(client, job_id, timeout=120) for job_id in ids]

            assert [job["state"] for job in jobs] == ["succeeded"] * 6, [j["log"] for j in jobs]
            assert all(job["attempts"] == 1 for job in jobs)
            for job in jobs:
                assert sum(e["message"].startswith("started on") for e in job["log"]) == 1
            processes = {job["worker"].rsplit(":", 1)[0] for job in jobs}
            assert len(processes) == 2, processes
            versions = client.get(f"{API}/repos/acme/sql-formal/versions").json()
            assert versions["total"] == 6
            assert sorted(job["result"]["version"] for job in jobs) == [1, 2, 3, 4, 5, 6]
            audit = client.get(
                f"{API}/audit", params={"repository": "acme/sql-formal", "limit": 100}
            ).json()["items"]
            actions = [event["action"] for event in audit]
            assert actions.count("composition.succeed") == 6
            assert actions.count("version.publish") == 6


def test_a_server_shutting_down_mid_job_queues_it_again_for_the_next_start(
    sqlite_settings: Settings, skill_adapters: dict[str, dict[str, bytes]]
) -> None:
    sqlite_settings.compose_module_delay_s = 0.3
    with TestClient(create_app(sqlite_settings)) as client:
        publish_skills(client, skill_adapters)
        job = submit(client, sql_formal_recipe(), "acme/sql-formal").json()
        wait_for_job(client, job["id"], until=("running",))
    with TestClient(create_app(sqlite_settings)) as client:
        interrupted = client.get(f"{API}/jobs/{job['id']}").json()
        assert interrupted["state"] in ("queued", "running", "succeeded")
        assert any("shut down mid-job" in e["message"] for e in interrupted["log"])
        done = wait_for_job(client, job["id"])
        assert done["state"] == "succeeded", done["log"]
        assert done["attempts"] == 1
