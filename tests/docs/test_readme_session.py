"""The README's first session, run as written against a real ``lorry serve``.

Each command of the block marked ``runnable: first-session`` runs in order in bash, in a
fresh working directory, with ``LORRY_URL`` pointing at a server started here on its
embedded defaults (SQLite + a blob directory): the only thing the README asks the user to
have. The commands themselves are the README's bytes; nothing is downloaded.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.docs.sessions import (
    REPO,
    clone_dir,
    run_session,
    runnable_commands,
    runnable_steps,
    session_env,
    split_commands,
)

README = REPO / "README.md"

# What each command of the session must print, keyed by the start of the command.
EXPECTED: dict[str, list[str]] = {
    "python docs/examples/make_adapter.py ./out ": [],
    "python docs/examples/make_adapter.py ./out-v2 ": [],
    "lorry push ./out acme/sql-gen": ["acme/sql-gen@1 (sha256:"],
    "lorry push ./out-v2 acme/sql-gen --alias staging": [
        "acme/sql-gen@2 (sha256:",
        "alias staging → acme/sql-gen@2",
    ],
    "lorry ls sql": ["acme/sql-gen", "staging→2"],
    "lorry show acme/sql-gen ": ["versions (2)", "first SQL adapter"],
    "lorry show acme/sql-gen@staging": ["acme/sql-gen@2", "q_proj, v_proj", "LORA"],
    "lorry alias set acme/sql-gen production 2": ["acme/sql-gen@production → 2"],
    "lorry pull acme/sql-gen@production ./sql-gen": ["acme/sql-gen@2", "downloaded 3 files"],
    "lorry alias history acme/sql-gen production": ["beats v1 on the SQL eval"],
    "lorry alias rm acme/sql-gen staging": ["removed acme/sql-gen@staging"],
    "lorry audit --repo acme/sql-gen --since 7d": [
        "alias.delete",
        "alias.set",
        "version.publish",
        "repository.create",
    ],
    "lorry downloads acme/sql-gen": ["adapter_model.safetensors", "lorry-cli"],
}


@pytest.mark.slow
def test_readme_first_session_runs_as_written(registry_url: str, tmp_path: Path) -> None:
    workdir = clone_dir(tmp_path)
    env = session_env(registry_url, tmp_path / "user-home")
    run_session(runnable_steps(README, "first-session"), EXPECTED, workdir, env)

    # What was pulled is what `production` names: version 2, pushed from ./out-v2.
    pulled = load_file(workdir / "sql-gen" / "adapter_model.safetensors")
    pushed = load_file(workdir / "out-v2" / "adapter_model.safetensors")
    assert pulled.keys() == pushed.keys()
    assert all(torch.equal(pulled[name], pushed[name]) for name in pushed)
    first = load_file(workdir / "out" / "adapter_model.safetensors")
    assert not all(torch.equal(first[name], pushed[name]) for name in pushed)


@pytest.mark.slow
def test_readme_example_adapter_loads_in_peft(tmp_path: Path) -> None:
    """The session's adapter is a real PEFT adapter of the tiny Llama the tests build:
    PEFT loads it, and its forward pass adds exactly ``scale * B @ A``."""
    from peft import PeftModel

    from tests.support.factories import build_tiny_llama, load_tiny_llama

    make = next(c for c in runnable_commands(README, "first-session") if "make_adapter" in c)
    workdir = clone_dir(tmp_path)
    env = session_env(None, tmp_path / "user-home")
    subprocess.run(["bash", "-c", make], cwd=workdir, env=env, check=True, timeout=120)
    adapter_dir = workdir / make.split()[2]
    base = load_tiny_llama(build_tiny_llama(tmp_path / "tiny-llama"))
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    saved = load_file(adapter_dir / "adapter_model.safetensors")
    layer: Any = model.get_submodule("base_model.model.model.layers.1.self_attn.v_proj")
    a = saved["base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"]
    b = saved["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"]
    assert torch.equal(layer.lora_A["default"].weight, a)
    assert torch.equal(layer.lora_B["default"].weight, b)
    assert layer.scaling["default"] == 2.0  # lora_alpha / r = 16 / 8
    inputs = torch.randn(1, 3, 64)
    with torch.no_grad():
        expected = layer.base_layer(inputs) + 2.0 * inputs @ (b @ a).T
        assert torch.allclose(layer(inputs), expected, atol=1e-6)


def test_readme_test_command_is_what_ci_runs() -> None:
    """`.ci/run` runs the README's test command, step by step, in that order."""
    setup = README.read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in setup.split("```bash\n")[1:]]
    assert len(blocks) == 2, "Set up gives two commands: serve, and test"
    serve, test = (split_commands(block) for block in blocks)
    assert serve[0].endswith("pip install -e . && lorry serve")
    steps = [step.strip() for step in test[0].split("&&")]
    assert steps[-1] == "python -m pytest"
    ci = (REPO / ".ci" / "run").read_text().replace("\\\n", " ")
    position = 0
    for step in steps:
        found = ci.find(step, position)
        assert found >= 0, f"`.ci/run` does not run the README's step `{step}` in order"
        position = found + len(step)
