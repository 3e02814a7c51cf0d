"""What ``push`` takes from a directory, and how the CLI reads references and times."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer

from cli.client import LorryClient, LorryClientError, resolve_base_url
from cli.common import parse_reference, parse_time
from cli.digests import HashingWriter
from cli.transfer import scan_directory
from composer.fileio import sha256_file


def _adapter(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "adapter_config.json").write_text("{}")
    (root / "adapter_model.safetensors").write_bytes(b"weights")
    return root


def test_scan_skips_hidden_files_and_directories(tmp_path: Path) -> None:
    root = _adapter(tmp_path / "adapter")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / ".DS_Store").write_bytes(b"x")
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "tokenizer.json").write_text("{}")

    paths = [item.path for item in scan_directory(root)]

    assert paths == ["adapter_config.json", "adapter_model.safetensors", "tokenizer/tokenizer.json"]


@pytest.mark.parametrize("name", ["adapter_model.bin", "weights.PT", "state.pkl", "x/y.pth"])
def test_scan_refuses_pickled_weights(tmp_path: Path, name: str) -> None:
    root = _adapter(tmp_path / "adapter")
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(b"\x80\x04")

    with pytest.raises(LorryClientError) as caught:
        scan_directory(root)

    assert caught.value.code == "pickle_not_allowed"
    assert "safetensors" in caught.value.message


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("notes:x", "contains :"),
        ("CON.json", "CON is a device name"),
        ("tok/nul", "NUL is a device name"),
        ("draft.", "ends in a dot or a space"),
        ("back\\slash", "backslash"),
        ("bell\x07", "control character"),
    ],
)
def test_scan_refuses_names_the_registry_refuses(tmp_path: Path, name: str, problem: str) -> None:
    root = _adapter(tmp_path / "adapter")
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(b"x")

    with pytest.raises(LorryClientError) as caught:
        scan_directory(root)

    assert caught.value.code == "invalid_path"
    assert problem in caught.value.message and repr(name) in caught.value.message


@pytest.mark.parametrize(
    ("first", "second"), [("README.md", "readme.md"), ("caf\u00e9.txt", "cafe\u0301.txt")]
)
def test_scan_refuses_names_that_collide_on_macos_and_windows(
    tmp_path: Path, first: str, second: str
) -> None:
    root = _adapter(tmp_path / "adapter")
    (root / first).write_text("one")
    (root / second).write_text("two")

    with pytest.raises(LorryClientError) as caught:
        scan_directory(root)

    assert caught.value.code == "invalid_path"
    assert repr(first) in caught.value.message and repr(second) in caught.value.message


def test_scan_refuses_a_symlink_pointing_outside(tmp_path: Path) -> None:
    root = _adapter(tmp_path / "adapter")
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    os.symlink(secret, root / "notes.txt")

    with pytest.raises(LorryClientError, match="outside"):
        scan_directory(root)


def test_scan_follows_a_symlink_inside_the_directory(tmp_path: Path) -> None:
    root = _adapter(tmp_path / "adapter")
    os.symlink(root / "adapter_config.json", root / "config-link.json")

    files = {item.path: item for item in scan_directory(root)}

    assert files["config-link.json"].size == len("{}")


def test_scan_of_an_empty_directory_says_what_is_needed(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    with pytest.raises(LorryClientError, match="adapter_config.json"):
        scan_directory(tmp_path / "empty")


def test_sha256_file_matches_hashlib_across_buffer_boundaries(tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024 + 7)
    path = tmp_path / "blob"
    path.write_bytes(data)
    seen: list[int] = []

    assert sha256_file(path, seen.append) == hashlib.sha256(data).hexdigest()
    assert sum(seen) == len(data)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("acme/sql-gen", ("acme/sql-gen", None)),
        ("acme/sql-gen@3", ("acme/sql-gen", "3")),
        ("acme/sql-gen@production", ("acme/sql-gen", "production")),
        ("Org.1/name_x@sha256:" + "a" * 64, ("Org.1/name_x", "sha256:" + "a" * 64)),
    ],
)
def test_parse_reference_splits_repository_and_ref(
    value: str, expected: tuple[str, str | None]
) -> None:
    assert parse_reference(value, allow_ref=True) == expected


@pytest.mark.parametrize("value", ["acme", "acme/", "/x", "a/b/c", "acme/sql gen", "acme/x@"])
def test_parse_reference_rejects_malformed_names(value: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_reference(value, allow_ref=True)


def test_parse_time_takes_durations_back_from_now_and_iso_times() -> None:
    week_ago = datetime.fromisoformat(parse_time("7d", "--since") or "")
    assert abs(datetime.now(UTC) - timedelta(days=7) - week_ago) < timedelta(seconds=5)
    assert parse_time("2026-03-03T12:00:00Z", "--since") == "2026-03-03T12:00:00+00:00"
    assert parse_time("2026-03-03", "--since") == "2026-03-03T00:00:00+00:00"
    assert parse_time(None, "--since") is None


def test_client_url_and_token_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LORRY_URL", raising=False)
    assert resolve_base_url() == "http://127.0.0.1:8765"
    monkeypatch.setenv("LORRY_URL", "http://registry.example:9000/")
    monkeypatch.setenv("LORRY_TOKEN", "secret-token")
    assert resolve_base_url() == "http://registry.example:9000"
    assert resolve_base_url("http://other:1") == "http://other:1"
    with LorryClient() as client:
        assert client.base_url == "http://registry.example:9000"
        assert client._http.headers["Authorization"] == "Bearer secret-token"


def test_hashing_writer_writes_and_hashes_every_byte_in_order(tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024 + 13)
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    writer = HashingWriter(fd)
    for start in range(0, len(data), 65536):
        writer.write(data[start : start + 65536])
    digest = writer.close()
    os.close(fd)

    assert digest == hashlib.sha256(data).hexdigest()
    assert writer.size == len(data)
    assert path.read_bytes() == data


def test_hashing_writer_reports_a_failed_write(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "out", os.O_RDONLY | os.O_CREAT)
    writer = HashingWriter(fd)
    writer.write(b"x" * (9 * 1024 * 1024))

    with pytest.raises(OSError):
        writer.close()
    os.close(fd)
