"""Xet uploads through two replicas on one PostgreSQL + S3, each with its own data
directory: hf_xet's xorbs reach one replica, its shard and commit the other (a load
balancer does that), and the file still publishes; the kept xorbs live beside the blobs,
where both replicas read them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from pathlib import Path

import httpx
import numpy as np
import pytest
from huggingface_hub import HfApi
from safetensors.numpy import save

from registry import db
from registry.config import Settings
from registry.services.xet_format import SHARD_TAG, chunk_hash, hash_from_hex, hash_hex, xorb_hash
from registry.storage import open_blob_store
from tests.hub.live import serve_logged

REPO = "acme/replicated"
CONFIG = json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}).encode()
WEIGHTS = save({"model.embed_tokens.weight": np.random.default_rng(0).random((64, 700), "float32")})
CHUNKS = [WEIGHTS[:60_000], WEIGHTS[60_000:150_000], WEIGHTS[150_000:]]


def _xorb(chunks: list[bytes]) -> tuple[bytes, str]:
    body = b"".join(
        bytes([0]) + len(c).to_bytes(3, "little") + bytes([0]) + len(c).to_bytes(3, "little") + c
        for c in chunks
    )
    return body, hash_hex(xorb_hash([(chunk_hash(c), len(c)) for c in chunks]))


def _shard(xorb: str, size: int, sha256: str, count: int) -> bytes:
    entry = os.urandom(32) + struct.pack("<IIQ", 1 << 30, 1, 0)
    term = hash_from_hex(xorb) + struct.pack("<IIII", 0, size, 0, count)
    metadata = hash_from_hex(sha256) + bytes(16)
    bookend = b"\xff" * 32 + bytes(16)
    return SHARD_TAG + struct.pack("<QQ", 2, 0) + entry + term + metadata + bookend + bookend


@pytest.mark.postgres
@pytest.mark.s3
def test_a_shard_on_one_replica_builds_the_file_from_xorbs_sent_to_the_other(
    tmp_path: Path, postgres_s3_settings: Settings
) -> None:
    shared = {"upload_url_secret": "replicas share this secret"}
    one = postgres_s3_settings.model_copy(update={"home": tmp_path / "one", **shared})
    two = postgres_s3_settings.model_copy(update={"home": tmp_path / "two", **shared})
    db.upgrade(one)
    data = b"".join(CHUNKS)
    sha256 = hashlib.sha256(data).hexdigest()
    body, name = _xorb(CHUNKS)
    with (
        serve_logged(one) as (url_one, _),
        serve_logged(two) as (url_two, _),
        httpx.Client(base_url=url_one, timeout=60) as first,
        httpx.Client(base_url=url_two, timeout=60) as second,
    ):
        HfApi(endpoint=url_one, token=False).create_repo(REPO)
        token = first.get(f"/api/models/{REPO}/xet-write-token/main").json()["accessToken"]
        auth = {"Authorization": f"Bearer {token}"}

        kept = first.post(f"/api/xet/{REPO}/v1/xorbs/default/{name}", content=body, headers=auth)
        assert kept.json() == {"was_inserted": True}
        shard = _shard(name, len(data), sha256, len(CHUNKS))
        built = second.post(f"/api/xet/{REPO}/v1/shards", content=shard, headers=auth)
        assert built.status_code == 200, built.text
        assert open_blob_store(two).read_bytes(sha256, 0, len(data)) == data

        commit = b"".join(
            json.dumps(line).encode() + b"\n"
            for line in (
                {"key": "header", "value": {"summary": "through two replicas"}},
                {
                    "key": "file",
                    "value": {
                        "path": "config.json",
                        "encoding": "base64",
                        "content": base64.b64encode(CONFIG).decode(),
                    },
                },
                {
                    "key": "lfsFile",
                    "value": {
                        "path": "model.safetensors",
                        "algo": "sha256",
                        "oid": sha256,
                        "size": len(data),
                    },
                },
            )
        )
        committed = second.post(
            f"/api/models/{REPO}/commit/main",
            content=commit,
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert committed.status_code == 200, committed.text
        pulled = first.get(f"/{REPO}/resolve/main/model.safetensors", follow_redirects=True)
        assert pulled.status_code == 200 and pulled.content == data
    # neither replica's data directory holds a kept xorb: they are in the bucket
    for home in (one.home, two.home):
        assert not list((home / "xet").rglob("*.chunks"))
        assert not list((home / "xet").rglob("*.idx"))
