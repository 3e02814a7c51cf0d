"""The role matrix: every mutating endpoint of the OpenAPI document × every scope."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

ALL = frozenset({"read", "write", "promote", "admin"})
WRITE = frozenset({"write", "admin"})
ADMIN = frozenset({"admin"})
MOVE_ALIAS = frozenset({"write", "promote", "admin"})
ARCHIVE = frozenset({"promote", "admin"})
SIGNED = frozenset({"signature"})
"""No scope: only the URL's signature (LFS upload URLs, ``registry.services.upload_urls``)."""
XET_TOKEN = frozenset({"xet-token"})
"""No scope: only the Xet token of the repository (``registry.services.xet``)."""

MATRIX: dict[tuple[str, str], frozenset[str]] = {
    ("PATCH", "/api/v1/repos/{namespace}/{name}"): WRITE,
    ("POST", "/api/v1/repos/{namespace}/{name}/versions"): WRITE,
    ("PUT", "/api/v1/repos/{namespace}/{name}/aliases/{alias}"): MOVE_ALIAS,
    ("DELETE", "/api/v1/repos/{namespace}/{name}/aliases/{alias}"): MOVE_ALIAS,
    ("PUT", "/api/v1/blobs/sha256/{sha256}"): WRITE,
    ("POST", "/api/v1/tokens"): ADMIN,
    ("DELETE", "/api/v1/tokens/{token_id}"): ADMIN,
    ("POST", "/api/v1/policies"): ADMIN,
    ("DELETE", "/api/v1/policies/{policy_id}"): ADMIN,
    ("POST", "/api/v1/gc"): ADMIN,
    ("POST", "/api/v1/audit/checkpoints"): ADMIN,
    ("POST", "/api/v1/compositions"): WRITE,
    ("POST", "/api/v1/repos/{namespace}/{name}/versions/{ref}/exports"): WRITE,
    ("POST", "/api/v1/repos/{namespace}/{name}/versions/{ref}/evals"): WRITE,
    ("POST", "/api/v1/repos/{namespace}/{name}/versions/{ref}/evaluations"): WRITE,
    ("POST", "/api/v1/jobs/{job_id}/cancel"): WRITE,
    ("POST", "/api/models/{namespace}/{name}/paths-info/{revision}"): ALL,
    ("POST", "/api/repos/create"): WRITE,
    ("DELETE", "/api/repos/delete"): WRITE,
    ("POST", "/api/validate-yaml"): ALL,
    ("POST", "/api/models/{namespace}/{name}/preupload/{revision}"): WRITE,
    ("POST", "/api/models/{namespace}/{name}/commit/{revision}"): WRITE,
    ("POST", "/api/models/{namespace}/{name}/branch/{branch}"): MOVE_ALIAS,
    ("DELETE", "/api/models/{namespace}/{name}/branch/{branch}"): MOVE_ALIAS,
    ("POST", "/api/models/{namespace}/{name}/tag/{revision}"): MOVE_ALIAS,
    ("DELETE", "/api/models/{namespace}/{name}/tag/{tag}"): MOVE_ALIAS,
    ("POST", "/{namespace}/{name}.git/info/lfs/objects/batch"): WRITE,
    ("POST", "/{namespace}/{name}.git/info/lfs/objects/verify"): WRITE,
    ("PUT", "/api/lfs/uploads/{upload_id}"): SIGNED,
    ("PUT", "/api/lfs/uploads/{upload_id}/parts/{number}"): SIGNED,
    ("POST", "/api/lfs/complete/{upload_id}"): SIGNED,
    ("GET", "/api/models/{namespace}/{name}/xet-write-token/{revision}"): WRITE,
    ("POST", "/api/xet/{namespace}/{name}/v1/xorbs/{prefix}/{xorb}"): XET_TOKEN,
    ("POST", "/api/xet/{namespace}/{name}/v1/shards"): XET_TOKEN,
    ("POST", "/api/v1/webhooks/{namespace}"): WRITE,
    ("DELETE", "/api/v1/webhooks/{namespace}/{webhook_id}"): WRITE,
    ("POST", "/api/v1/webhooks/{namespace}/{webhook_id}/test"): WRITE,
    ("POST", "/api/v1/webhooks/{namespace}/{webhook_id}/deliveries/{delivery_id}/redeliver"): WRITE,
    ("POST", "/api/v1/repos/{namespace}/{name}/deployments"): WRITE,
    ("POST", "/api/v1/repos/{namespace}/{name}/archive"): ARCHIVE,
    ("POST", "/api/v1/repos/{namespace}/{name}/unarchive"): ARCHIVE,
    ("DELETE", "/api/v1/repos/{namespace}/{name}"): ADMIN,
    ("DELETE", "/api/v1/repos/{namespace}/{name}/versions/{ref}"): ADMIN,
    ("DELETE", "/api/v1/repos/{namespace}/{name}/deployments/{deployment_id}"): WRITE,
}
"""Which scopes may call each mutating endpoint (``admin`` implies every scope)."""

