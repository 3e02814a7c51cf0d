"""Namespace isolation of every read route: a token limited to ``acme/*`` learns nothing of
another namespace, whatever it reads.

The registry holds ``acme`` and three look-alike namespaces (``ACME``, ``acme-x``, ``acm``),
each with versions, an alias, a description, a writer principal, pulls (access-log rows
with a user agent) and compositions (jobs); ``ACME/mix`` is composed from
``acme/sql-gen``, so the ``derived`` walk of an ``acme`` version reaches another namespace.
Every GET/HEAD route of the app (``app.routes``: the OpenAPI document, the Hub routes, the
console and the docs), and every POST that authorization counts as a read, is called with
the ``acme/*`` read token as ``ROUTES`` says; no response body or header may carry a marker
of another namespace (its name, repository ids, principals, descriptions, user agents,
digests, commit ids, job ids), except a marker that the request itself named.

A route missing from ``ROUTES`` fails ``test_every_read_route_is_covered``. To cover a new
route, add ONE line to ``ROUTES``: its ``"METHOD /template"`` and the calls to make, e.g.

    "GET /api/v1/repos/{namespace}/{name}/things": [ok("/api/v1/repos/acme/sql-gen/things")],

``ok(url)`` expects a success (so that the route really read data), ``refused(url, status)``
an error; ``{own_commit}``, ``{own_job}``, ``{foreign_job}``, ... in a URL are filled from
``World.fields()``. A POST or a call with a form body passes ``form=``.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Column, MetaData, String, Table, insert, select

from registry.api.auth import required_access
from registry.services.visibility import namespace_matches, pattern_condition
from tests.support.rest import API, engine_of, push_ok, with_extra
from tests.support.tokens import bearer, make_token

OWN = "acme"
LOOK_ALIKES = ("ACME", "acme-x", "acm")
NAMESPACE_MARKER = re.compile(r"(?<![A-Za-z0-9_.-])(?:ACME|acme-x|acm)(?![A-Za-z0-9_-])")
"""A look-alike namespace named as a word (``acme`` itself and ``acme-writer`` do not match)."""


@dataclass(frozen=True)
class Call:
    url: str
    status: int | None = None
    """``None``: any success (2xx/3xx); else exactly this status."""
    form: dict[str, Any] | None = None
    json: dict[str, Any] | None = None


def ok(url: str, form: dict[str, Any] | None = None, json: dict[str, Any] | None = None) -> Call:
    return Call(url, None, form, json)


def refused(url: str, status: int) -> Call:
    return Call(url, status)


REPO = "/api/v1/repos/acme/sql-gen"
V1 = f"{REPO}/versions/1"
HUB = "/api/models/acme/sql-gen"
FORGED = f"?oid={'0' * 64}&size=1&part_size=1&expires=9999999999&signature={'0' * 64}"
ROUTES: dict[str, list[Call]] = {
    "GET /openapi.json": [ok("/openapi.json")],
    "HEAD /openapi.json": [ok("/openapi.json")],
    "GET /docs": [ok("/docs")],
    "HEAD /docs": [ok("/docs")],
    "GET /docs/oauth2-redirect": [ok("/docs/oauth2-redirect")],
    "HEAD /docs/oauth2-redirect": [ok("/docs/oauth2-redirect")],
    "GET /redoc": [ok("/redoc")],
    "HEAD /redoc": [ok("/redoc")],
    "GET /healthz": [ok("/healthz")],
    "GET /readyz": [ok("/readyz")],
    "GET /": [ok("/")],
    "GET /console": [ok("/console/js/app.js"), ok("/console/console.css")],
    "GET /api/v1/repos": [
        ok("/api/v1/repos"),
        ok("/api/v1/repos?q=sql&limit=1000"),
        ok("/api/v1/repos?archived=true&limit=1000"),
    ],
    "GET /api/v1/repos/{namespace}/{name}": [ok(REPO), ok("/api/v1/repos/acme/mix")],
    "GET /api/v1/repos/{namespace}/{name}/versions": [ok(f"{REPO}/versions")],
    "GET /api/v1/repos/{namespace}/{name}/versions/{ref}": [
        ok(V1),
        ok(f"{REPO}/versions/production"),
        ok(f"{REPO}/versions/{{own_commit}}"),
        ok("/api/v1/repos/acme/mix/versions/1"),
    ],
    "GET /api/v1/repos/{namespace}/{name}/versions/{ref}/files/{path:path}": [
        ok(f"{V1}/files/adapter_config.json")
    ],
    "HEAD /api/v1/repos/{namespace}/{name}/versions/{ref}/files/{path:path}": [
        ok(f"{V1}/files/adapter_config.json")
    ],
    "GET /api/v1/repos/{namespace}/{name}/aliases": [ok(f"{REPO}/aliases")],
    "GET /api/v1/repos/{namespace}/{name}/aliases/{alias}": [ok(f"{REPO}/aliases/production")],
    "GET /api/v1/repos/{namespace}/{name}/aliases/{alias}/history": [
        ok(f"{REPO}/aliases/production/history")
    ],
    "GET /api/v1/repos/{namespace}/{name}/aliases/{alias}/at": [
        ok(f"{REPO}/aliases/production/at?time=2999-01-01T00:00:00Z")
    ],
    "GET /api/v1/repos/{namespace}/{name}/versions/{ref}/lineage": [
        ok("/api/v1/repos/acme/mix/versions/1/lineage")
    ],
    "GET /api/v1/repos/{namespace}/{name}/versions/{ref}/derived": [ok(f"{V1}/derived")],
    "GET /api/v1/repos/{namespace}/{name}/versions/{ref}/exports": [ok(f"{V1}/exports")],
    "GET /api/v1/repos/{namespace}/{name}/versions/{ref}/exports/{path:path}": [
        refused(f"{V1}/exports/model.gguf", 404)  # the world has no exports
    ],
    "GET /api/v1/repos/{namespace}/{name}/versions/{ref}/card": [ok(f"{V1}/card")],
    "GET /api/v1/repos/{namespace}/{name}/versions/{ref}/evals": [ok(f"{V1}/evals")],
    "GET /api/v1/repos/{namespace}/{name}/evals": [ok(f"{REPO}/evals")],
    "GET /api/v1/repos/{namespace}/{name}/evals/compare": [
        ok(f"{REPO}/evals/compare?base=1&candidate=production")
    ],
    "GET /api/v1/audit": [
        ok("/api/v1/audit?limit=1000"),
        ok("/api/v1/audit?action=version.pull&limit=1000"),
        ok("/api/v1/audit?kind=mutation&limit=1000"),
        ok("/api/v1/audit?kind=pull&limit=1000"),
        ok("/api/v1/audit?repository=ACME/sql-gen"),
    ],
    "GET /api/v1/audit/facets": [
        ok("/api/v1/audit/facets"),
        ok("/api/v1/audit/facets?kind=mutation"),
    ],
    "GET /api/v1/audit/verify": [refused("/api/v1/audit/verify", 403)],  # read on * only
    "HEAD /api/v1/blobs/sha256/{sha256}": [
        ok("/api/v1/blobs/sha256/{own_blob}"),
        refused("/api/v1/blobs/sha256/{foreign_blob}", 404),
    ],
    "GET /api/v1/tokens": [refused("/api/v1/tokens", 403)],
    "GET /api/v1/policies": [ok("/api/v1/policies")],
    "GET /api/v1/gc": [refused("/api/v1/gc", 403)],
    "GET /api/v1/jobs": [ok("/api/v1/jobs?limit=1000"), ok("/api/v1/jobs?repository=ACME/mix")],
    "GET /api/v1/jobs/{job_id}": [
        ok("/api/v1/jobs/{own_job}"),
        refused("/api/v1/jobs/{foreign_job}", 404),
    ],
    "GET /api/v1/whoami": [ok("/api/v1/whoami")],
    "GET /api/models/{namespace}/{name}": [ok(HUB)],
    "GET /api/models/{namespace}/{name}/revision/{revision:path}": [
        ok(f"{HUB}/revision/main"),
        ok(f"{HUB}/revision/production"),
    ],
    "GET /api/models/{namespace}/{name}/refs": [ok(f"{HUB}/refs")],
    "GET /api/models/{namespace}/{name}/tree/{revision}": [ok(f"{HUB}/tree/main")],
    "GET /api/models/{namespace}/{name}/tree/{revision}/{path:path}": [
        refused(f"{HUB}/tree/main/no-such-folder", 404)
    ],
    "POST /api/models/{namespace}/{name}/paths-info/{revision}": [
        ok(f"{HUB}/paths-info/main", form={"paths": ["adapter_config.json", "README.md"]})
    ],
    "GET /{namespace}/{name}/resolve/{revision}/{path:path}": [
        ok("/acme/sql-gen/resolve/main/adapter_config.json")
    ],
    "HEAD /{namespace}/{name}/resolve/{revision}/{path:path}": [
        ok("/acme/sql-gen/resolve/production/adapter_config.json")
    ],
    "GET /api/models": [
        ok("/api/models?limit=1000"),
        ok("/api/models?search=sql"),
        ok("/api/models?author=ACME"),
    ],
    "GET /api/models/{namespace}/{name}/commits/{revision}": [ok(f"{HUB}/commits/main")],
    "GET /api/models/{namespace}/{name}/xet-write-token/{revision:path}": [
        refused(f"{HUB}/xet-write-token/main", 403)
    ],
    "GET /api/xet/{namespace}/{name}/v1/chunks/{prefix}/{chunk}": [
        refused(f"/api/xet/acme/sql-gen/v1/chunks/default/{'0' * 64}", 403)
    ],
    "POST /api/xet/{namespace}/{name}/v1/xorbs/{prefix}/{xorb}": [
        refused(f"/api/xet/acme/sql-gen/v1/xorbs/default/{'0' * 64}", 403)
    ],
    "POST /api/xet/{namespace}/{name}/v1/shards": [refused("/api/xet/acme/sql-gen/v1/shards", 403)],
    "GET /api/v1/access-log": [
        ok("/api/v1/access-log"),
        ok("/api/v1/access-log?repository=ACME/sql-gen"),
    ],
    "GET /api/whoami-v2": [ok("/api/whoami-v2")],
    "POST /api/validate-yaml": [
        ok("/api/validate-yaml", json={"content": "---\nlicense: mit\n---\n", "repoType": "model"})
    ],
    "GET /api/v1/webhooks": [ok("/api/v1/webhooks")],
    "GET /api/v1/webhooks/{namespace}/{webhook_id}": [
        ok("/api/v1/webhooks/acme/{own_hook}"),
        refused("/api/v1/webhooks/acme/{foreign_hook}", 404),
    ],
    "GET /api/v1/webhooks/{namespace}/{webhook_id}/deliveries": [
        ok("/api/v1/webhooks/acme/{own_hook}/deliveries"),
        refused("/api/v1/webhooks/acme/{foreign_hook}/deliveries", 404),
    ],
    "GET /api/v1/deployments": [ok("/api/v1/deployments")],
    "GET /api/v1/repos/{namespace}/{name}/deployments": [ok(f"{REPO}/deployments")],
    "GET /api/v1/repos/{namespace}/{name}/deployments/{deployment_id}": [
        ok(f"{REPO}/deployments/{{own_deployment}}"),
        refused(f"{REPO}/deployments/{{foreign_deployment}}", 404),
    ],
    # Signed upload URLs: no token needed, and a forged one is refused.
    "PUT /api/lfs/uploads/{upload_id}": [refused(f"/api/lfs/uploads/forged{FORGED}", 403)],
    "PUT /api/lfs/uploads/{upload_id}/parts/{number}": [
        refused(f"/api/lfs/uploads/forged/parts/1{FORGED}", 403)
    ],
    "POST /api/lfs/complete/{upload_id}": [refused(f"/api/lfs/complete/forged{FORGED}", 403)],
}


def read_routes(client: TestClient) -> Iterator[str]:
    """``"METHOD /template"`` of every read route of the app: GET and HEAD, and the POSTs
    that authorization counts as reads; static mounts as ``GET /prefix``."""
    for route in _flatten(client.app.router.routes):  # type: ignore[attr-defined]
        methods = getattr(route, "methods", None)
        if methods is None:
            yield f"GET {route.path}"
            continue
        for method in sorted(methods):
            read = method in ("GET", "HEAD") or required_access(method, route.path).scopes in (
                ("read",),
                (),
            )
            if read:
                yield f"{method} {route.path}"


def _flatten(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:  # an included router (FastAPI >= 0.16x)
            yield from _flatten(list(contexts()))
        elif hasattr(route, "routes") and not hasattr(route, "path_format"):
            yield from _flatten(route.routes)
        else:
            yield route


@dataclass
class World:
    """The registry's content: what the ``acme`` reader may see and what it must not."""

    reader: dict[str, str]
    admin: dict[str, str]
    own: dict[str, str] = field(default_factory=dict)
    foreign_markers: set[str] = field(default_factory=set)

    def fields(self) -> dict[str, str]:
        return self.own


