"""Trainer-side clients push into Lorry unchanged: transformers, PEFT, Trainer, TRL, `hf`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub.live import LiveRegistry, client_env
from tests.hub.pushing import XET_MODES
from tests.support.files import directory_files
from tests.support.rest import API, version_files


def _versions(registry: LiveRegistry, repo: str) -> list[dict[str, object]]:
    listed = registry.http.get(f"{API}/repos/{repo}/versions", params={"limit": 1000}).json()
    return sorted(listed["items"], key=lambda item: item["version"])


@pytest.mark.slow
def test_transformers_peft_trainer_and_trl_push_to_lorry(
    blank_registry: LiveRegistry, hub_env: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.hub.push_clients", str(tmp_path / "work")],
        env=client_env(blank_registry, hub_env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    pushed = json.loads(result.stdout.strip().splitlines()[-1])

    assert pushed["model_reloads_equal"] and pushed["tokenizer_reloads_equal"]
    chat = _versions(blank_registry, "acme/tiny-chat")
    assert [(v["kind"], v["commit"]) for v in chat] == [
        ("model", pushed["model_commit"]),
        ("model", pushed["tokenizer_commit"]),
    ]
    assert "tokenizer.json" in version_files(blank_registry.http, "acme/tiny-chat", "2")

    assert pushed["adapter_pulls_equal"] == {
        pushed["adapter_commit"]: True,
        "candidate": True,
        "1": True,
    }
    assert pushed["adapter_logits_diff"] == 0.0
    (lora,) = _versions(blank_registry, "acme/chat-lora")
    assert lora["kind"] == "adapter"

    trained = _versions(blank_registry, "acme/trained")
    assert len(trained) >= 2, "the checkpoint pushes during training make versions"
    assert trained[-1]["commit"] == pushed["trained_commit"]
    assert pushed["trained_weights_equal"]
    latest = blank_registry.http.get(f"{API}/repos/acme/trained/versions/latest").json()
    paths = {f["path"] for f in latest["files"]}
    assert {"training_args.bin", "last-checkpoint/optimizer.pt"} <= paths
    state = {item["path"]: item for item in latest["metadata"]["trainer_state"]}
    assert "transformers.training_args.TrainingArguments" in state["training_args.bin"]["imports"]
    assert "last-checkpoint/rng_state.pth" in state

    assert pushed["sft_weights_equal"]
    sft = _versions(blank_registry, "acme/sft-lora")
    assert sft[-1]["commit"] == pushed["sft_commit"] and sft[-1]["kind"] == "adapter"


@pytest.mark.parametrize("xet", XET_MODES)
def test_hf_upload_cli_publishes_a_folder(
    blank_registry: LiveRegistry,
    hub_env: Path,
    lora_adapter_dir: Path,
    xet: str,
) -> None:
    hf = shutil.which("hf", path=str(Path(sys.executable).parent))
    if hf is None:
        pytest.fail("the `hf` CLI of huggingface_hub is missing from this environment")
    env = client_env(blank_registry, hub_env)
    if xet == "no-xet":
        env["HF_HUB_DISABLE_XET"] = "1"
    else:
        env.pop("HF_HUB_DISABLE_XET", None)
    start = blank_registry.log.count()
    result = subprocess.run(
        [hf, "upload", "acme/cli-upload", str(lora_adapter_dir), ".", "--commit-message", "cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (version,) = _versions(blank_registry, "acme/cli-upload")
    assert (version["message"], version["kind"]) == ("cli", "adapter")
    files = version_files(blank_registry.http, "acme/cli-upload", "1")
    assert files == directory_files(lora_adapter_dir)
    assert not [p for _, p in blank_registry.log.since(start) if "xet" in p]
