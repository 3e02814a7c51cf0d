"""Hostile input: size limits, fuzzed adapters through the publish endpoint, NaN/Inf flags."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from registry.config import Settings
from tests.support.files import sha256_of
from tests.support.live import LiveServer, start_live_server
from tests.support.rest import API, push_ok, row_counts

REPO = "acme/fuzz"
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
ACCEPTED = {201, 409, 413, 422}
STATE_TABLES = ("repositories", "versions", "version_files", "aliases", "audit_events")


def _state(client: TestClient) -> dict[str, int]:
    counts = row_counts(client)
    return {table: counts[table] for table in STATE_TABLES}


def _upload(client: TestClient, data: bytes) -> dict[str, Any]:
    sha = sha256_of(data)
    response = client.put(f"{API}/blobs/sha256/{sha}", content=data)
    assert response.status_code in (200, 201), response.text
    return {"sha256": sha, "size": len(data)}


def _publish(client: TestClient, files: dict[str, bytes]) -> Any:
    manifest = [{"path": path, **_upload(client, data)} for path, data in files.items()]
    return client.post(f"{API}/repos/{REPO}/versions", json={"files": manifest})


def _assert_refused_cleanly(client: TestClient, files: dict[str, bytes]) -> None:
    before = _state(client)
    response = _publish(client, files)
    assert response.status_code in ACCEPTED, response.text
    body = response.json()
    if response.status_code != 201:
        assert set(body) >= {"code", "message"} and body["message"]
        assert _state(client) == before, "a refused push left rows behind"


# -- request size limits -----------------------------------------------------------------------


def test_an_oversized_json_body_is_refused_with_413_before_parsing(
    sqlite_client: TestClient,
) -> None:
    limit = sqlite_client.app.state.settings.max_json_body_bytes  # type: ignore[attr-defined]
    padding = "x" * (limit + 1)
    response = sqlite_client.post(
        f"{API}/repos/{REPO}/versions", json={"files": [], "message": padding}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert "LORRY_MAX_JSON_BODY_BYTES" in response.json()["message"]

    def chunks() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    streamed = sqlite_client.post(
        f"{API}/repos/{REPO}/versions",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert _state(sqlite_client) == dict.fromkeys(STATE_TABLES, 0)


def test_oversized_headers_are_refused_by_the_http_server(live_server: LiveServer) -> None:
    host, port = live_server.url.removeprefix("http://").split(":")
    huge = "a" * (live_server.settings.max_header_bytes + 1024)
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Big: {huge}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:80]


def test_the_h11_parser_refuses_oversized_headers_before_the_app(
    sqlite_settings: Settings,
) -> None:
    server = start_live_server(sqlite_settings, http="h11")
    try:
        host, port = server.url.removeprefix("http://").split(":")
        huge = "a" * (sqlite_settings.max_header_bytes * 4)
        request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Big: {huge}\r\n\r\n".encode()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)
            reply = sock.recv(4096)
        assert reply.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), reply[:80]
        assert b"x-request-id" not in reply.lower(), "h11 refused it, not the app"
    finally:
        server.stop()


def test_an_oversized_safetensors_header_is_refused(sqlite_client: TestClient) -> None:
    limit = sqlite_client.app.state.settings.max_safetensors_header_bytes  # type: ignore[attr-defined]
    weights = struct.pack("<Q", limit + 1) + b"{}"
    config = json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q"]})
    before = _state(sqlite_client)
    response = _publish(sqlite_client, {CONFIG: config.encode(), WEIGHTS: weights})
    assert response.status_code == 422
    assert "over the limit" in response.json()["message"]
    assert _state(sqlite_client) == before


# -- fuzzing the parsers through the publish endpoint ----------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_config_keys = st.sampled_from(
    [
        "peft_type",
        "r",
        "lora_alpha",
        "target_modules",
        "rank_pattern",
        "alpha_pattern",
        "use_rslora",
        "use_dora",
        "base_model_name_or_path",
        "task_type",
        "bias",
        "modules_to_save",
        "layers_to_transform",
    ]
)


@st.composite
def adapter_configs(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """A real adapter_config.json with some keys replaced or dropped, or arbitrary bytes."""
    choice = draw(st.integers(min_value=0, max_value=9))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        return json.dumps(draw(_json)).encode()
    config = dict(valid)
    for key in draw(st.lists(_config_keys, max_size=4)):
        if draw(st.booleans()):
            config.pop(key, None)
        else:
            config[key] = draw(_json)
    return json.dumps(config).encode()


_dtypes = st.sampled_from(["F32", "F16", "BF16", "I64", "BOOL", "F8_E4M3", "X9", ""])
_dims = st.lists(st.integers(min_value=-3, max_value=2**40), max_size=3)


def safetensors_files(valid: bytes) -> st.SearchStrategy[bytes]:
    """The real adapter weights with a mutated header, lying lengths or random bytes."""
    return _safetensors_files(_Opaque(valid))


class _Opaque:
    """Keeps the real file out of hypothesis' reprs."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<{len(self.data)} bytes>"