def _push_namespace(client: TestClient, namespace: str, files: dict[str, bytes]) -> dict[str, Any]:
    writer = bearer(make_token(client, ["write"], [f"{namespace}/*"], f"{namespace}-writer"))
    agent = {"User-Agent": f"agent-of-{namespace}-end"}
    client.headers.update(writer)
    try:
        hook = client.post(
            f"{API}/webhooks/{namespace}",
            json={
                "url": f"http://127.0.0.1:9/{namespace}-hook",
                "events": ["version.publish", "alias.set"],
                "description": f"hook of {namespace}-corp",
            },
        )
        assert hook.status_code == 201, hook.text
        first = push_ok(
            client, f"{namespace}/sql-gen", with_extra(files, "ns.txt", namespace.encode())
        )
        second = push_ok(
            client, f"{namespace}/sql-gen", with_extra(files, "ns.txt", f"{namespace}!".encode())
        )
        repo = f"{API}/repos/{namespace}/sql-gen"
        described = client.patch(repo, json={"description": f"secret plans of {namespace}-corp"})
        assert described.status_code == 200, described.text
        moved = client.put(f"{repo}/aliases/production", json={"version": 1})
        assert moved.status_code == 200, moved.text
        main = client.patch(repo, json={"main_alias": "production"})
        assert main.status_code == 200, main.text
        target = {
            "alias": "production",
            "url": f"http://127.0.0.1:9/{namespace}-vllm",
            "lora_name": f"{namespace}-lora",
        }
        deployment = client.post(f"{repo}/deployments", json=target)
        assert deployment.status_code == 201, deployment.text
        results = {"sql_eval": {"exact_match": 0.8}, "notes": f"secret plans of {namespace}-corp"}
        evaluated = client.post(f"{repo}/versions/1/evals", json=results)
        assert evaluated.status_code == 201, evaluated.text
        for url in (
            f"{repo}/versions/1/files/adapter_config.json",
            f"/{namespace}/sql-gen/resolve/main/ns.txt",
        ):
            pulled = client.get(url, headers=agent, follow_redirects=False)
            assert pulled.status_code in (200, 302, 307), pulled.text  # S3: a presigned URL
    finally:
        for key in writer:
            client.headers.pop(key)
    return {
        "first": first,
        "second": second,
        "writer": writer,
        "hook": hook.json()["id"],
        "deployment": deployment.json()["id"],
    }


