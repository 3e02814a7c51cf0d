"""Downloading version files: ETag, conditional requests, byte ranges, refs."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.rest import API, push_ok, with_extra

REPO = "acme/sql-gen"
PAYLOAD = bytes(range(256)) * 40


@pytest.fixture
def published(client: TestClient, adapter_files: dict[str, bytes]) -> dict[str, Any]:
    return push_ok(client, REPO, with_extra(adapter_files, "data/payload.bin2", PAYLOAD))


def _url(path: str = "data/payload.bin2", ref: str = "1") -> str:
    return f"{API}/repos/{REPO}/versions/{ref}/files/{path}"


def test_file_download_carries_etag_size_and_version_headers(
    client: TestClient, published: dict[str, Any]
) -> None:
    response = client.get(_url())
    assert response.status_code == 200
    assert response.content == PAYLOAD
    entry = next(f for f in published["files"] if f["path"] == "data/payload.bin2")
    assert response.headers["etag"] == f'"{entry["sha256"]}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(len(PAYLOAD))
    assert response.headers["x-lorry-version"] == "1"
    assert response.headers["x-lorry-digest"] == published["digest"]


def test_head_gives_the_headers_without_the_body(
    client: TestClient, published: dict[str, Any]
) -> None:
    response = client.head(_url())
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(PAYLOAD))
    assert response.headers["etag"].startswith('"')


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 10),
        ("bytes=100-", 100, len(PAYLOAD)),
        ("bytes=-7", len(PAYLOAD) - 7, len(PAYLOAD)),
        ("bytes=10000-99999", 10000, len(PAYLOAD)),
    ],
)
def test_range_request_returns_partial_content(
    client: TestClient, published: dict[str, Any], header: str, start: int, end: int
) -> None:
    response = client.get(_url(), headers={"Range": header})
    assert response.status_code == 206
    assert response.content == PAYLOAD[start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(PAYLOAD)}"
    assert response.headers["content-length"] == str(end - start)


def test_range_outside_the_file_is_416(client: TestClient, published: dict[str, Any]) -> None:
    response = client.get(_url(), headers={"Range": f"bytes={len(PAYLOAD)}-"})
    assert response.status_code == 416
    assert response.json()["code"] == "range_not_satisfiable"
    assert response.headers["content-range"] == f"bytes */{len(PAYLOAD)}"


def test_if_none_match_with_the_etag_is_304(client: TestClient, published: dict[str, Any]) -> None:
    etag = client.head(_url()).headers["etag"]
    response = client.get(_url(), headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    other = client.get(_url(), headers={"If-None-Match": '"0000"'})
    assert other.status_code == 200


def test_if_range_with_another_etag_sends_the_whole_file(
    client: TestClient, published: dict[str, Any]
) -> None:
    response = client.get(_url(), headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert response.status_code == 200
    assert response.content == PAYLOAD


def test_missing_file_version_and_alias_are_404_with_codes(
    client: TestClient, published: dict[str, Any]
) -> None:
    cases = {
        _url("nope.txt"): "file_not_found",
        _url(ref="7"): "version_not_found",
        _url(ref="staging"): "alias_not_found",
        _url(ref="sha256:" + "0" * 64): "version_not_found",
        f"{API}/repos/acme/unknown/versions/1": "repository_not_found",
    }
    for url, code in cases.items():
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["code"] == code
        assert response.json()["message"]


def test_malformed_ref_is_invalid_reference(client: TestClient, published: dict[str, Any]) -> None:
    response = client.get(f"{API}/repos/{REPO}/versions/sha256:abc")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_reference"
    response = client.get(f"{API}/repos/{REPO}/versions/Bad!Ref")
    assert response.json()["code"] == "invalid_reference"