ADMIN_READS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/tokens"): ADMIN,
    ("GET", "/api/v1/gc"): ADMIN,
    ("GET", "/api/v1/policies"): ALL,
    ("GET", "/api/v1/audit/verify"): ALL,
    ("GET", "/api/v1/audit"): ALL,
    ("GET", "/api/v1/audit/facets"): ALL,
    ("GET", "/api/v1/whoami"): ALL,
    ("GET", "/api/models"): ALL,
    ("GET", "/api/models/{namespace}/{name}/commits/{revision}"): ALL,
    ("GET", "/api/v1/repos/{namespace}/{name}/versions/{ref}/card"): ALL,
}

PATH_VALUES = {
    "namespace": "acme",
    "name": "sql-lora",
    "alias": "staging",
    "sha256": "0" * 64,
    "token_id": "000000000000",
    "policy_id": "999",
    "job_id": "999",
    "revision": "main",
    "branch": "staging",
    "tag": "v1",
    "ref": "1",
    "upload_id": "0" * 32,
    "number": "1",
    "webhook_id": "999",
    "delivery_id": "0" * 32,
    "deployment_id": "999",
    "prefix": "default",
    "xorb": "0" * 64,
}
FORGED_SIGNATURE = f"?oid={'0' * 64}&size=1&part_size=0&expires=9999999999&signature={'0' * 64}"


def _operations(client: TestClient, methods: frozenset[str]) -> list[tuple[str, str]]:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        for method in operations
        if method in methods
    )


def _mutating_operations(client: TestClient) -> list[tuple[str, str]]:
    return _operations(client, frozenset({"post", "put", "patch", "delete"}))


def _rows_naming_no_endpoint(client: TestClient) -> list[tuple[str, str]]:
    """Rows of MATRIX and ADMIN_READS that match no operation of the app's OpenAPI document."""
    existing = set(_operations(client, frozenset({"get", "post", "put", "patch", "delete"})))
    return sorted(set(MATRIX) - existing) + sorted(set(ADMIN_READS) - existing)


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_VALUES[m.group(1)], path)


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    url = _url(path)
    if path.startswith("/api/lfs/"):
        response = client.request(method, url + FORGED_SIGNATURE, content=b"x", headers=headers)
    elif path.startswith("/api/v1/blobs"):
        response = client.request(method, url, content=b"not the digest", headers=headers)
    elif "paths-info" in path:
        response = client.request(method, url, data={"paths": ["x"]}, headers=headers)
    elif method == "DELETE":
        response = client.request(method, url, headers=headers)
    else:
        response = client.request(method, url, json={}, headers=headers)
    return response.status_code, response.text


def test_every_mutating_endpoint_is_in_the_matrix(sqlite_client: TestClient) -> None:
    unknown = set(_mutating_operations(sqlite_client)) - set(MATRIX)
    assert not unknown, f"add these endpoints to the role matrix (and required_access): {unknown}"


def test_every_row_of_the_matrix_names_an_endpoint_of_the_app(sqlite_client: TestClient) -> None:
    stale = _rows_naming_no_endpoint(sqlite_client)
    assert not stale, f"these rows of the role matrix name no endpoint (fix or remove): {stale}"


@pytest.mark.parametrize("scope", ["anonymous", "read", "write", "promote", "admin"])
def test_each_scope_reaches_exactly_its_endpoints(
    sqlite_client: TestClient, token_factory: Callable[..., dict[str, str]], scope: str
) -> None:
    token_factory(["admin"], principal="owner")
    headers = {} if scope == "anonymous" else token_factory([scope], principal=f"p-{scope}")
    stale = _rows_naming_no_endpoint(sqlite_client)
    assert not stale, f"rows of the role matrix that name no endpoint, so test nothing: {stale}"
    operations = {**MATRIX, **ADMIN_READS}
    for (method, path), allowed in sorted(operations.items()):
        status, body = _call(sqlite_client, method, path, headers)
        where = f"{scope} {method} {path}: {status} {body}"
        assert status < 500, where
        if allowed == SIGNED:
            assert status == 403 and "signature does not match" in body, where
        elif allowed == XET_TOKEN:
            assert status == 403 and "Xet token is not valid" in body, where
        elif scope in allowed or (scope == "anonymous" and allowed == ALL):
            assert status not in (401, 403), where
        elif scope == "anonymous":
            assert status == 401, where
        else:
            assert status == 403, where


def test_a_token_limited_to_another_namespace_is_refused_on_every_repository_endpoint(
    sqlite_client: TestClient, token_factory: Callable[..., dict[str, str]]
) -> None:
    headers = token_factory(["admin"], ["other/*"], principal="elsewhere")
    for method, path in _mutating_operations(sqlite_client):
        if "{namespace}" not in path or "paths-info" in path or path.startswith("/api/xet/"):
            continue
        status, body = _call(sqlite_client, method, path, headers)
        assert status == 403, f"{method} {path}: {status} {body}"
        assert "namespace 'acme'" in body
    for method, path in [("POST", "/api/v1/tokens"), ("POST", "/api/v1/gc")]:
        status, body = _call(sqlite_client, method, path, headers)
        assert status == 403, f"a namespaced admin is not a global admin: {method} {path} {body}"