def _compose(
    client: TestClient, admin: dict[str, str], source: str, target: str, weight: float
) -> dict[str, Any]:
    recipe = {
        "method": "linear",
        "inputs": [{"adapter": f"{source}@1", "weight": weight}],
        "output": {"type": "adapter", "rank": 8},
        "device": "cpu",
    }
    response = client.post(
        f"{API}/compositions", json={"recipe": recipe, "target": target}, headers=admin
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while True:
        job = client.get(f"{API}/jobs/{job_id}", headers=admin).json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            assert job["state"] == "succeeded", job
            return dict(job)
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def _markers_of(pushed: dict[str, Any], namespace: str) -> set[str]:
    markers = {
        f"{namespace}/sql-gen",
        f"{namespace}/mix",
        f"{namespace}-writer",
        f"agent-of-{namespace}-end",
        f"secret plans of {namespace}-corp",
        f"hook of {namespace}-corp",
        f"{namespace}-lora",
    }
    for version in (pushed["first"], pushed["second"]):
        digest = version["digest"].removeprefix("sha256:")
        markers |= {digest, digest[:40]}
    return markers


@pytest.fixture
def world(client: TestClient, adapter_files: dict[str, bytes]) -> World:
    admin = bearer(make_token(client, ["admin"], ["*"], "root"))
    world = World(
        reader=bearer(make_token(client, ["read"], ["acme/*"], "acme-reader")), admin=admin
    )
    client.app.state.settings.webhook_allow_private = True  # type: ignore[attr-defined]
    own = _push_namespace(client, OWN, adapter_files)
    for namespace in LOOK_ALIKES:
        pushed = _push_namespace(client, namespace, adapter_files)
        world.foreign_markers |= _markers_of(pushed, namespace)
        world.own.setdefault("foreign_hook", str(pushed["hook"]))
        world.own.setdefault("foreign_deployment", str(pushed["deployment"]))
    own_job = _compose(client, admin, "acme/sql-gen", "acme/mix", 1.0)
    for source, target in (("acme/sql-gen", "ACME/mix"), ("acme-x/sql-gen", "acme-x/mix")):
        job = _compose(client, admin, source, target, 0.5)
        world.foreign_markers |= {job["id"], job["result"]["digest"].removeprefix("sha256:")}
        world.own.setdefault("foreign_job", job["id"])
    for pattern in ("ACME/*", "acm/*", "acme/*"):
        rule = {"repository": pattern, "alias": "production", "description": f"rule for {pattern}"}
        response = client.post(f"{API}/policies", json=rule, headers=admin)
        assert response.status_code == 201, response.text
    first = own["first"]
    # ``ns.txt`` of ACME/sql-gen holds b"ACME": a blob that only ACME references, stored.
    foreign_blob = hashlib.sha256(LOOK_ALIKES[0].encode()).hexdigest()
    assert client.head(f"{API}/blobs/sha256/{foreign_blob}", headers=admin).status_code == 200
    world.own.update(
        own_commit=first["digest"].removeprefix("sha256:")[:40],
        own_job=own_job["id"],
        own_hook=str(own["hook"]),
        own_deployment=str(own["deployment"]),
        own_blob=next(f["sha256"] for f in first["files"] if f["path"] == "adapter_config.json"),
        foreign_blob=foreign_blob,
    )
    client.app.state.access_log.flush()  # type: ignore[attr-defined]  # the pulls, now
    return world


def _leaks(world: World, url: str, response: Any) -> list[str]:
    text = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    found = [marker for marker in world.foreign_markers if marker in text and marker not in url]
    named = NAMESPACE_MARKER.findall(url)
    found += [m for m in NAMESPACE_MARKER.findall(text) if m not in named]
    return sorted(set(found))


def test_every_read_route_is_covered(client: TestClient) -> None:
    missing = sorted(set(read_routes(client)) - set(ROUTES))
    assert not missing, (
        f"read routes that the isolation test does not call: {missing}. Add one line per route "
        "to ROUTES in tests/trust/test_isolation_routes.py, e.g. "
        '"GET /api/v1/things/{id}": [ok("/api/v1/things/{own_job}")], calling it on the acme '
        "namespace (see the module docstring)"
    )
    stale = sorted(set(ROUTES) - set(read_routes(client)))
    assert not stale, f"ROUTES names routes that the app no longer has: {stale}"


def _call(client: TestClient, method: str, call: Call, url: str, headers: dict[str, str]) -> Any:
    if method == "HEAD":
        return client.head(url, headers=headers, follow_redirects=False)
    if method == "POST":
        return client.post(
            url, data=call.form, json=call.json, headers=headers, follow_redirects=False
        )
    if method == "PUT":
        return client.put(url, content=b"x", headers=headers, follow_redirects=False)
    return client.get(url, headers=headers, follow_redirects=False)


def test_a_namespace_limited_token_reads_nothing_of_look_alike_namespaces(
    client: TestClient, world: World
) -> None:
    problems = []
    for key, calls in ROUTES.items():
        method = key.split(" ", 1)[0]
        for call in calls:
            url = call.url.format(**world.fields())
            response = _call(client, method, call, url, world.reader)
            expected = (
                response.status_code < 400
                if call.status is None
                else response.status_code == call.status
            )
            if not expected:
                problems.append(
                    f"{method} {url}: status {response.status_code} {response.text[:300]}"
                )
            leaks = _leaks(world, url, response)
            if leaks:
                problems.append(f"{method} {url} shows another namespace's {leaks}")
    assert not problems, "\n".join(problems)


def test_the_markers_would_show_a_leak(client: TestClient, world: World) -> None:
    """The admin sees other namespaces on the listings: the check above is not vacuous."""
    for url in (
        "/api/v1/repos?limit=1000",
        "/api/v1/access-log",
        "/api/v1/audit/facets",
        "/api/v1/jobs?limit=1000",
        "/api/v1/jobs/{foreign_job}",
        f"{V1}/derived",
        "/api/v1/policies",
    ):
        response = client.get(url.format(**world.fields()), headers=world.admin)
        assert response.status_code == 200, response.text
        assert _leaks(world, "", response), url


LOOK_ALIKE_NAMESPACES = (
    "acme",
    "ACME",
    "Acme",
    "acme-x",
    "acme_x",
    "acme.x",
    "acm",
    "acmex",
    "xacme",
    "a",
    "ac.me",
)
PATTERNS = (
    "acme/*",
    "acme",
    "ACME/*",
    "ac*",
    "ac*/*",
    "acm?",
    "a*e",
    "ac.me",
    "ac?me",
    "*x",
    "*",
    "acme/x",
    "[a]cme",
    "acme%",
    "acm_",
)


def test_sql_and_python_agree_on_every_pattern(client: TestClient) -> None:
    """``pattern_condition`` (SQL) selects exactly what ``namespace_matches`` (authorization)
    allows, case-sensitively, on this backend's database."""
    metadata = MetaData()
    probe = Table(
        "iso_probe", metadata, Column("namespace", String(100)), Column("repo", String(200))
    )
    engine = engine_of(client)
    metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(probe),
                [{"namespace": ns, "repo": f"{ns}/model"} for ns in LOOK_ALIKE_NAMESPACES],
            )
        with engine.connect() as connection:
            for pattern in PATTERNS:
                expected = {ns for ns in LOOK_ALIKE_NAMESPACES if namespace_matches(pattern, ns)}
                by_namespace = set(
                    connection.execute(
                        select(probe.c.namespace).where(
                            pattern_condition(probe.c.namespace, pattern, repository=False)
                        )
                    ).scalars()
                )
                by_repo = {
                    repo.split("/")[0]
                    for repo in connection.execute(
                        select(probe.c.repo).where(
                            pattern_condition(probe.c.repo, pattern, repository=True)
                        )
                    ).scalars()
                }
                assert by_namespace == expected == by_repo, pattern
    finally:
        metadata.drop_all(engine)
    assert namespace_matches("acme/*", "acme") and not namespace_matches("acme/*", "ACME")


def test_a_token_pattern_that_sql_cannot_mirror_is_refused(sqlite_client: TestClient) -> None:
    admin = bearer(make_token(sqlite_client, ["admin"], ["*"], "root"))
    for pattern in ("[a]cme/*", "acme/x/*", "acme%", ""):
        response = sqlite_client.post(
            f"{API}/tokens",
            json={"principal": "p", "scopes": ["read"], "namespaces": [pattern]},
            headers=admin,
        )
        assert response.status_code == 422, (pattern, response.text)
        assert "namespace pattern" in response.json()["message"]
    assert not namespace_matches("[a]cme/*", "acme"), (
        "an old row with such a pattern covers nothing"
    )
