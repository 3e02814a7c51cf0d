"""Inputs built to cost the server: refused on both backend pairs with the limit named,
nothing left behind, and only bounded work done before the refusal (bytes read, parser
events), never timed."""

from __future__ import annotations

import json
import struct
import tracemalloc
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.errors import TooLarge
from registry.validation import model_card
from tests.support.files import sha256_of
from tests.support.rest import API, push, row_counts

REPO = "acme/hostile"
WEIGHTS = "adapter_model.safetensors"
CARD = "README.md"
KiB = 1024


def _settings_of(client: TestClient) -> Any:
    return client.app.state.settings  # type: ignore[attr-defined]


def _refused(
    client: TestClient, files: dict[str, bytes], status: int, code: str, text: str
) -> dict[str, Any]:
    """Push ``files``; assert the refusal and that no row (version, file, blob ...) was added."""
    push(client, "acme/other", {"x.txt": b"unrelated"})  # a repository to compare against
    before = row_counts(client)
    response = push(client, REPO, files)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert text in body["message"], body["message"]
    assert row_counts(client) == before, "a refused push left rows behind"
    assert client.get(f"{API}/repos/{REPO}").status_code == 404
    return body


def _card(front_matter: str) -> bytes:
    return f"---\n{front_matter}\n---\n# Adapter\n".encode()


def _laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines)


