"""Trainer state pickles: scanned statically (never loaded), accepted or refused by what they
import, on both push_ok paths (the REST push of `lorry push` and a Hub commit)."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from tests.hub.live import LiveRegistry
from tests.support.files import directory_files, sha256_of
from tests.support.rest import API, push_ok, row_counts

REPO = "acme/sql-gen"


class _RunsACommand:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, ("touch pwned",))


def _torch_saved(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _names_a_missing_class() -> bytes:
    """A pickle that unpickling would fail on (the class does not exist): only a scan
    that never loads it can accept it."""
    return (
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00"
        b"\x8c\x0ctransformers\x8c\x0bNoSuchThing\x93)\x81."
    )


def _push(registry: LiveRegistry, files: dict[str, bytes]) -> tuple[int, str]:
    manifest = []
    for path, data in files.items():
        registry.http.put(f"{API}/blobs/sha256/{sha256_of(data)}", content=data)
        manifest.append({"path": path, "sha256": sha256_of(data), "size": len(data)})
    response = registry.http.post(f"{API}/repos/{REPO}/versions", json={"files": manifest})
    return response.status_code, response.text


def test_trainer_state_files_are_accepted_after_a_scan_and_listed(
    blank_registry: LiveRegistry, lora_adapter_dir: Path
) -> None:
    adapter = directory_files(lora_adapter_dir)
    optimizer = _torch_saved({"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": []})
    version = push_ok(
        blank_registry.http,
        REPO,
        {
            **adapter,
            "training_args.bin": _names_a_missing_class(),
            "checkpoint-2/optimizer.pt": optimizer,
        },
    )
    state = {item["path"]: item["imports"] for item in version["metadata"]["trainer_state"]}
    assert state == {
        "checkpoint-2/optimizer.pt": [
            "collections.OrderedDict",
            "torch.FloatStorage",
            "torch._utils._rebuild_tensor_v2",
        ],
        "training_args.bin": ["transformers.NoSuchThing"],
    }
    assert not Path("pwned").exists()


@pytest.mark.parametrize(
    ("path", "data", "needle"),
    [
        ("training_args.bin", pickle.dumps(_RunsACommand()), "system"),
        ("last-checkpoint/rng_state.pth", _torch_saved({"x": _RunsACommand()}), "system"),
        ("optimizer.pt", b"not a pickle at all", "can be disassembled"),
        ("pytorch_model.bin", _torch_saved({"w": torch.zeros(2)}), "pickled weights"),
    ],
)
def test_unsafe_or_unknown_pickles_are_refused_on_both_paths(
    blank_registry: LiveRegistry, lora_adapter_dir: Path, path: str, data: bytes, needle: str
) -> None:
    adapter = directory_files(lora_adapter_dir)
    push_ok(blank_registry.http, REPO, adapter)
    counts = row_counts(blank_registry.settings)

    status, text = _push(blank_registry, {**adapter, path: data})
    assert status == 422 and needle in text, text
    with pytest.raises(HfHubHTTPError) as refused:
        HfApi(endpoint=blank_registry.url, token=False).upload_file(
            path_or_fileobj=data, path_in_repo=path, repo_id=REPO
        )
    assert refused.value.response.status_code == 422
    assert needle in str(refused.value)
    assert row_counts(blank_registry.settings) == counts
    assert not Path("pwned").exists()
