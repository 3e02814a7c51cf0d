"""Authentication and authorization of requests: bearer tokens, scopes, namespaces.

Modes:

- **Open** (no token was ever created): every caller is ``local`` with every
  scope, as before tokens existed. Only allowed on a loopback address
  (``check_exposure``).
- **Closed** (at least one token exists, revoked ones included): a request
  with ``Authorization: Bearer lorry_...`` acts as the token's principal; a
  request without one (or with a token that is not a Lorry token, such as a
  Hugging Face token sent by ``huggingface_hub``) is ``anonymous``, which may
  read when ``LORRY_ANONYMOUS_READ`` is true (the default) and do nothing else.

``authorize`` is mounted on the API and Hub routers; it derives the scope a
request needs from its method and route (``required_access``) and the
namespace from the ``{namespace}`` path parameter. Protected aliases are
checked where aliases change (``registry.services.policies``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from registry.config import Settings
from registry.errors import Forbidden, InsecureConfiguration, Unauthorized
from registry.services.principal_cache import PrincipalCache
from registry.services.principals import (
    ADMIN,
    ANONYMOUS,
    ANONYMOUS_READER,
    LOCAL,
    PROMOTE,
    READ,
    WRITE,
    Principal,
)
from registry.services.tokens import (
    TOKEN_PREFIX,
    active_admin_exists,
    authenticate_until,
    tokens_exist,
)

_API_PREFIX = "/api/v1"
_ADMIN_PREFIXES = ("/tokens", "/policies", "/gc", "/audit/checkpoints")
_GLOBAL_READS = frozenset({"/audit/verify"})
"""Reads of the whole registry's state: ``read`` on every namespace."""
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READ_ONLY_POSTS = frozenset(
    {"/api/models/{namespace}/{name}/paths-info/{revision}", "/api/validate-yaml"}
)
_ALIAS_ROUTES = frozenset(
    {
        "/repos/{namespace}/{name}/aliases/{alias}",
        "/api/models/{namespace}/{name}/branch/{branch}",
        "/api/models/{namespace}/{name}/tag/{revision}",
        "/api/models/{namespace}/{name}/tag/{tag}",
    }
)
"""Alias changes, also as Hub branches and tags."""
_ARCHIVE_ROUTES = frozenset(
    {"/repos/{namespace}/{name}/archive", "/repos/{namespace}/{name}/unarchive"}
)
_DELETE_ROUTES = frozenset(
    {"/repos/{namespace}/{name}", "/repos/{namespace}/{name}/versions/{ref}"}
)
"""Archiving: ``promote`` or ``admin``; deleting (``DELETE``): ``admin`` on the namespace
(``registry.services.lifecycle``)."""
BODY_NAMESPACE_ROUTES = frozenset({"/api/repos/create", "/api/repos/delete"})
"""Hub routes that name their repository in the JSON body, not the path: ``authorize``
lets them through on ``write`` anywhere, and the route checks the body's namespace with
``authorize_namespace``."""
_PUBLIC_READS = frozenset({"/whoami", "/api/whoami-v2"})
"""Reads that need no scope: how a caller without one learns who it is."""
_SIGNED_PREFIX = "/api/lfs/"
"""LFS upload URLs: authorized by their signature (``registry.services.upload_urls``), not a
token, which huggingface_hub does not send to them."""
_XET_PREFIX = "/api/xet/"
"""Xet storage (CAS) routes: authorized by the Xet token that ``xet-write-token`` issues
(``registry.services.xet``), not a Lorry token."""
_WRITE_GETS = frozenset({"/api/models/{namespace}/{name}/xet-write-token/{revision:path}"})
"""Reads that hand out upload rights: ``write``."""
BOOTSTRAP_COMMAND = "lorry token create --admin --principal NAME"


@dataclass(frozen=True)
class Access:
    """What a request needs: one of ``scopes``, on its namespace or (``everywhere``) on all."""

    scopes: tuple[str, ...]
    everywhere: bool = False

    def describe(self) -> str:
        return " or ".join(self.scopes)