def test_front_matter_over_the_limit_is_refused_naming_the_setting(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    limit = _settings_of(client).max_front_matter_bytes
    assert limit == 64 * KiB
    over = "tags:\n" + "".join(f"- t{i}\n" for i in range(limit // 6))
    assert len(over.encode()) > limit
    body = _refused(
        client,
        {**adapter_files, CARD: _card(over)},
        413,
        "too_large",
        "(LORRY_MAX_FRONT_MATTER_BYTES)",
    )
    assert str(limit) in body["message"]


@pytest.mark.parametrize(
    ("front_matter", "problem"),
    [
        (_laughs(), "anchors (&name) and aliases (*name) are not allowed"),
        ("base: &b {license: mit}\nother:\n  <<: *b", "anchors"),
        ("other:\n  <<: {license: mit}", "merge keys (<<) are not allowed"),
        ("deep: " + "[" * 40 + "]" * 40, "nests deeper than 32 levels"),
        ("deep:\n" + "".join(" " * (2 * i) + f"- k{i}:\n" for i in range(1, 40)), "nests deeper"),
    ],
    ids=["billion-laughs", "alias-merge", "inline-merge", "deep-flow", "deep-block"],
)
def test_expanding_or_deep_front_matter_is_refused_before_construction(
    client: TestClient,
    adapter_files: dict[str, bytes],
    front_matter: str,
    problem: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_construction(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the YAML was constructed before the refusal")

    monkeypatch.setattr(model_card.yaml, "load", no_construction)
    _refused(
        client, {**adapter_files, CARD: _card(front_matter)}, 422, "invalid_model_card", problem
    )


def test_a_card_of_only_newlines_is_refused_naming_the_problem(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    size = _settings_of(client).max_metadata_file_bytes - 16
    card = b"---\n" + b"\n" * size
    _refused(
        client,
        {**adapter_files, CARD: card},
        413,
        "too_large",
        "not closed within 65536 bytes, the limit (LORRY_MAX_FRONT_MATTER_BYTES)",
    )


def test_finding_the_front_matter_allocates_nothing_per_line() -> None:
    """A card of many short lines once became a list of millions of strings (~60 bytes
    each); the delimiters are now found by one scan of the text."""
    text = "---\n" + "ab\n" * 700_000 + "---\n"  # 2 MiB; front matter over the limit
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge):
            model_card.parse_model_card(text, max_bytes=64 * KiB)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * KiB, f"{peak} bytes allocated to find the front matter"


@contextmanager
def _bytes_read_of(client: TestClient, sha256: str) -> Iterator[list[int]]:
    """Record how many bytes of one blob the server reads."""
    store = client.app.state.blob_store  # type: ignore[attr-defined]
    real_read = store.read_bytes
    read: list[int] = []

    def counted(sha: str, start: int, length: int) -> bytes:
        data: bytes = real_read(sha, start, length)
        if sha == sha256:
            read.append(len(data))
        return data

    store.read_bytes = counted
    try:
        yield read
    finally:
        del store.read_bytes


def test_a_safetensors_header_over_the_limit_is_refused_after_reading_8_bytes(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    limit = _settings_of(client).max_safetensors_header_bytes
    assert limit == 1024 * KiB
    header = json.dumps({"__metadata__": {"pad": "x" * limit}}).encode()
    weights = struct.pack("<Q", len(header)) + header
    with _bytes_read_of(client, sha256_of(weights)) as read:
        _refused(
            client,
            {**adapter_files, WEIGHTS: weights},
            422,
            "invalid_safetensors",
            f"over the limit of {limit} bytes (LORRY_MAX_SAFETENSORS_HEADER_BYTES)",
        )
    assert sum(read) == 8, "more than the length prefix was read"


def test_an_adapter_config_over_the_limit_is_refused_naming_the_setting(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    limit = _settings_of(client).max_config_bytes
    config = json.loads(adapter_files["adapter_config.json"])
    config["target_modules"] += ["x" * 1000] * (limit // 1000)
    _refused(
        client,
        {**adapter_files, "adapter_config.json": json.dumps(config).encode()},
        413,
        "too_large",
        f"over the limit of {limit} (LORRY_MAX_CONFIG_BYTES)",
    )


def test_a_huge_target_modules_list_is_checked_by_lookups(
    client: TestClient, adapter_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """60,000 target names (~1 MiB) against every module: set lookups, never a list scan."""
    from registry.validation import adapter_config

    config = json.loads(adapter_files["adapter_config.json"])
    config["target_modules"] = [f"unused_{i}" for i in range(60_000)] + ["q_proj", "v_proj"]
    real = adapter_config.is_targeted

    def checked(module: str, targets: Any, budget: Any = None) -> bool:
        assert isinstance(targets, frozenset), "target_modules was not turned into a set"
        return real(module, targets, budget)

    monkeypatch.setattr("registry.validation.adapter.is_targeted", checked)
    files = {**adapter_files, "adapter_config.json": json.dumps(config).encode()}
    response = push(client, REPO, files)
    assert response.status_code == 201, response.text


_NFC = unicodedata.normalize("NFC", "café.json")
_NFD = unicodedata.normalize("NFD", "café.json")


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        ({"README.md": b"a", "readme.md": b"b"}, "'README.md' and 'readme.md' differ only"),
        ({_NFC: b"a", _NFD: b"b"}, "differ only in letter case or Unicode normalisation"),
        ({"Tokenizer": b"a", "tokenizer/merges.txt": b"b"}, "(or a file and its folder)"),
        ({"CON": b"a"}, "CON is a device name"),
        ({"tok/nul.json": b"a"}, "NUL is a device name"),
        ({"COM1.txt": b"a"}, "COM1 is a device name"),
        ({"a:b": b"a"}, "drive letter"),
        ({"notes/a:b": b"a"}, "contains :"),
        ({"notes.": b"a"}, "ends in a dot or a space"),
        ({"notes /x.txt": b"a"}, "ends in a dot or a space"),
        ({"bell\x07.txt": b"a"}, "control character"),
    ],
    ids=[
        "case",
        "nfc-nfd",
        "file-folder-case",
        "con",
        "nul-ext",
        "com1",
        "drive",
        "colon",
        "trailing-dot",
        "trailing-space",
        "control",
    ],
)
def test_paths_unsafe_on_macos_or_windows_are_refused(
    client: TestClient, adapter_files: dict[str, bytes], extra: dict[str, bytes], text: str
) -> None:
    _refused(client, {**adapter_files, **extra}, 422, "invalid_path", text)
