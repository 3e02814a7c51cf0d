"""Helpers of the upload validation tests: a dict-backed blob store, adapter directories to
edit, hand-built safetensors files."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from registry.config import Settings
from registry.validation import (
    AdapterMetadata,
    BlobReader,
    ManifestEntry,
    check_manifest,
    read_safetensors_header,
    validate_adapter,
)

SHA = "ab" * 32
PREFIX = "base_model.model.model.layers"


class Blobs:
    """A content-addressed blob store backed by a dict {sha256: path}, like the registry's."""

    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}

    def add(self, path: Path, name: str | None = None) -> ManifestEntry:
        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        self.paths[sha256] = path
        return ManifestEntry(path=name or path.name, sha256=sha256, size=len(data))

    def read(self, sha256: str, start: int, length: int) -> bytes:
        with self.paths[sha256].open("rb") as handle:
            handle.seek(start)
            return handle.read(length)


def manifest_of(directory: Path, blobs: Blobs) -> list[ManifestEntry]:
    return [
        blobs.add(path, path.relative_to(directory).as_posix())
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    ]


def copy_adapter(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md"):
        (target / name).write_bytes((source / name).read_bytes())
    return target


def edit_config(directory: Path, **changes: Any) -> None:
    path = directory / "adapter_config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is DELETE:
            del config[key]
        else:
            config[key] = value
    path.write_text(json.dumps(config))


DELETE = object()


def validate_directory(directory: Path, settings: Settings) -> AdapterMetadata:
    blobs = Blobs()
    entries = manifest_of(directory, blobs)
    check_manifest(entries, settings)
    return validate_adapter(entries, blobs.read, settings)


def safetensors_blob(header: Any, data: bytes = b"", *, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def blob_reader(blob: bytes) -> BlobReader:
    def read(sha256: str, start: int, length: int) -> bytes:
        return blob[start : start + length]

    return read


def parse_header(blob: bytes, *, size: int | None = None, limit: int = 1 << 20) -> dict[str, Any]:
    return read_safetensors_header(
        blob_reader(blob), SHA, len(blob) if size is None else size, max_header_bytes=limit
    )
