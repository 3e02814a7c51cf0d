"""An HTTP client of the Lorry REST API (``/api/v1``), used by the CLI.

The CLI reaches the registry over HTTP only. Every failure, whether the server
answered with an error body ``{"code", "message"}`` or could not be reached at
all, is raised as one ``LorryClientError`` carrying a stable ``code``, a message
for the user and the HTTP status (``None`` when there was no response).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

import httpx

__all__ = ["DEFAULT_URL", "LorryClient", "LorryClientError"]

DEFAULT_URL = "http://127.0.0.1:8765"
API_PREFIX = "/api/v1"
USER_AGENT = "lorry-cli/0.1"

# Connecting should be quick; a read may wait while the server verifies and stores a large blob.
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)


class LorryClientError(Exception):
    """An error of the registry or of reaching it."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def resolve_base_url(url: str | None = None) -> str:
    """``url``, else ``$LORRY_URL``, else the default local registry; without a trailing slash."""
    chosen = url or os.environ.get("LORRY_URL") or DEFAULT_URL
    return chosen.rstrip("/")


def _error_from_response(response: httpx.Response) -> LorryClientError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return LorryClientError(str(body.get("code", f"http_{status}")), body["message"], status)
    if isinstance(body, dict) and "detail" in body:
        return LorryClientError(f"http_{status}", _describe_detail(body["detail"]), status)
    text = response.text.strip() if response.content else ""
    reason = response.reason_phrase or "error"
    message = f"the registry answered {status} {reason}" + (f": {text[:500]}" if text else "")
    return LorryClientError(f"http_{status}", message, status)


