"""The hot version reads (``version@ref``, Hub model info, Hub resolves) answer from one query
for what may change and a per-digest cache for what cannot: an alias move, a new evaluation
result or new aliases show at once, while the files stay those of the version named."""

from __future__ import annotations

from hashlib import sha256

from fastapi.testclient import TestClient

from tests.support.rest import API, push_ok, with_extra

REPO = "acme/fresh"


def _model_info(client: TestClient, revision: str) -> dict[str, object]:
    response = client.get(f"/api/models/{REPO}/revision/{revision}")
    assert response.status_code == 200, response.text
    info: dict[str, object] = response.json()
    return info


def _resolved(client: TestClient, path: str) -> str:
    """The sha256 of the file a Hub resolve at ``production`` serves (on S3, a redirect)."""
    response = client.get(f"/{REPO}/resolve/production/{path}", follow_redirects=False)
    assert response.status_code in (200, 302), response.text
    return response.headers["X-Linked-Etag"].strip('"')


def test_an_alias_move_and_new_results_show_at_once(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    first = push_ok(client, REPO, with_extra(adapter_files, "which.txt", b"one"))
    second = push_ok(client, REPO, with_extra(adapter_files, "which.txt", b"two"))
    alias = f"{API}/repos/{REPO}/aliases/production"
    assert client.put(alias, json={"version": 1}).status_code == 200
    for _ in range(2):  # the second read comes from the cache of version 1's files
        version = client.get(f"{API}/repos/{REPO}/versions/production").json()
        assert version["version"] == 1 and version["aliases"] == ["production"]
        info = _model_info(client, "production")
        assert info["sha"] == first["digest"].removeprefix("sha256:")[:40]
        assert info["lorry"]["aliases"] == ["production"]  # type: ignore[index]
        assert _resolved(client, "which.txt") == sha256(b"one").hexdigest()

    assert client.put(alias, json={"version": 2}).status_code == 200
    assert client.put(f"{API}/repos/{REPO}/aliases/canary", json={"version": 2}).status_code == 200
    version = client.get(f"{API}/repos/{REPO}/versions/production").json()
    assert version["version"] == 2 and version["aliases"] == ["canary", "production"]
    assert version["digest"] == second["digest"]
    info = _model_info(client, "production")
    assert info["sha"] == second["digest"].removeprefix("sha256:")[:40]
    assert info["lorry"]["aliases"] == ["canary", "production"]  # type: ignore[index]
    assert _resolved(client, "which.txt") == sha256(b"two").hexdigest()
    assert _model_info(client, "1")["lorry"]["aliases"] == []  # type: ignore[index]
    assert "model-index" not in _model_info(client, "2")["cardData"]  # type: ignore[operator]

    results = {"sql_eval": {"exact_match": 0.8}}
    recorded = client.post(f"{API}/repos/{REPO}/versions/2/evals", json=results)
    assert recorded.status_code == 201, recorded.text
    card = _model_info(client, "production")["cardData"]
    assert isinstance(card, dict) and "model-index" in card
    siblings = {s["rfilename"] for s in _model_info(client, "latest")["siblings"]}  # type: ignore[attr-defined]
    assert siblings == {*adapter_files, "which.txt", "README.md"}