def required_access(method: str, route_path: str) -> Access:
    """The scope that a request needs, from its method and route template (the role matrix).

    ``route_path`` is the template with or without the ``/api/v1`` prefix.

    - ``/api/v1/tokens``, ``/api/v1/policies`` (changes) and ``/api/v1/gc``: ``admin`` on
      every namespace; listing the rules needs only ``read``.
    - alias ``PUT``/``DELETE``, Hub branch and tag changes: ``write`` or ``promote``
      (protected aliases: ``promote``).
    - other changes (push, blob upload, repository settings, compose, export, evaluation
      jobs, Hub ``create_repo``, preupload and commit): ``write``. ``/api/repos/create`` and
      ``/api/repos/delete`` take the namespace from the body (``BODY_NAMESPACE_ROUTES``).
    - reads and ``validate-yaml``: ``read``; ``/api/v1/whoami`` and ``/api/whoami-v2``:
      nothing (an empty ``scopes``).
    - archiving a repository: ``promote`` or ``admin``; deleting a repository or a
      version: ``admin`` on its namespace.
    - ``/api/v1/audit/checkpoints``: ``admin`` on every namespace; ``/api/v1/audit/verify``:
      ``read`` on every namespace (it reports on the whole log).
    - LFS upload URLs (``/api/lfs/...``): nothing; their signature authorizes them.
    - Xet: ``xet-write-token``: ``write``; the CAS routes (``/api/xet/...``): nothing; the
      Xet token authorizes them.
    """
    method = method.upper()
    if route_path.startswith(f"{_API_PREFIX}/"):
        route_path = route_path[len(_API_PREFIX) :]
    if route_path.startswith(_ADMIN_PREFIXES):
        if route_path.startswith("/policies") and method in _READ_METHODS:
            return Access((READ,))
        return Access((ADMIN,), everywhere=True)
    if route_path.startswith((_SIGNED_PREFIX, _XET_PREFIX)):
        return Access(())
    if route_path in _WRITE_GETS:
        return Access((WRITE,))
    if method in _READ_METHODS and route_path in _PUBLIC_READS:
        return Access(())
    if method in _READ_METHODS and route_path in _GLOBAL_READS:
        return Access((READ,), everywhere=True)
    if method in _READ_METHODS or route_path in _READ_ONLY_POSTS:
        return Access((READ,))
    if route_path in _ALIAS_ROUTES:
        return Access((WRITE, PROMOTE))
    if route_path in _ARCHIVE_ROUTES:
        return Access((PROMOTE, ADMIN))
    if method == "DELETE" and route_path in _DELETE_ROUTES:
        return Access((ADMIN,))
    return Access((WRITE,))


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _closed(request: Request, session: Session) -> bool:
    state = request.app.state
    if getattr(state, "tokens_exist", False):
        return True
    closed = tokens_exist(session)
    if closed:
        state.tokens_exist = True
    return closed


def _cache(request: Request) -> PrincipalCache:
    cache: PrincipalCache = request.app.state.principal_cache
    return cache


def _cached_principal(request: Request, token: str | None) -> Principal | None:
    """The caller, when it can be told without the database (``registry.services.
    principal_cache``); ``None`` when it cannot."""
    state = request.app.state
    if not getattr(state, "tokens_exist", False):
        return None
    if token is None or not token.startswith(TOKEN_PREFIX):
        settings: Settings = state.settings
        return ANONYMOUS_READER if settings.anonymous_read else ANONYMOUS
    return _cache(request).get(token)


def _lookup_principal(request: Request, token: str | None) -> Principal:
    settings: Settings = request.app.state.settings
    with Session(request.app.state.engine) as session:
        if not _closed(request, session):
            return LOCAL
        if token is not None and token.startswith(TOKEN_PREFIX):
            principal, expires_at = authenticate_until(session, token)
            _cache(request).put(token, principal, expires_at)
            return principal
    return ANONYMOUS_READER if settings.anonymous_read else ANONYMOUS


def resolve_principal(request: Request) -> Principal:
    """The caller of ``request`` (computed once per request)."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = bearer_token(request)
    principal = _cached_principal(request, token) or _lookup_principal(request, token)
    request.state.principal = principal
    return principal


async def principal_of(request: Request) -> Principal:
    """``resolve_principal`` for async code: the database, when needed, off the event loop."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = bearer_token(request)
    principal = _cached_principal(request, token)
    if principal is None:
        principal = await run_in_threadpool(_lookup_principal, request, token)
    request.state.principal = principal
    return principal


async def authorize(request: Request) -> None:
    """Router dependency: refuse (401/403) a request whose caller lacks the scope it needs.

    Async, so that a request whose caller is cached costs no thread hop and no session."""
    principal = await principal_of(request)
    route = request.scope.get("route")
    route_path: str = getattr(route, "path", request.url.path)
    access = required_access(request.method, route_path)
    if not access.scopes:
        return
    _check_access(request, principal, access, request.path_params.get("namespace"))


def authorize_namespace(request: Request, namespace: str) -> None:
    """Refuse (401/403) a ``BODY_NAMESPACE_ROUTES`` request on a namespace that the caller's
    token does not cover, by the same role matrix as ``authorize``."""
    route = request.scope.get("route")
    route_path: str = getattr(route, "path", request.url.path)
    access = required_access(request.method, route_path)
    if access.scopes:
        _check_access(request, resolve_principal(request), access, namespace)


def _check_access(
    request: Request, principal: Principal, access: Access, namespace: str | None
) -> None:
    if access.everywhere:
        allowed = any(principal.allows(scope) for scope in access.scopes)
        where = "every namespace"
    elif namespace is not None:
        allowed = any(principal.allows(scope, namespace) for scope in access.scopes)
        where = f"namespace {namespace!r}"
    else:
        allowed = any(principal.allows_somewhere(scope) for scope in access.scopes)
        where = "some namespace"
    if allowed:
        return
    if principal.token_id is None:
        raise Unauthorized(
            f"{request.method} {request.url.path} needs a token with the {access.describe()} "
            "scope; "
            "send it as `Authorization: Bearer <token>` (the CLI reads LORRY_TOKEN)"
        )
    raise Forbidden(
        f"token {principal.token_id} of {principal.name!r} lacks the {access.describe()} scope "
        f"on {where} that {request.method} {request.url.path} needs"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, engine: Engine) -> None:
    """Refuse to serve on a non-loopback address unless an active admin token exists."""
    if is_loopback(settings.host):
        return
    with Session(engine) as session:
        if active_admin_exists(session):
            return
    raise InsecureConfiguration(
        f"refusing to listen on {settings.host}, which is not a loopback address, without an "
        f"admin token: anyone who can reach it could publish and move aliases. Create one with "
        f"`{BOOTSTRAP_COMMAND}` (same LORRY_DATABASE_URL; it prints the token once), "
        "then start again"
    )