def _describe_detail(detail: Any) -> str:
    """Render a FastAPI validation ``detail`` (a string or a list of field errors)."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", []))
                parts.append(f"{where}: {item.get('msg', item)}")
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


class LogFilters(TypedDict, total=False):
    """What the audit log and the access log are both filtered by (``None``: no filter)."""

    repository: str | None
    actor: str | None
    since: str | None
    until: str | None
    limit: int
    offset: int


def _repo_path(repository: str) -> str:
    namespace, _, name = repository.partition("/")
    return f"{API_PREFIX}/repos/{quote(namespace, safe='')}/{quote(name, safe='')}"


def _clean_params(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


class LorryClient:
    """A synchronous client of one registry.

    ``base_url`` defaults to ``$LORRY_URL`` or http://127.0.0.1:8765; ``token``
    defaults to ``$LORRY_TOKEN`` and is sent as ``Authorization: Bearer``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self.last_path = ""
        """The path of the latest request: what a ``*_not_found`` error was about."""
        headers = {"User-Agent": USER_AGENT}
        token = token if token is not None else os.environ.get("LORRY_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> LorryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport -------------------------------------------------------------------------

    def _unreachable(self, exc: httpx.TransportError) -> LorryClientError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return LorryClientError(
                "unreachable",
                f"no Lorry server at {self.base_url}; start one with `lorry serve` "
                "or set LORRY_URL (or --registry) to the registry's address",
            )
        if isinstance(exc, httpx.TimeoutException):
            return LorryClientError(
                "timeout", f"the registry at {self.base_url} did not answer in time ({exc})"
            )
        return LorryClientError(
            "transport_error", f"talking to the registry at {self.base_url} failed: {exc}"
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; raise ``LorryClientError`` for transport errors and 4xx/5xx."""
        self.last_path = path
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON object the registry answers (every route of the CLI answers one)."""
        response = self.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise LorryClientError(
                "bad_response",
                f"{method} {path}: the server at {self.base_url} did not answer with a JSON "
                "object; is LORRY_URL (or --registry) a Lorry registry?",
                response.status_code,
            )
        return body

    # -- health ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    # -- blobs -----------------------------------------------------------------------------

    def blob_size(self, sha256: str, *, namespace: str | None = None) -> int | None:
        """Size of a stored blob, or ``None`` when the registry does not have it (with
        ``namespace``: when that namespace does not hold it, and a push there must upload it)."""
        params = {"namespace": namespace} if namespace is not None else None
        try:
            response = self._http.head(f"{API_PREFIX}/blobs/sha256/{sha256}", params=params)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise _error_from_response(response)
        return int(response.headers.get("Content-Length", "0"))

    def put_blob(
        self, sha256: str, size: int, body: Iterable[bytes], *, namespace: str | None = None
    ) -> dict[str, Any]:
        """Upload one blob, streaming ``body`` (``size`` bytes) without buffering it, for
        ``namespace`` (which then holds it and may publish versions naming it)."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        params = {"namespace": namespace} if namespace is not None else None
        return self._json(
            "PUT",
            f"{API_PREFIX}/blobs/sha256/{sha256}",
            content=body,
            headers=headers,
            params=params,
        )

    # -- repositories and versions ---------------------------------------------------------

    def list_repos(
        self,
        *,
        q: str | None = None,
        namespace: str | None = None,
        base_model: str | None = None,
        tag: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        offset: int = 0,
        archived: bool = False,
    ) -> dict[str, Any]:
        params = _clean_params(
            {
                "archived": "true" if archived else None,
                "q": q,
                "namespace": namespace,
                "base_model": base_model,
                "tag": tag,
                "kind": kind,
                "limit": limit,
                "offset": offset,
            }
        )
        return self._json("GET", f"{API_PREFIX}/repos", params=params)

    def get_repo(self, repository: str) -> dict[str, Any]:
        return self._json("GET", _repo_path(repository))

    def list_versions(self, repository: str, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        params = {"limit": limit, "offset": offset}
        return self._json("GET", f"{_repo_path(repository)}/versions", params=params)

    def get_version(self, repository: str, ref: str = "latest") -> dict[str, Any]:
        return self._json("GET", f"{_repo_path(repository)}/versions/{quote(ref, safe=':')}")

    def create_version(
        self,
        repository: str,
        files: list[dict[str, Any]],
        *,
        message: str | None = None,
        alias: str | None = None,
        kind: str = "adapter",
        base_model: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"files": files, "message": message, "alias": alias, "kind": kind}
        if base_model is not None:
            body["base_model"] = base_model
        return self._json("POST", f"{_repo_path(repository)}/versions", json=body)

    @contextmanager
    def stream_file(self, repository: str, ref: str, path: str) -> Iterator[httpx.Response]:
        """Open a version file for streaming; the response is closed on exit."""
        url = f"{_repo_path(repository)}/versions/{quote(ref, safe=':')}/files/{quote(path)}"
        self.last_path = url
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from_response(response)
                yield response
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    # -- aliases ---------------------------------------------------------------------------

    def list_aliases(self, repository: str) -> dict[str, Any]:
        return self._json("GET", f"{_repo_path(repository)}/aliases")

    def get_alias(self, repository: str, alias: str) -> dict[str, Any]:
        return self._json("GET", f"{_repo_path(repository)}/aliases/{quote(alias, safe='')}")

    def set_alias(
        self,
        repository: str,
        alias: str,
        version: str | int,
        *,
        reason: str | None = None,
        override_gate: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"version": version, "reason": reason}
        if override_gate:
            body["override_gate"] = True
        return self._json(
            "PUT", f"{_repo_path(repository)}/aliases/{quote(alias, safe='')}", json=body
        )

    def delete_alias(self, repository: str, alias: str, *, reason: str | None = None) -> None:
        self.request(
            "DELETE",
            f"{_repo_path(repository)}/aliases/{quote(alias, safe='')}",
            params=_clean_params({"reason": reason}),
        )

    def alias_history(self, repository: str, alias: str) -> dict[str, Any]:
        return self._json(
            "GET", f"{_repo_path(repository)}/aliases/{quote(alias, safe='')}/history"
        )

    # -- audit -----------------------------------------------------------------------------

    def audit(self, *, action: str | None = None, **filters: Unpack[LogFilters]) -> dict[str, Any]:
        """The audit log: mutations, newest first."""
        params = _clean_params({"action": action, **filters})
        return self._json("GET", f"{API_PREFIX}/audit", params=params)

    def downloads(
        self, *, version: int | None = None, **filters: Unpack[LogFilters]
    ) -> dict[str, Any]:
        """The access log: downloaded files, newest first."""
        params = _clean_params({"version": version, **filters})
        return self._json("GET", f"{API_PREFIX}/access-log", params=params)
