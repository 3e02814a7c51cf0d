"""The sessions the docs pages mark runnable, run as written (see ``tests/docs/sessions.py``).

Each page's steps run in order in a fresh working directory standing for a clone; the
registry sessions talk to a real ``lorry serve`` on its embedded defaults through
``LORRY_URL``, the only setting the pages ask for. Nothing is downloaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.docs.sessions import REPO, clone_dir, run_session, runnable_steps, session_env

COMPOSING = REPO / "docs" / "composing.md"
REGISTRY_JOBS = REPO / "docs" / "registry-jobs.md"

MAKE_ADAPTERS: dict[str, list[str]] = {
    "python docs/examples/make_adapter.py ./sql-gen ": [],
    "python docs/examples/make_adapter.py ./formal-tone ": [],
    "python docs/examples/make_adapter.py ./toxic ": [],
}

COMPOSE_LOCAL: dict[str, list[str]] = {
    **MAKE_ADAPTERS,
    "cat > recipe.yaml": [],
    "lorry compose recipe.yaml --out ./sql-formal": [
        "Composed ties of 3 input(s) into adapter sql-formal",
        "4 modules on cpu",
    ],
    "lorry compose recipe.yaml --out ./sql-formal --overwrite --json": ['"method": "ties"'],
}

COMPOSE_PYTHON: dict[str, list[str]] = {
    "python:": ["4 4 model.layers.1.self_attn.v_proj"],
}

COMPOSE_REGISTRY: dict[str, list[str]] = {
    **MAKE_ADAPTERS,
    "lorry push ./sql-gen acme/sql-gen --alias production": [
        "acme/sql-gen@1 (sha256:",
        "alias production → acme/sql-gen@1",
    ],
    "lorry push ./formal-tone acme/formal-tone": ["acme/formal-tone@1 (sha256:"],
    "lorry push ./toxic acme/toxic": ["acme/toxic@1 (sha256:"],
    "cat > sql-formal.yaml": [],
    "lorry compose sql-formal.yaml --to acme/sql-formal --alias candidate --wait": [
        "Published acme/sql-formal@1 (sha256:",
    ],
    "lorry lineage acme/sql-formal@candidate": ["acme/sql-formal@1 linear"],
    "lorry derived acme/toxic@1": ["acme/sql-formal@1", "candidate"],
    "lorry jobs --repository acme/sql-formal": ["succeeded", "acme/sql-formal@1"],
}


@pytest.mark.slow
def test_composing_sessions_run_as_written(tmp_path: Path) -> None:
    workdir = clone_dir(tmp_path)
    env = session_env(None, tmp_path / "user-home")
    outputs = run_session(runnable_steps(COMPOSING, "compose-local"), COMPOSE_LOCAL, workdir, env)
    result = json.loads(outputs[-1])
    assert result["method"] == "ties"
    assert [module["rank"] for module in result["modules"]] == [8, 8, 8, 8]
    written = json.loads((workdir / "sql-formal" / "adapter_config.json").read_text())
    assert written["r"] == 8 and written["peft_type"] == "LORA"

    (python_output,) = run_session(
        runnable_steps(COMPOSING, "compose-python"), COMPOSE_PYTHON, workdir, env
    )
    # The library and the CLI wrote the same composition: its error is the same number.
    assert python_output.splitlines()[-1].startswith(repr(result["max_error"]))


def _lineage_shown(page: str) -> list[str]:
    """The lines the page prints for `lorry lineage acme/sql-formal@candidate`."""
    shown = page.split("$ lorry lineage acme/sql-formal@candidate\n", 1)[1]
    return shown.split("\n$ ", 1)[0].splitlines()


def _without_digests(lines: list[str]) -> list[str]:
    return [re.sub(r"sha256:[0-9a-f]{12}", "sha256:…", line.rstrip()) for line in lines]


@pytest.mark.slow
def test_registry_jobs_session_runs_as_written(registry_url: str, tmp_path: Path) -> None:
    workdir = clone_dir(tmp_path)
    env = session_env(registry_url, tmp_path / "user-home")
    steps = runnable_steps(REGISTRY_JOBS, "compose-registry")
    outputs = run_session(steps, COMPOSE_REGISTRY, workdir, env)
    lineage = next(
        output for step, output in zip(steps, outputs, strict=True) if "lineage" in step.text
    )
    # The page's "Lineage" section shows what the session prints (digests aside: they
    # follow the bytes of the generated model cards).
    assert _without_digests(lineage.strip().splitlines()) == _without_digests(
        _lineage_shown(REGISTRY_JOBS.read_text())
    )


HUGGING_FACE = REPO / "docs" / "hugging-face.md"


@pytest.mark.slow
def test_hugging_face_pulls_run_after_the_first_session(registry_url: str, tmp_path: Path) -> None:
    from tests.docs.test_readme_session import EXPECTED as FIRST_SESSION

    workdir = clone_dir(tmp_path)
    env = session_env(registry_url, tmp_path / "user-home")
    run_session(runnable_steps(REPO / "README.md", "first-session"), FIRST_SESSION, workdir, env)
    # `export HF_ENDPOINT=...` as the page says, at this test's port; a private cache.
    env |= {"HF_ENDPOINT": registry_url, "HF_HOME": str(tmp_path / "hf-home")}
    (python_output,) = run_session(
        runnable_steps(HUGGING_FACE, "hf-pull-python"), {"python:": []}, workdir, env
    )
    printed = re.search(r"^(/\S+) (/\S+)$", python_output, re.M)
    assert printed, python_output
    folder, config = printed.groups()
    production = load_file(Path(folder) / "adapter_model.safetensors")
    pushed = load_file(workdir / "out-v2" / "adapter_model.safetensors")
    assert all(torch.equal(production[name], pushed[name]) for name in pushed)
    assert Path(config).read_bytes() == (workdir / "out" / "adapter_config.json").read_bytes()

    (workdir / "sql-gen").rename(workdir / "sql-gen-by-lorry")
    run_session(
        runnable_steps(HUGGING_FACE, "hf-pull-cli"),
        {"hf download acme/sql-gen --revision production": []},
        workdir,
        env,
    )
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md"):
        by_hf = (workdir / "sql-gen" / name).read_bytes()
        assert by_hf == (workdir / "sql-gen-by-lorry" / name).read_bytes(), name
