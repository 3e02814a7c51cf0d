"""PEFT, transformers and the ``hf`` CLI, each in its own process with ``HF_ENDPOINT`` set.

huggingface_hub reads ``HF_ENDPOINT`` when it is imported, and PEFT and
transformers take no endpoint argument: they run exactly as a user runs them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub.live import ADAPTER_REPO, MODEL_REPO, LiveRegistry, client_env
from tests.support.files import directory_files
from tests.support.rest import version_files

_LOAD_FROM_LORRY = """
import json, sys
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

base_dir, adapter_dir, adapter_repo, model_repo = sys.argv[1:5]
ids = torch.tensor([[1, 5, 9, 13, 17, 21]])


def logits(model):
    model.eval()
    with torch.no_grad():
        return model(ids).logits


def base():
    return AutoModelForCausalLM.from_pretrained(base_dir)


from_lorry = logits(PeftModel.from_pretrained(base(), adapter_repo, revision="production"))
from_dir = logits(PeftModel.from_pretrained(base(), adapter_dir))
plain = logits(base())
merged = logits(AutoModelForCausalLM.from_pretrained(model_repo, revision="2"))
print(json.dumps({
    "adapter_vs_dir": (from_lorry - from_dir).abs().max().item(),
    "adapter_vs_base": (from_lorry - plain).abs().max().item(),
    "model_vs_dir": (merged - plain).abs().max().item(),
}))
"""


@pytest.mark.slow
def test_peft_and_transformers_load_adapters_and_models_from_lorry(
    live_registry: LiveRegistry,
    hub_env: Path,
    tiny_llama_dir: Path,
    lora_adapter_dir: Path,
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_FROM_LORRY,
            str(tiny_llama_dir),
            str(lora_adapter_dir),
            ADAPTER_REPO,
            MODEL_REPO,
        ],
        env=client_env(live_registry, hub_env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    diffs = json.loads(result.stdout.strip().splitlines()[-1])
    assert diffs["adapter_vs_dir"] == 0.0
    assert diffs["adapter_vs_base"] > 1e-4
    assert diffs["model_vs_dir"] == 0.0

    live_registry.flush_access_log()
    pulled = {
        (p["version"], p["path"])
        for p in live_registry.http.get(
            "/api/v1/access-log", params={"repository": ADAPTER_REPO}
        ).json()["items"]
    }
    assert (1, "adapter_model.safetensors") in pulled


def test_hf_cli_downloads_a_revision(
    live_registry: LiveRegistry, hub_env: Path, tmp_path: Path
) -> None:
    hf = shutil.which("hf", path=str(Path(sys.executable).parent))
    if hf is None:
        pytest.fail("the `hf` CLI of huggingface_hub is missing from this environment")
    target = tmp_path / "sql-gen"
    result = subprocess.run(
        [hf, "download", ADAPTER_REPO, "--revision", "production", "--local-dir", str(target)],
        env=client_env(live_registry, hub_env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    downloaded = {
        path: data
        for path, data in directory_files(target).items()
        if not path.startswith(".cache/")
    }
    assert downloaded == version_files(live_registry.http, ADAPTER_REPO, "production")
    assert str(target) in result.stdout