@st.composite
def _safetensors_files(draw: st.DrawFn, opaque: _Opaque) -> bytes:
    valid = opaque.data
    choice = draw(st.integers(min_value=0, max_value=5))
    header_length = struct.unpack("<Q", valid[:8])[0]
    header = json.loads(valid[8 : 8 + header_length])
    data = valid[8 + header_length :]
    if choice == 0:
        return draw(st.binary(max_size=300))
    if choice == 1:
        prefix = struct.pack("<Q", draw(st.integers(min_value=0, max_value=2**64 - 1)))
        return prefix + draw(st.binary(max_size=100))
    names = sorted(name for name in header if name != "__metadata__")
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        if not names:
            break
        name = draw(st.sampled_from(names))
        if not isinstance(header[name], dict):
            header[name] = {}
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "name", "extra", "json"]))
        if field == "dtype":
            header[name]["dtype"] = draw(_dtypes)
        elif field == "shape":
            header[name]["shape"] = draw(_dims)
        elif field == "data_offsets":
            header[name]["data_offsets"] = draw(_dims)
        elif field == "name":
            header[draw(st.text(max_size=30))] = header.pop(name)
            names = sorted(n for n in header if n != "__metadata__")
        elif field == "extra":
            header[name][draw(st.text(max_size=5))] = draw(_json)
        else:
            header[name] = draw(_json)
    raw = json.dumps(header).encode()
    if choice == 2:
        data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    return struct.pack("<Q", len(raw)) + raw + data


FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.mark.slow
def test_fuzzed_adapter_configs_never_crash_nor_leave_state(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    valid = json.loads(adapter_files[CONFIG])

    @FUZZ
    @given(config=adapter_configs(valid))
    def run(config: bytes) -> None:
        _assert_refused_cleanly(sqlite_client, {**adapter_files, CONFIG: config})

    run()


@pytest.mark.slow
def test_fuzzed_safetensors_never_crash_nor_leave_state(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    @FUZZ
    @given(weights=safetensors_files(adapter_files[WEIGHTS]))
    def run(weights: bytes) -> None:
        _assert_refused_cleanly(sqlite_client, {**adapter_files, WEIGHTS: weights})

    run()


def test_traversal_paths_and_pickles_are_refused(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    for path in ("../evil.txt", "/etc/passwd", "a/../../b", "nested\\..\\x"):
        before = _state(sqlite_client)
        response = _publish(sqlite_client, {**adapter_files, path: b"x"})
        assert response.status_code == 422, (path, response.text)
        assert _state(sqlite_client) == before
    pickled = _publish(sqlite_client, {**adapter_files, "adapter_model.bin": b"\x80\x04K\x01."})
    assert pickled.status_code == 422
    assert pickled.json()["code"] == "pickle_not_allowed"


# -- NaN / Inf tensors ---------------------------------------------------------------------------


def test_nonfinite_tensors_are_flagged_in_the_version_metadata(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    clean = push_ok(sqlite_client, REPO, adapter_files)
    assert clean["metadata"]["nonfinite_tensors"] == []

    tensors = load_safetensors(adapter_files[WEIGHTS])
    names = sorted(tensors)
    tensors[names[0]][0, 0] = float("nan")
    tensors[names[-1]].view(-1)[-1] = float("-inf")
    broken = save_safetensors(tensors)
    flagged = push_ok(sqlite_client, REPO, {**adapter_files, WEIGHTS: broken})
    assert flagged["metadata"]["nonfinite_tensors"] == [names[0], names[-1]]

    half = {name: tensor.to(torch.bfloat16) for name, tensor in load_safetensors(broken).items()}
    half[names[1]][0, 0] = float("inf")
    bf16 = push_ok(sqlite_client, REPO, {**adapter_files, WEIGHTS: save_safetensors(half)})
    assert bf16["metadata"]["nonfinite_tensors"] == sorted([names[0], names[1], names[-1]])
    shown = sqlite_client.get(f"{API}/repos/{REPO}/versions/3").json()
    assert shown["metadata"]["nonfinite_tensors"] == bf16["metadata"]["nonfinite_tensors"]
