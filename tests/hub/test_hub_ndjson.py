"""The streaming NDJSON reader of Hub commits, against ``json.loads`` + ``b64decode``."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tracemalloc
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from registry.errors import InvalidInput, TooLarge
from registry.services import hub_ndjson
from registry.storage.local import LocalBlobStore

DATA = bytes(range(256)) + b"lorry" * 7 + b"\xfb\xff\xbf" * 4
CONTENT = base64.b64encode(DATA).decode()


def _read(
    body: bytes, scratch: Path, store: LocalBlobStore, max_line: int = 1 << 20
) -> list[tuple[int, str, dict[str, Any], bytes | None]]:
    """Every line as (number, key, value, stored content): contents go through ``store``."""
    out = []
    with closing(hub_ndjson.read_lines(io.BytesIO(body), max_line, scratch)) as lines:
        for line in lines:
            data = None
            if line.content is not None:
                line.content.store(store)
                data = b"".join(store.open_range(line.content.sha256))
                assert line.content.size == len(data)
            out.append((line.number, line.key, line.value, data))
    assert os.listdir(scratch) == [], "a spool file was left behind"
    return out


def _expected(body: bytes) -> list[tuple[int, str, dict[str, Any], bytes | None]]:
    out = []
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if not raw.strip():
            continue
        item = json.loads(raw)
        value = dict(item["value"])
        data = None
        if "content" in value:
            data = base64.b64decode(value["content"], validate=True)
            value["content"] = None
        out.append((number, item["key"], value, data))
    return out


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


ESCAPED = CONTENT.replace("/", "\\/").replace("A", "\\u0041")
BODIES = {
    "client": (
        json.dumps({"key": "header", "value": {"summary": "s", "description": "d"}})
        + "\n"
        + json.dumps(
            {"key": "file", "value": {"content": CONTENT, "path": "a.bin", "encoding": "base64"}}
        )
        + "\n"
    ).encode(),
    "any key order, whitespace": (
        ' {"value" : { "path":"a/b.bin" ,\t"encoding": "base64", "content" : "'
        + CONTENT
        + '" } , "key":"file"}  \n\n'
        '{"value": {"path": "c", "oid": "' + "a" * 64 + '", "size": 3}, "key": "lfsFile"}'
    ).encode(),
    "escapes": (
        '{"key": "file", "value": {"path": "caf\\u00e9 \\"q\\"\\/x.bin", "content": "'
        + ESCAPED
        + '", "meta": {"content": "not the file", "list": ["content", 1]}}}\n'
    ).encode(),
    "only slash escapes": (
        '{"key": "file", "value": {"content": "'
        + CONTENT.replace("/", "\\/")
        + '", "path": "s.bin"}}\n'
    ).encode(),
    "nested content key elsewhere": (
        b'{"key": "header", "content": "x", "value": {"summary": "content", '
        b'"other": {"content": "y"}}}\n'
        b'{"key": "deletedFile", "value": {"path": "x"}}\n'
    ),
    "empty content": b'{"key": "file", "value": {"path": "e", "content": ""}}',
}


@pytest.mark.parametrize("name", BODIES)
def test_every_chunk_size_reads_what_json_loads_reads(
    name: str, scratch: Path, store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = BODIES[name]
    expected = _expected(body)
    assert expected
    for size in [*range(1, 40), *range(40, len(body) + 2, 7)]:
        monkeypatch.setattr(hub_ndjson, "CHUNK", size)
        assert _read(body, scratch, store) == expected, size


MALFORMED = {
    b'{"key": "file", "value": {"path": "a", "content": "QUJD"}': "is not JSON",
    b'{"key": "file", "value": {"path": "a", "content": "QUJD': "is not JSON",
    b'{"key": "file", "value": {"path": "a", "content": "QU\\xJD"}}': "is not JSON",
    b'{"key": "file", "value": {"path": "a", "content": "QUJD\\u00"}}': "is not JSON",
    b'{"key": "file", "value": {"path": "a\xff", "content": "QUJD"}}': "is not JSON",
    b'{"key": "file", "value": {"path": "a", "content": "QU\nJD"}}': "is not JSON",
    b'{"key": "file", "value": [1]}': '"value": {...}',
    b'["key", "value"]': '"value": {...}',
    b'{"key": "file", "value": {"path": "a", "content": "QUJ"}}': "'a' is not valid base64",
    b'{"key": "file", "value": {"path": "a", "content": "QU=D"}}': "not valid base64",
    b'{"key": "file", "value": {"path": "a", "content": "QQ==QUJD"}}': "not valid base64",
    b'{"key": "file", "value": {"path": "a", "content": "QU JD"}}': "not valid base64",
    b'{"key": "file", "value": {"path": "a", "content": "QU\\nJD"}}': "not valid base64",
    b'{"key": "file", "value": {"content": "QUJD", "content": "QUJD"}}': "appears twice",
}


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_lines_are_refused_and_leave_no_spool_file(
    body: bytes, scratch: Path, store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for size in (1, 3, 4, 1 << 20):
        monkeypatch.setattr(hub_ndjson, "CHUNK", size)
        good = b'{"key": "header", "value": {}}\n'
        with pytest.raises(InvalidInput) as refused:
            _read(good + body, scratch, store)
        assert MALFORMED[body] in refused.value.message
        assert "commit line 2" in refused.value.message
        assert os.listdir(scratch) == []
    assert list(store.iter_digests()) == []


def test_a_line_over_the_limit_and_long_fields_are_too_large(
    scratch: Path, store: LocalBlobStore
) -> None:
    body = BODIES["client"]
    limit = body.index(b"\n") + 1 + 100
    with pytest.raises(TooLarge) as long_line:
        _read(body, scratch, store, max_line=limit)
    assert f"longer than {limit} bytes" in long_line.value.message
    assert os.listdir(scratch) == []
    long_path = b'{"key": "file", "value": {"path": "' + b"p" * (1 << 17) + b'"}}'
    with pytest.raises(TooLarge) as fields:
        _read(long_path, scratch, store, max_line=1 << 20)
    assert "besides a file's content" in fields.value.message


def test_peak_memory_is_bounded_by_the_chunk_not_the_file(
    scratch: Path, store: LocalBlobStore, tmp_path: Path
) -> None:
    data = os.urandom(24 << 20)
    body = tmp_path / "commit.ndjson"
    with body.open("wb") as handle:
        handle.write(b'{"key": "file", "value": {"path": "big.bin", "content": "')
        handle.write(base64.b64encode(data))
        handle.write(b'"}}\n')
    del data
    tracemalloc.start()
    try:
        with (
            body.open("rb") as handle,
            closing(hub_ndjson.read_lines(handle, 64 << 20, scratch)) as lines,
        ):
            line = next(lines)  # the content must be stored before the next line
            assert line.content is not None
            _, peak = tracemalloc.get_traced_memory()
            line.content.store(store)
            assert next(lines, None) is None
    finally:
        tracemalloc.stop()
    assert line.content.size == 24 << 20
    assert 6 * hub_ndjson.CHUNK < (24 << 20) / 3  # the bound says something
    assert peak < 6 * hub_ndjson.CHUNK, peak
    digest = hashlib.sha256()
    for piece in store.open_range(line.content.sha256):
        digest.update(piece)
    assert digest.hexdigest() == line.content.sha256
